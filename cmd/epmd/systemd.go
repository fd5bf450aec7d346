package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/coreos/go-systemd/v22/activation"
	sddaemon "github.com/coreos/go-systemd/v22/daemon"

	"github.com/gopmd/gopmd/epmd/server"
)

// Socket activation and readiness notification come from go-systemd's
// activation and daemon packages. Both read the process environment
// (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES, NOTIFY_SOCKET), not the getenv
// that run is given.

// sdListenFDsStart is the first descriptor systemd passes
// (SD_LISTEN_FDS_START).
const sdListenFDsStart = 3

// errListenEnv means LISTEN_PID or LISTEN_FDS is malformed.
var errListenEnv = errors.New("malformed LISTEN_PID or LISTEN_FDS")

// systemdListeners takes the listening sockets systemd passed (descriptors
// 3 to 3+LISTEN_FDS-1, when LISTEN_PID names this process) and returns
// them in order, a listener each. Errors carry stock epmd's messages: no
// socket at all is "systemd provides no sockets", more than 16 is "cannot
// listen on more than 16 IP addresses". The LISTEN_* variables are removed
// from the environment, so nothing this process starts inherits them.
func systemdListeners() ([]net.Listener, error) {
	// activation.Files treats malformed variables and descriptors that are
	// not open as "no sockets"; stock epmd, through libsystemd's
	// sd_listen_fds, reports them as a failure, so they are checked first.
	if err := checkListenEnv(os.LookupEnv); err != nil {
		if err == errListenEnv {
			// libsystemd returns -EINVAL without setting errno, so
			// stock prints no reason.
			return nil, errors.New("cannot obtain sockets from systemd")
		}
		return nil, fmt.Errorf("cannot obtain sockets from systemd: %s", server.Strerror(err))
	}
	files := activation.Files(true)
	// Registration sockets and the snapshot that a previous process of
	// the service put in the descriptor store come along (upgrade_systemd_linux.go).
	files = takeStored(files)
	defer func() {
		for _, f := range files {
			f.Close() // the listeners hold duplicates
		}
	}()
	switch n := len(files); {
	case n == 0:
		return nil, errors.New("systemd provides no sockets")
	case n > server.MaxListeners:
		return nil, fmt.Errorf("cannot listen on more than %d IP addresses", server.MaxListeners)
	}
	var lns []net.Listener
	for i, f := range files {
		ln, err := net.FileListener(f) // a duplicate, close-on-exec
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, fmt.Errorf("cannot use socket %d from systemd: %v", sdListenFDsStart+i, err)
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

// checkListenEnv reports what sd_listen_fds(0) reports as an error and
// activation.Files does not: errListenEnv when LISTEN_PID or LISTEN_FDS is
// malformed, the errno when one of the passed descriptors is not open.
// Variables that are absent, or meant for another process, are no error.
func checkListenEnv(getenv func(string) (string, bool)) error {
	e, ok := getenv("LISTEN_PID")
	if !ok {
		return nil
	}
	pid, err := strconv.Atoi(e)
	if err != nil || pid <= 0 {
		return errListenEnv
	}
	if pid != os.Getpid() {
		return nil
	}
	e, ok = getenv("LISTEN_FDS")
	if !ok {
		return nil
	}
	n, err := strconv.Atoi(e)
	if err != nil || n <= 0 || n > 1<<20 {
		return errListenEnv
	}
	for fd := sdListenFDsStart; fd < sdListenFDsStart+n; fd++ {
		if err := checkFD(fd); err != nil {
			return err
		}
	}
	return nil
}

// sdNotify sends state to the service manager on $NOTIFY_SOCKET, as
// sd_notify(0, state) does; without the variable it does nothing. Errors
// are ignored, as stock epmd ignores them.
func sdNotify(state string) {
	sddaemon.SdNotify(false, state)
}
