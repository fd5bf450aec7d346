//go:build unix

package main

import (
	"io/fs"
	"log/syslog"
	"os"
	"strconv"
	"syscall"
)

// syslogWriter is where the detached daemon logs: the system's syslog.
type syslogWriter = *syslog.Writer

// openSyslog connects to syslog with stock epmd's facility and tag.
func openSyslog() (syslogWriter, error) {
	return syslog.New(syslog.LOG_DAEMON|syslog.LOG_ERR, "epmd")
}

// detachAttr starts the daemon in a new session, as stock's fork and
// setsid do.
func detachAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setsid: true} }

// fileID returns a file's device and inode numbers.
func fileID(fi fs.FileInfo) (dev, ino uint64, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return uint64(st.Dev), uint64(st.Ino), true
}

// checkFD reports an error if fd is not an open descriptor.
func checkFD(fd int) error {
	if _, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFD, 0); e != 0 {
		return e
	}
	return nil
}

// closeInheritedOnExec marks every descriptor above stderr close-on-exec,
// so that the daemon gets none of those this process inherited (stock's
// daemon closes them all); the Go runtime's own are marked already.
func closeInheritedOnExec() {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return // not Linux: what the caller passed goes through
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	for _, name := range names {
		if fd, err := strconv.Atoi(name); err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
}

// inheritsExtraFiles: a child started with exec.Cmd.ExtraFiles gets them
// as descriptors 3 and up, which the -daemon copy's ready pipe uses.
const inheritsExtraFiles = true

// closeOnExec marks a descriptor close-on-exec.
func closeOnExec(fd int) { syscall.CloseOnExec(fd) }
