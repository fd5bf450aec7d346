//go:build linux

package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakeSystemd plays systemd's side of a service with a socket unit and a
// descriptor store: it holds the listening socket, reads the notification
// socket, keeps the descriptors sent with FDSTORE=1 under their FDNAME,
// drops them on FDSTOREREMOVE=1, and starts the service with LISTEN_FDS
// and LISTEN_FDNAMES naming the socket and the stored descriptors.
type fakeSystemd struct {
	notify *net.UnixConn
	path   string
	ln     *os.File

	mu     sync.Mutex
	store  map[string]*os.File
	order  []string
	msgs   []string
	grew   chan struct{}
	closed chan struct{}
}

func newFakeSystemd(t *testing.T, port int) *fakeSystemd {
	t.Helper()
	f := &fakeSystemd{store: map[string]*os.File{}, grew: make(chan struct{}), closed: make(chan struct{})}
	f.path = filepath.Join(t.TempDir(), "notify")
	var err error
	if f.notify, err = net.ListenUnixgram("unixgram", &net.UnixAddr{Name: f.path, Net: "unixgram"}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		f.notify.Close()
		return nil
	}
	f.ln, err = ln.(*net.TCPListener).File()
	ln.Close()
	if err != nil {
		t.Fatal(err)
	}
	go f.read()
	t.Cleanup(func() {
		f.notify.Close()
		<-f.closed
		f.ln.Close()
		for _, fl := range f.store {
			fl.Close()
		}
	})
	return f
}

func (f *fakeSystemd) read() {
	defer close(f.closed)
	buf := make([]byte, 4096)
	oob := make([]byte, syscall.CmsgSpace(4*16))
	for {
		n, oobn, _, _, err := f.notify.ReadMsgUnix(buf, oob)
		if err != nil {
			return
		}
		msg := string(buf[:n])
		var fds []int
		if cms, err := syscall.ParseSocketControlMessage(oob[:oobn]); err == nil {
			for _, cm := range cms {
				if got, err := syscall.ParseUnixRights(&cm); err == nil {
					fds = append(fds, got...)
				}
			}
		}
		fields := map[string]string{}
		for _, l := range strings.Split(msg, "\n") {
			k, v, _ := strings.Cut(l, "=")
			fields[k] = v
		}
		f.mu.Lock()
		switch {
		case fields["FDSTORE"] == "1" && len(fds) == 1:
			name := fields["FDNAME"]
			if old := f.store[name]; old != nil {
				old.Close()
			} else {
				f.order = append(f.order, name)
			}
			f.store[name] = os.NewFile(uintptr(fds[0]), name)
		case fields["FDSTOREREMOVE"] == "1":
			if fl := f.store[fields["FDNAME"]]; fl != nil {
				fl.Close()
				delete(f.store, fields["FDNAME"])
				f.order = slices.DeleteFunc(f.order, func(n string) bool { return n == fields["FDNAME"] })
			}
			for _, fd := range fds {
				syscall.Close(fd)
			}
		default:
			for _, fd := range fds {
				syscall.Close(fd)
			}
		}
		f.msgs = append(f.msgs, msg)
		close(f.grew)
		f.grew = make(chan struct{})
		f.mu.Unlock()
	}
}

// waitMsg waits for a message with prefix and returns how many there are.
func (f *fakeSystemd) waitMsg(t *testing.T, prefix string, n int) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		f.mu.Lock()
		c := 0
		for _, m := range f.msgs {
			if strings.HasPrefix(m, prefix) {
				c++
			}
		}
		grew := f.grew
		f.mu.Unlock()
		if c >= n {
			return
		}
		select {
		case <-grew:
		case <-deadline:
			t.Fatalf("no %d notifications %q; got %q", n, prefix, f.msgs)
		}
	}
}

func (f *fakeSystemd) storeLen() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.store)
}

// start starts the service: bin with LISTEN_FDS for the socket and the
// stored descriptors, and LISTEN_PID set by sh to its own pid, which exec
// keeps. Its stderr goes to log.
func (f *fakeSystemd) start(t *testing.T, bin string, log *lineLog, args ...string) *exec.Cmd {
	t.Helper()
	f.mu.Lock()
	files := []*os.File{f.ln}
	names := []string{"epmd.socket"}
	for _, n := range f.order {
		if fl := f.store[n]; fl != nil {
			files = append(files, fl)
			names = append(names, n)
		}
	}
	f.mu.Unlock()
	script := fmt.Sprintf(`LISTEN_PID=$$ LISTEN_FDS=%d LISTEN_FDNAMES=%s; export LISTEN_PID LISTEN_FDS LISTEN_FDNAMES; exec "$0" "$@"`,
		len(files), strings.Join(names, ":"))
	cmd := exec.Command("sh", append([]string{"-c", script, bin}, args...)...)
	cmd.ExtraFiles = files
	cmd.Env = append(baseEnv(), "NOTIFY_SOCKET="+f.path, "GOPMD_BACKEND=epoll")
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	go func() {
		buf := make([]byte, 64<<10)
		var rest string
		for {
			n, err := pr.Read(buf)
			rest += string(buf[:n])
			for {
				i := strings.IndexByte(rest, '\n')
				if i < 0 {
					break
				}
				log.add(rest[:i])
				rest = rest[i+1:]
			}
			if err != nil {
				pr.Close()
				return
			}
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill() // only the process this test started
		cmd.Wait()
	})
	return cmd
}

// TestSystemdRestartKeepsRegistrations: with the socket in the socket unit
// and the registrations and the snapshot in the descriptor store, a
// restart (SIGTERM, then a new process) loses nothing: 200 registrations
// and an erl node keep their sockets and names, look-ups running all along
// never fail, and the new process takes the descriptors out of the store.
func TestSystemdRestartKeepsRegistrations(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts a daemon with 200 registrations")
	}
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh to set LISTEN_PID")
	}
	erl := erlProgram(t)
	var sd *fakeSystemd
	var port int
	for range startAttempts {
		port = freePort(t)
		if sd = newFakeSystemd(t, port); sd != nil {
			break
		}
	}
	if sd == nil {
		t.Fatal("no port")
	}
	log := &lineLog{grew: make(chan struct{})}
	args := []string{"-port", strconv.Itoa(port), "-systemd", "-d"}
	first := sd.start(t, ourBin, log, args...)
	sd.waitMsg(t, "READY=1", 1)

	regs := registerRaw(t, port, 200)
	erlNode(t, erl, port, "sdnode")
	all := []string{"sdnode"}
	for i := range regs {
		all = append(all, fmt.Sprintf("raw%03d", i))
	}
	before := names(t, port)
	look := startLookers(t, port, 4, all)
	time.Sleep(200 * time.Millisecond)

	for round := 1; round <= 3; round++ {
		cmd := first
		if round > 1 {
			cmd = sd.start(t, ourBin, log, args...)
			sd.waitMsg(t, "READY=1", round)
		}
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		sd.waitMsg(t, "FDSTORE=1\nFDNAME=gopmd-snapshot", round)
		cmd.Wait()
		if n := sd.storeLen(); n != 202 {
			t.Fatalf("round %d: %d descriptors stored, want 202 (200 + erl node + snapshot); log:\n%s", round, n, log)
		}
	}
	next := sd.start(t, ourBin, log, args...)
	sd.waitMsg(t, "READY=1", 4)
	waitFor(t, "the store emptied", func() bool { return sd.storeLen() == 0 })
	time.Sleep(200 * time.Millisecond)
	look.finish(t)
	if after := names(t, port); after != before {
		t.Errorf("names before:\n%s\nafter:\n%s", before, after)
	}
	checkOpen(t, regs)
	if c := log.count(regexp.MustCompile(`registered node .*name=sdnode\b`)); c != 1 {
		t.Errorf("erl node registered or unregistered %d times, want 1 registration", c)
	}
	if c := log.count(regexp.MustCompile(`restart: restored 201 nodes and 201 registration sockets`)); c != 3 {
		t.Errorf("%d restores logged, want 3:\n%s", c, log.String())
	}
	// The store no longer holds them: a node that leaves is seen leaving.
	regs[5].Close()
	waitFor(t, "raw005 gone", func() bool { return !strings.Contains(names(t, port), "raw005") })

	// An in-place upgrade under systemd: the old process names the new
	// one the main process, and waits for systemd to have read it.
	next.Process.Signal(syscall.SIGUSR2)
	m, _ := log.waitMatch(t, 0, tookOverLine, 30*time.Second)
	sd.waitMsg(t, "MAINPID="+m[1], 1)
	next.Wait()
	time.Sleep(100 * time.Millisecond)
	sd.mu.Lock()
	for _, msg := range sd.msgs {
		if strings.Contains(msg, "READY=1") && strings.Contains(msg, "MAINPID="+m[1]) {
			t.Errorf("the upgraded process sent %q: only the main process may", msg)
		}
	}
	sd.mu.Unlock()
	if c := log.count(regexp.MustCompile(`did not confirm`)); c != 0 {
		t.Errorf("the barrier failed:\n%s", log)
	}
	pid, _ := strconv.Atoi(m[1])
	syscall.Kill(pid, syscall.SIGTERM) // the process this test's daemon started
	waitGone(t, pid)
}
