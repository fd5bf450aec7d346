//go:build !linux

package main

import (
	"log/slog"
	"net"
	"os"

	"github.com/gopmd/gopmd/epmd/server"
)

// On other systems the daemon serves with the portable backend, which
// cannot hand over its sockets: SIGUSR2 ends it as it ends stock epmd
// (fatalSignals), and a restart under a service manager starts empty.

func upgradeSignal() <-chan os.Signal { return nil }

func upgrade(o options, srv *server.Server, log *slog.Logger) bool { return false }

func upgradeConn(o options) *net.UnixConn { return nil }

func takeOver(o options, uc *net.UnixConn, cfg server.Config, log *slog.Logger) (*server.Server, []net.Listener, error) {
	return nil, nil, server.ErrHandoverUnsupported
}

func tookOver(o options, uc *net.UnixConn) {}

func takeStored(files []*os.File) []*os.File { return files }

func newServer(o options, cfg server.Config, log *slog.Logger) (*server.Server, error) {
	return server.NewErr(cfg)
}

func storeForRestart(srv *server.Server, log *slog.Logger) bool { return false }
