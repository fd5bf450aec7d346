//go:build unix

package handover

import (
	"errors"
	"fmt"
	"syscall"
)

// StoreFDs puts files into systemd's file descriptor store through the
// notification socket notifySocket (the service's $NOTIFY_SOCKET; "@..."
// is an abstract socket): one "FDSTORE=1\nFDNAME=name" message per file,
// with the descriptor, as sd_pid_notify_with_fds sends it. systemd keeps
// them (up to the unit's FileDescriptorStoreMax=) while the service
// restarts and passes them to its next process with LISTEN_FDS and
// LISTEN_FDNAMES. Names must be valid for systemd: at most 255 printable
// ASCII characters, no colon.
//
// go-systemd's daemon package (v22.7.0) sends no descriptors, hence this.
func StoreFDs(notifySocket string, files []NamedFile) error {
	if notifySocket == "" {
		return errors.New("handover: no notification socket (NOTIFY_SOCKET unset)")
	}
	for _, f := range files {
		if err := checkFDName(f.Name); err != nil {
			return err
		}
	}
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_DGRAM, 0)
	if err != nil {
		return fmt.Errorf("handover: %w", err)
	}
	defer syscall.Close(fd)
	to := &syscall.SockaddrUnix{Name: notifySocket} // "@name": abstract
	for _, f := range files {
		msg := []byte("FDSTORE=1\nFDNAME=" + f.Name)
		if err := syscall.Sendmsg(fd, msg, syscall.UnixRights(int(f.File.Fd())), to, 0); err != nil {
			return fmt.Errorf("handover: storing %s: %w", f.Name, err)
		}
	}
	return nil
}

// checkFDName applies systemd's fdname_is_valid.
func checkFDName(name string) error {
	if name == "" || len(name) > MaxName {
		return fmt.Errorf("handover: descriptor name %q: empty or longer than 255", name)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < ' ' || c > '~' || c == ':' {
			return fmt.Errorf("handover: descriptor name %q: systemd allows printable ASCII but ':'", name)
		}
	}
	return nil
}
