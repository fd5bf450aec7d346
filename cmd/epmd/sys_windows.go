package main

import (
	"errors"
	"io/fs"
	"syscall"
)

// syslogWriter: Windows has no syslog.
type syslogWriter interface {
	Err(string) error
	Warning(string) error
	Info(string) error
	Debug(string) error
	Close() error
}

// openSyslog fails: stock epmd is built without syslog on Windows
// (NO_SYSLOG), so its detached daemon logs nothing, and so does ours.
func openSyslog() (syslogWriter, error) {
	return nil, errors.New("no syslog on Windows")
}

// detachAttr starts the daemon detached from the console, as stock's
// spawnvp(_P_DETACH) does.
func detachAttr() *syscall.SysProcAttr {
	const detachedProcess = 0x00000008 // DETACHED_PROCESS
	return &syscall.SysProcAttr{CreationFlags: detachedProcess | syscall.CREATE_NEW_PROCESS_GROUP}
}

// fileID: Windows files have no device and inode numbers; systemd's
// journal does not exist there.
func fileID(fs.FileInfo) (dev, ino uint64, ok bool) { return 0, 0, false }

// checkFD: systemd does not pass sockets on Windows.
func checkFD(int) error { return errors.New("socket activation is not available on Windows") }

// closeInheritedOnExec: Windows passes a child no handle that was not
// asked for (the detached daemon gets none).
func closeInheritedOnExec() {}

// inheritsExtraFiles: os/exec cannot pass extra handles on Windows, so
// -daemon returns as soon as the detached copy has started, as stock's
// spawn does.
const inheritsExtraFiles = false

// closeOnExec: nothing to do; see inheritsExtraFiles.
func closeOnExec(int) {}
