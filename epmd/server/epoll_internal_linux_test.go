package server

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestLoopFailureNeverPokesAClosedDescriptor: when epoll_wait fails, the
// loop asks for a shutdown, which stops the loop by writing to its wake
// eventfd. The loop must not have closed that eventfd by then: its number
// may already belong to another descriptor, which would get the write.
func TestLoopFailureNeverPokesAClosedDescriptor(t *testing.T) {
	s := New(Config{Backend: BackendEpoll})
	l := s.be.(*epollBackend)
	// Put a pipe where the epoll set was: the loop's next epoll_wait fails.
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	if err := unix.Dup3(p[0], l.epfd, unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	unix.Close(p[0])
	unix.Close(p[1])
	wake := l.wakefd
	s.post(func() {}) // out of the epoll_wait it is in (on the set it still holds)

	select {
	case <-s.exited: // the loop closed its descriptors, wake among them
	case <-time.After(5 * time.Second):
		t.Fatal("the loop did not stop after epoll_wait failed")
	}
	// Take wake's number if it is free.
	got := -1
	var others []int
	for range 64 {
		fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
		if err != nil {
			break
		}
		if fd == wake {
			got = fd
			break
		}
		others = append(others, fd)
	}
	for _, fd := range others {
		unix.Close(fd)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	if got >= 0 {
		var b [8]byte
		if n, _ := unix.Read(got, b[:]); n == 8 {
			t.Errorf("the loop wrote to descriptor %d after closing it", got)
		}
		unix.Close(got)
	}
}

// TestDroppedListenerNotRearmed: a listener backing off after EMFILE (out
// of the epoll set's events until retryAt) that fails for good meanwhile
// is closed at once; when the back-off ends, its descriptor number may
// belong to another socket in the set, which must not be re-armed under
// the listener's key.
func TestDroppedListenerNotRearmed(t *testing.T) {
	s := New(Config{Backend: BackendEpoll})
	defer s.Shutdown(context.Background())
	// A loop of our own, not running: the test plays its part.
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(epfd)
	l := &epollBackend{s: s, epfd: epfd, wakefd: -1, pending: map[uint64]*rawConn{},
		lns: map[uint64]*listenSock{}}

	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	failed := make(chan error, 1)
	if err := l.listen(ln, func(err error) { failed <- err }); err != nil {
		t.Fatal(err)
	}
	var ls *listenSock
	for _, x := range l.lns {
		ls = x
	}
	// Backing off, as acceptOn does after EMFILE.
	if err := l.ctl(unix.EPOLL_CTL_MOD, ls.fd, ls.key, 0); err != nil {
		t.Fatal(err)
	}
	ls.retryAt = time.Now()
	l.disarmed = append(l.disarmed, ls)
	// It fails for good; its number goes to a new socket in the set.
	num := ls.fd
	l.dropListener(ls, errors.New("injected"))
	<-failed
	other := -1
	var spare []int
	for range 64 {
		fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
		if err != nil {
			break
		}
		if fd == num {
			other = fd
			break
		}
		spare = append(spare, fd)
	}
	for _, fd := range spare {
		unix.Close(fd)
	}
	if other < 0 {
		t.Skipf("descriptor %d was not free again", num)
	}
	defer unix.Close(other)
	const key = 12345 // a kept socket's
	if err := l.ctl(unix.EPOLL_CTL_ADD, other, key, unix.EPOLLIN); err != nil {
		t.Fatal(err)
	}

	l.timers() // the back-off is over
	one := [8]byte{1}
	unix.Write(other, one[:])
	events := make([]unix.EpollEvent, 4)
	n, err := unix.EpollWait(epfd, events, 1000)
	if err != nil || n != 1 {
		t.Fatalf("epoll_wait: %d events, %v", n, err)
	}
	if got := uint64(uint32(events[0].Fd)) | uint64(uint32(events[0].Pad))<<32; got != key {
		t.Errorf("the socket that took the dropped listener's number fires under key %x, want %x", got, key)
	}
}
