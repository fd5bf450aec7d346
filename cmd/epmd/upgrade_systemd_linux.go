package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/gopmd/gopmd/epmd/handover"
	"github.com/gopmd/gopmd/epmd/server"
)

// A restart under systemd (docs/upgrade.md): the listening sockets stay in
// the socket unit; on SIGTERM the daemon freezes and puts every kept
// registration socket (FDNAME gopmd-conn-ID) and a sealed memfd with the
// snapshot of its table (gopmd-snapshot) into the service's descriptor
// store (FDSTORE=1), then exits without closing them: systemd holds them.
// The next process finds them among its LISTEN_FDS, by their names,
// restores its state from them, and takes them out of the store
// (FDSTOREREMOVE=1), so that a socket it closes is closed. A stop (rather
// than a restart) empties the store, closing the registrations.

// storedFiles are the descriptors from systemd's store, taken out of the
// listening sockets by takeStored.
var storedFiles []*os.File

// takeStored moves the files stored by a previous process (named
// server.ConnPrefix... or server.SnapshotName) out of files into
// storedFiles, and returns the rest: the listening sockets.
func takeStored(files []*os.File) []*os.File {
	var rest []*os.File
	for _, f := range files {
		if f.Name() == server.SnapshotName || strings.HasPrefix(f.Name(), server.ConnPrefix) {
			storedFiles = append(storedFiles, f)
		} else {
			rest = append(rest, f)
		}
	}
	return rest
}

// newServer returns the daemon's server: restored from the descriptor
// store when a previous process of the service left its state there,
// else empty.
func newServer(o options, cfg server.Config, log *slog.Logger) (*server.Server, error) {
	stored := storedFiles
	storedFiles = nil
	if len(stored) == 0 {
		return server.NewErr(cfg)
	}
	// Whatever happens, the store must not keep these: a registration
	// socket closed here but held there would never close for its node.
	var names []string
	for _, f := range stored {
		names = append(names, f.Name())
	}
	defer func() {
		for _, n := range names {
			sdNotify("FDSTOREREMOVE=1\nFDNAME=" + n)
		}
	}()
	var snap []byte
	var files []handover.NamedFile
	for _, f := range stored {
		if f.Name() == server.SnapshotName {
			b, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<30)) // from its start, whatever its offset
			f.Close()
			if err != nil {
				log.Error("restart: cannot read the stored snapshot: " + err.Error())
			}
			snap = b
			continue
		}
		files = append(files, handover.NamedFile{Name: f.Name(), File: f})
	}
	if snap == nil {
		for _, nf := range files {
			nf.File.Close()
		}
		log.Error(fmt.Sprintf("restart: %d stored sockets without a snapshot; starting empty", len(files)))
		return server.NewErr(cfg)
	}
	srv, _, err := restoreFiles(cfg, files, snap)
	if err != nil {
		log.Error("restart: cannot restore the stored state: " + err.Error() + "; starting empty")
		return server.NewErr(cfg)
	}
	live, _ := srv.Snapshot()
	log.Info(fmt.Sprintf("restart: restored %d nodes and %d registration sockets from the descriptor store", len(live), srv.NumConns()))
	return srv, nil
}

// storeForRestart freezes the server and puts its registration sockets and
// snapshot into systemd's descriptor store. It reports whether it did: the
// daemon then exits without closing them.
func storeForRestart(srv *server.Server, log *slog.Logger) bool {
	ns := os.Getenv("NOTIFY_SOCKET")
	if ns == "" || srv.Backend() != server.BackendEpoll {
		return false
	}
	fr, err := srv.Freeze(context.Background(), upgradeDrain)
	if err != nil {
		log.Error("restart: cannot keep the registrations: " + err.Error())
		return false
	}
	defer fr.Close()
	mf, err := handover.MemFile(server.SnapshotName, fr.Snapshot)
	if err != nil {
		srv.Thaw()
		log.Error("restart: cannot keep the registrations: " + err.Error())
		return false
	}
	defer mf.Close()
	files := append(fr.Conns, handover.NamedFile{Name: server.SnapshotName, File: mf})
	if err := handover.StoreFDs(ns, files); err != nil {
		// Some may be stored: they are taken out again, and the
		// registrations close with this process, as without a store.
		for _, nf := range files {
			sdNotify("FDSTOREREMOVE=1\nFDNAME=" + nf.Name)
		}
		srv.Thaw()
		log.Error("restart: cannot keep the registrations: " + err.Error())
		return false
	}
	log.Info(fmt.Sprintf("restart: %d registration sockets and the table kept in the descriptor store", len(fr.Conns)))
	srv.Abandon()
	return true
}
