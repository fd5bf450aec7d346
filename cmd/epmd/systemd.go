package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"

	"github.com/gopmd/gopmd/epmd/server"
)

// sdListenFDsStart is the first descriptor systemd passes
// (SD_LISTEN_FDS_START).
const sdListenFDsStart = 3

// systemdListeners takes the listening sockets systemd passed, with the
// semantics of sd_listen_fds(0) from libsystemd: LISTEN_PID must name this
// process and LISTEN_FDS count the descriptors from 3 on; the environment
// is left as it is. Errors carry stock epmd's messages.
func systemdListeners(getenv func(string) (string, bool)) ([]net.Listener, error) {
	n, err := sdListenFDs(getenv)
	switch {
	case err == errListenEnv:
		// libsystemd returns -EINVAL without setting errno, so stock
		// prints no reason.
		return nil, errors.New("cannot obtain sockets from systemd")
	case err != nil:
		return nil, fmt.Errorf("cannot obtain sockets from systemd: %s", server.Strerror(err))
	case n == 0:
		return nil, errors.New("systemd provides no sockets")
	case n > server.MaxListeners:
		return nil, fmt.Errorf("cannot listen on more than %d IP addresses", server.MaxListeners)
	}
	var lns []net.Listener
	for fd := sdListenFDsStart; fd < sdListenFDsStart+n; fd++ {
		f := os.NewFile(uintptr(fd), "systemd socket "+strconv.Itoa(fd))
		ln, err := net.FileListener(f) // a duplicate, close-on-exec
		f.Close()
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, fmt.Errorf("cannot use socket %d from systemd: %v", fd, err)
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

// errListenEnv means LISTEN_PID or LISTEN_FDS is malformed.
var errListenEnv = errors.New("malformed LISTEN_PID or LISTEN_FDS")

// sdListenFDs is sd_listen_fds(0): 0 when the sockets are not meant for
// this process, errListenEnv when the variables are malformed, the errno
// when one of the descriptors is not open (checked before the count is
// compared with MaxListeners, as stock does).
func sdListenFDs(getenv func(string) (string, bool)) (int, error) {
	e, ok := getenv("LISTEN_PID")
	if !ok {
		return 0, nil
	}
	pid, err := strconv.Atoi(e)
	if err != nil || pid <= 0 {
		return 0, errListenEnv
	}
	if pid != os.Getpid() {
		return 0, nil
	}
	e, ok = getenv("LISTEN_FDS")
	if !ok {
		return 0, nil
	}
	n, err := strconv.Atoi(e)
	if err != nil || n <= 0 || n > 1<<20 {
		return 0, errListenEnv
	}
	for fd := sdListenFDsStart; fd < sdListenFDsStart+n; fd++ {
		if _, err := fcntl(fd, syscall.F_GETFD, 0); err != nil {
			return 0, err
		}
	}
	return n, nil
}

func fcntl(fd, cmd, arg int) (int, error) {
	r, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), uintptr(cmd), uintptr(arg))
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// sdNotify sends state to the service manager on $NOTIFY_SOCKET, as
// sd_notify(0, state) does; without the variable it does nothing. Errors
// are ignored, as stock epmd ignores them.
func sdNotify(getenv func(string) (string, bool), state string) {
	path, ok := getenv("NOTIFY_SOCKET")
	if !ok || path == "" || (path[0] != '/' && path[0] != '@') {
		return
	}
	// A leading '@' names an abstract socket, which Go understands.
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return
	}
	defer conn.Close()
	conn.Write([]byte(state))
}
