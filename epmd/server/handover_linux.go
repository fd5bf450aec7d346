package server

import (
	"os"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/gopmd/gopmd/fsm"
)

// The epoll backend's side of a handover (handover.go).

// freeze takes the listeners and the kept sockets out of the set: no
// accept, and a kept socket's news waits, level-triggered, for whichever
// process serves it next.
func (l *epollBackend) freeze() {
	l.frozen = true
	for _, ls := range l.lns {
		l.ctl(unix.EPOLL_CTL_DEL, ls.fd, 0, 0)
	}
	for _, c := range l.s.o.conns {
		if c.kept && !c.writing() && !c.closed {
			l.unwatch(c)
		}
	}
}

// unwatch takes a connection out of the set.
func (l *epollBackend) unwatch(c *conn) error {
	if c.inSet || c.watched {
		if err := l.ctl(unix.EPOLL_CTL_DEL, c.fd, 0, 0); err != nil {
			return err
		}
		c.inSet, c.watched = false, false
	}
	return nil
}

// thaw puts the listeners back; the owner watches its kept sockets again
// (keep).
func (l *epollBackend) thaw() {
	l.frozen = false
	for _, ls := range l.lns {
		if err := l.ctl(unix.EPOLL_CTL_ADD, ls.fd, ls.key, unix.EPOLLIN); err != nil {
			l.dropListener(ls, err)
		}
	}
}

func (l *epollBackend) busy() bool { return len(l.pending) > 0 || len(l.batch) > 0 }

// expire ends the pending connections as their packet timeout would.
func (l *epollBackend) expire() {
	for key, rc := range l.pending {
		delete(l.pending, key)
		l.s.arrived(rc.arrival(), nil, fsm.Timeout{})
		l.put(rc)
	}
	l.queue = nil
}

// listenerFiles returns duplicates of the listening sockets, in the order
// they were served.
func (l *epollBackend) listenerFiles() ([]*os.File, error) {
	keys := make([]uint64, 0, len(l.lns))
	for k := range l.lns {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var fs []*os.File
	for _, k := range keys {
		f, err := dupFile(l.lns[k].fd, "listener")
		if err != nil {
			for _, f := range fs {
				f.Close()
			}
			return nil, err
		}
		fs = append(fs, f)
	}
	return fs, nil
}

// adopt watches a handed-over kept socket. A peer that closed it in
// transit shows at once: the end of stream is level-triggered.
func (l *epollBackend) adopt(c *conn) error {
	if err := unix.SetNonblock(c.fd, true); err != nil {
		return err
	}
	return l.keep(c)
}

// dupFile returns a close-on-exec duplicate of fd as a file named name.
func dupFile(fd int, name string) (*os.File, error) {
	nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("fcntl", err)
	}
	return os.NewFile(uintptr(nfd), name), nil
}

// dupFd returns a close-on-exec duplicate of f's descriptor.
func dupFd(f *os.File) (int, error) {
	nfd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("fcntl", err)
	}
	return nfd, nil
}

func closeFd(fd int) { unix.Close(fd) }
