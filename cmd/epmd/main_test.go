package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopmd/gopmd/epmd/client"
	"github.com/gopmd/gopmd/epmd/wire"
)

// testVersion is stamped into the test binary with -ldflags -X.
const testVersion = "v0.0.0-test"

// ourBin is the epmd built once by TestMain; stockBin is the installed
// stock epmd, or "" when there is none.
var ourBin, stockBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gopmd-cmd-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ourBin = filepath.Join(dir, "epmd")
	build := exec.Command("go", "build", "-o", ourBin, "-ldflags", "-X main.version="+testVersion, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building epmd:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	if p, err := exec.LookPath("epmd"); err == nil {
		stockBin = p
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// impl is one epmd binary under test.
type impl struct{ name, bin string }

// impls returns ours, and stock when installed.
func impls() []impl {
	is := []impl{{"ours", ourBin}}
	if stockBin != "" {
		is = append(is, impl{"stock", stockBin})
	}
	return is
}

func needStock(t *testing.T) {
	t.Helper()
	if stockBin == "" {
		missingErlang(t, "stock epmd not installed: nothing to compare with")
	}
}

// result is what one invocation printed and returned.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
}

// stockTime matches the ctime stamp stock epmd puts in its log lines.
var stockTime = regexp.MustCompile(`epmd: [A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}: `)

// masked replaces log timestamps, which cannot match between two runs.
func (r result) masked() result {
	r.stderr = stockTime.ReplaceAllString(r.stderr, "epmd: TIME: ")
	return r
}

// baseEnv is the test's environment without the variables epmd reads.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "ERL_EPMD_"), k == envDaemonChild, strings.HasPrefix(k, "LISTEN_"), k == "NOTIFY_SOCKET":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// runBin runs bin with args and extra environment entries ("K=V") and
// waits for it, at most 20 s.
func runBin(t *testing.T, bin string, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(baseEnv(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("running %s %q: %v", bin, args, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("%s %q did not finish", bin, args)
	}
	return result{stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()}
}

// want checks got against the expected result.
func want(t *testing.T, what string, got, want result) {
	t.Helper()
	if got != want {
		t.Errorf("%s:\n got %v\nwant %v", what, got, want)
	}
}

// handedOut holds every port freePort returned, so that two tests of this
// process never get the same one.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// freePort returns a port that was free on 127.0.0.1 and on ::1 (when the
// host has IPv6) a moment ago and that no other test got. Another process
// may still take it (a client's ephemeral port, say): the start helpers
// retry with a new port when binding fails.
func freePort(t *testing.T) int {
	t.Helper()
	for range 100 {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		handedOut.Lock()
		taken := handedOut.ports[port]
		handedOut.ports[port] = true
		handedOut.Unlock()
		if taken {
			continue
		}
		if ln6, err := net.Listen("tcp6", net.JoinHostPort("::1", strconv.Itoa(port))); err == nil {
			ln6.Close()
			return port
		}
		if !hasIPv6() {
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

func hasIPv6() bool {
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// startAttempts is how many ports the start helpers try.
const startAttempts = 5

func portArgs(port int) []string { return []string{"-port", strconv.Itoa(port)} }

// daemonProc is a daemon started by a test.
type daemonProc struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer // written by exec until exited is closed
	exited chan struct{}
}

// startDaemon starts bin as a daemon on a free port, on 127.0.0.1 and ::1
// only (an -address list of 127.0.0.1 binds just the loopback sockets),
// waits until it answers NAMES, and kills it at cleanup unless it has
// exited.
func startDaemon(t *testing.T, bin string, env []string, extra ...string) (*daemonProc, int) {
	t.Helper()
	return spawnDaemon(t, func(port int) (*exec.Cmd, error) {
		args := append(portArgs(port), "-address", "127.0.0.1")
		return exec.Command(bin, append(args, extra...)...), nil
	}, env)
}

// spawnDaemon starts the daemon command mk makes for a free port and waits
// until it answers NAMES on 127.0.0.1:port. When the daemon exits at once
// (the port was taken meanwhile) or mk fails, it tries another port.
func spawnDaemon(t *testing.T, mk func(port int) (*exec.Cmd, error), env []string) (*daemonProc, int) {
	t.Helper()
	for range startAttempts {
		port := freePort(t)
		cmd, err := mk(port)
		if err != nil {
			t.Logf("port %d: %v; trying another", port, err)
			continue
		}
		d := &daemonProc{cmd: cmd, exited: make(chan struct{})}
		d.cmd.Env = append(baseEnv(), env...)
		d.cmd.Stderr = &d.stderr
		if err := d.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { d.cmd.Wait(); close(d.exited) }()
		t.Cleanup(func() {
			select {
			case <-d.exited:
			default:
				d.cmd.Process.Kill() // only the process this test started
				<-d.exited
			}
		})
		if waitUp(t, port, d.exited) {
			return d, port
		}
		t.Logf("daemon on port %d exited at start (stderr %q); trying another port", port, d.stderr.String())
	}
	t.Fatal("could not start a daemon")
	return nil, 0
}

// wait waits for the daemon to exit and returns its status.
func (d *daemonProc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-d.exited:
		return d.cmd.ProcessState.ExitCode()
	case <-time.After(10 * time.Second):
		t.Fatal("daemon did not exit")
		return -1
	}
}

// waitUp polls NAMES until the daemon on port answers (true), or exited
// is closed or 10 s pass (false).
func waitUp(t *testing.T, port int, exited <-chan struct{}) bool {
	t.Helper()
	c := &client.Client{Addr: "127.0.0.1:" + strconv.Itoa(port), Timeout: time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := c.NamesRaw(context.Background()); err == nil {
			return true
		}
		select {
		case <-exited:
			return false
		default:
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitDown polls until nothing accepts on 127.0.0.1:port.
func waitDown(t *testing.T, port int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
		if err != nil {
			return
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("daemon still up")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// register registers a node with the daemon on port and unregisters it at
// cleanup.
func register(t *testing.T, port int, name string, nodePort uint16) *client.Registration {
	t.Helper()
	c := &client.Client{Addr: "127.0.0.1:" + strconv.Itoa(port), Timeout: 5 * time.Second}
	r, err := c.Register(context.Background(), wire.Node{
		Name: name, Port: nodePort, Type: wire.NodeNormal, Proto: wire.ProtoTCP4, High: 6, Low: 5,
	})
	if err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}
