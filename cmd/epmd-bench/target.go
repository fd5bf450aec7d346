package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gopmd/gopmd/epmd/client"
)

// Target kinds.
const (
	kindStarted  = "started"  // a daemon binary the tool started itself
	kindExternal = "external" // a running daemon given by -addr (and -pid)
	kindNull     = "null"     // the null server, a subprocess of the tool
)

// nullEnv, when set to "1" in the environment, makes the tool's binary (or
// the test binary) run the null server instead of its usual main.
const nullEnv = "EPMD_BENCH_NULL_SERVER"

// target is one daemon under test.
type target struct {
	Label string // as shown in reports: the binary's path, the address, or "null"
	Kind  string
	Path  string // kindStarted: the binary
	Addr  string // host:port the clients dial
	Pid   int    // 0 when unknown (no /proc figures)

	cmd      *exec.Cmd
	stdin    io.WriteCloser // kindNull: closing it stops the server
	exited   chan struct{}
	output   *tailBuffer
	restarts int
}

// canRegister reports whether the target keeps registrations. The null
// server answers every request with "w\x01".
func (t *target) canRegister() bool { return t.Kind != kindNull }

// client returns a client of the target.
func (t *target) client(timeout time.Duration) *client.Client {
	return &client.Client{Addr: t.Addr, Timeout: timeout}
}

// daemonPort returns the port a daemon the tool started listens on, as
// given by its -port, which is what it sends in the header of a NAMES
// reply; 0 for other targets, whose configured port the tool cannot know.
func (t *target) daemonPort() uint16 {
	if t.Kind != kindStarted {
		return 0
	}
	_, p, err := net.SplitHostPort(t.Addr)
	if err != nil {
		return 0
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return 0
	}
	return uint16(port)
}

// alive reports whether the target's process is still running, as far as
// the tool can tell.
func (t *target) alive() bool {
	if t.exited == nil {
		return true
	}
	select {
	case <-t.exited:
		return false
	default:
		return true
	}
}

// start starts a daemon or the null server. External targets need nothing.
func (t *target) start(ctx context.Context) error {
	switch t.Kind {
	case kindStarted:
		return t.startDaemon(ctx)
	case kindNull:
		return t.startNull(ctx)
	}
	return nil
}

// startDaemon starts the binary on a free loopback port, the way the
// stock daemon is started for tests: -port P -address 127.0.0.1
// -relaxed_command_check (relaxed so that the tool can stop it with KILL
// even while nodes are registered). Stock epmd exits with status 0 when the
// port is taken, so an early exit means "try another port".
func (t *target) startDaemon(ctx context.Context) error {
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			return err
		}
		cloexecInherited()
		t.output = &tailBuffer{max: 8 << 10}
		cmd := exec.Command(t.Path, "-port", strconv.Itoa(port), "-address", "127.0.0.1", "-relaxed_command_check")
		cmd.Stdout = t.output
		cmd.Stderr = t.output
		cmd.SysProcAttr = dieWithParent()
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("starting %s: %w", t.Path, err)
		}
		t.cmd = cmd
		t.Pid = cmd.Process.Pid
		t.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		t.exited = make(chan struct{})
		go func(exited chan struct{}) {
			cmd.Wait()
			close(exited)
		}(t.exited)
		if lastErr = t.waitReady(ctx); lastErr == nil {
			return nil
		}
		t.kill()
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return fmt.Errorf("%s did not start: %w", t.Path, lastErr)
}

// waitReady waits, for at most 5 s, until the daemon answers NAMES.
func (t *target) waitReady(ctx context.Context) error {
	cl := t.client(250 * time.Millisecond)
	var err error
	for i := 0; i < 100; i++ {
		if !t.alive() {
			return fmt.Errorf("exited (%s); output: %q", t.cmd.ProcessState, t.output.String())
		}
		if _, err = cl.NamesRaw(ctx); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("no answer to NAMES on %s after 5s: %w", t.Addr, err)
}

// startNull starts the null server as a subprocess of the tool's own
// binary, so that it has a pid of its own for the /proc figures. It
// reports its address on its first line of output and exits when its
// standard input closes.
func (t *target) startNull(ctx context.Context) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cloexecInherited()
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), nullEnv+"=1")
	cmd.SysProcAttr = dieWithParent()
	t.output = &tailBuffer{max: 8 << 10}
	cmd.Stderr = t.output
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if t.stdin, err = cmd.StdinPipe(); err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the null server: %w", err)
	}
	t.cmd = cmd
	t.Pid = cmd.Process.Pid
	t.exited = make(chan struct{})
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- s
		io.Copy(io.Discard, stdout)
		cmd.Wait()
		close(t.exited)
	}()
	select {
	case s := <-line:
		addr, ok := strings.CutPrefix(strings.TrimSpace(s), "listening ")
		if !ok {
			t.kill()
			return fmt.Errorf("null server said %q; output: %q", s, t.output.String())
		}
		t.Addr = addr
		return nil
	case <-time.After(10 * time.Second):
		t.kill()
		return errors.New("the null server did not start within 10s")
	case <-ctx.Done():
		t.kill()
		return ctx.Err()
	}
}

// stop stops a process the tool started: KILL for a daemon (it runs
// relaxed, so KILL works with nodes registered), closing standard input for
// the null server; then, after 3 s, SIGKILL to that process's pid only.
func (t *target) stop() {
	if t.cmd == nil {
		return
	}
	switch t.Kind {
	case kindStarted:
		if t.alive() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			t.client(2 * time.Second).Kill(ctx)
			cancel()
		}
	case kindNull:
		t.stdin.Close()
	}
	select {
	case <-t.exited:
	case <-time.After(3 * time.Second):
		t.kill()
	}
	t.cmd = nil
}

// kill sends SIGKILL to the process the tool started and waits for it.
func (t *target) kill() {
	if t.cmd == nil || t.cmd.Process == nil {
		return
	}
	t.cmd.Process.Kill()
	select {
	case <-t.exited:
	case <-time.After(5 * time.Second):
	}
}

// ensureRunning restarts a started daemon that has died (stock epmd exits
// when accept fails for lack of descriptors). It returns a note for the
// report, or "" when nothing had to be done.
func (t *target) ensureRunning(ctx context.Context) (string, error) {
	if t.alive() || t.Kind == kindExternal {
		return "", nil
	}
	state := "exited"
	if t.cmd != nil && t.cmd.ProcessState != nil {
		state = t.cmd.ProcessState.String()
	}
	out := t.output.String()
	t.cmd = nil
	t.restarts++
	if err := t.start(ctx); err != nil {
		return "", err
	}
	return fmt.Sprintf("daemon had died (%s, output %q) and was restarted", state, out), nil
}

// freePort returns a TCP port that was free on both 127.0.0.1 and ::1 a
// moment ago (stock epmd also binds ::1 when given -address 127.0.0.1).
func freePort() (int, error) {
	for i := 0; i < 50; i++ {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		ln6, err := net.Listen("tcp6", net.JoinHostPort("::1", strconv.Itoa(port)))
		if err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				continue
			}
			return port, nil // no IPv6 on this host
		}
		ln6.Close()
		return port, nil
	}
	return 0, errors.New("no free port on loopback")
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (w *tailBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b = append(w.b, p...)
	if len(w.b) > w.max {
		w.b = append(w.b[:0], w.b[len(w.b)-w.max:]...)
	}
	return len(p), nil
}

func (w *tailBuffer) String() string {
	if w == nil {
		return ""
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.b)
}

// serveNull is the null server's main: a trivial accept-read-write-close
// server on a free 127.0.0.1 port. It reads one request frame (2-byte
// length, then that many bytes), writes "w\x01" (PORT_PLEASE2's "not
// found") and closes, which is the least work any epmd can do per look-up.
// It prints "listening ADDR" and runs until its standard input closes.
func serveNull() int {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "null server:", err)
		return 1
	}
	fmt.Printf("listening %s\n", ln.Addr())
	go func() {
		io.Copy(io.Discard, os.Stdin)
		ln.Close()
	}()
	if err := runNullServer(ln); err != nil {
		fmt.Fprintln(os.Stderr, "null server:", err)
		return 1
	}
	return 0
}

// runNullServer serves ln until it is closed.
func runNullServer(ln net.Listener) error {
	backoff := time.Millisecond
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of descriptors or similar: wait and go on.
			time.Sleep(backoff)
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = time.Millisecond
		go serveNullConn(c)
	}
}

func serveNullConn(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	var hdr [2]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return
	}
	var buf [3060]byte
	n := int(hdr[0])<<8 | int(hdr[1])
	if n == 0 || n > len(buf) {
		return
	}
	if _, err := io.ReadFull(c, buf[:n]); err != nil {
		return
	}
	c.Write([]byte{'w', 1})
}
