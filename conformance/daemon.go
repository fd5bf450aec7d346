package conformance

import (
	"bytes"
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
	"time"
)

// Flavours of epmd. The flavour decides which [stock]/[gopmd] lines of a
// script apply.
const (
	Stock = "stock"
	Gopmd = "gopmd"
)

// A Target is the epmd under test: a binary the suite starts for every
// case, or the address of one already running.
type Target struct {
	// Path is the epmd binary. The suite starts it as a child process,
	// on a free loopback port, for each case.
	Path string
	// Flavour is Stock or Gopmd (see DetectFlavour).
	Flavour string
	// Addr, if set, is a running daemon ("127.0.0.1:4369") to use instead
	// of starting Path. Only cases that need nothing but a plain daemon
	// run against it, one at a time; the others are skipped.
	Addr string
}

// DetectFlavour tells gopmd from stock epmd by asking for -version: gopmd
// prints "gopmd VERSION" and exits 0, stock epmd does not know the flag.
func DetectFlavour(ctx context.Context, path string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "-version")
	cmd.Env = cleanEnv(nil)
	var out bytes.Buffer
	cmd.Stdout = &out
	err := startTracked(cmd)
	if err == nil {
		err = waitTracked(cmd)
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return "", fmt.Errorf("running %s -version: %v", path, err)
	}
	if err == nil && strings.HasPrefix(out.String(), "gopmd") {
		return Gopmd, nil
	}
	return Stock, nil
}

// cleanEnv returns the process environment without the variables that
// change epmd's behaviour, plus extra.
func cleanEnv(extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "ERL_EPMD_") || strings.HasPrefix(kv, "NOTIFY_SOCKET=") || strings.HasPrefix(kv, "LISTEN_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

var (
	portsMu   sync.Mutex
	portsUsed = map[int]bool{}
	fixedMu   = map[int]*sync.Mutex{}
)

// freePort returns a port that was free on 127.0.0.1 and ::1 (when IPv6
// loopback exists) and has not been handed out before in this process.
func freePort() (int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	for i := 0; i < 100; i++ {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if portsUsed[p] || !portFree(p) {
			continue
		}
		portsUsed[p] = true
		return p, nil
	}
	return 0, errors.New("no free loopback port")
}

// portFree reports whether p can be bound on both loopback addresses.
func portFree(p int) bool {
	ln, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		return false
	}
	ln.Close()
	if !HaveIPv6() {
		return true
	}
	ln6, err := net.Listen("tcp6", "[::1]:"+strconv.Itoa(p))
	if err != nil {
		return false
	}
	ln6.Close()
	return true
}

var ipv6Once = sync.OnceValue(func() bool {
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		return false
	}
	ln.Close()
	return true
})

// HaveIPv6 reports whether the IPv6 loopback address is usable.
func HaveIPv6() bool { return ipv6Once() }

// lockFixedPort serialises the cases that need one particular port.
func lockFixedPort(p int) func() {
	portsMu.Lock()
	mu := fixedMu[p]
	if mu == nil {
		mu = new(sync.Mutex)
		fixedMu[p] = mu
	}
	portsMu.Unlock()
	mu.Lock()
	return mu.Unlock
}

// lockedBuffer collects a child's stderr.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() < 1<<20 {
		b.buf.Write(p)
	}
	return len(p), nil
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// daemonProc is a daemon started for one case.
type daemonProc struct {
	cmd      *exec.Cmd
	stderr   *lockedBuffer
	done     chan struct{} // closed when the process has exited
	exitCode int           // valid after done; -1 if killed by a signal
	port     int           // configured port ($port)
	dialPort int           // where it listens
	detached bool          // started with -daemon: the child exits at once
	unlock   func()
}

// errSkip makes a case SKIP instead of FAIL.
type errSkip struct{ reason string }

func (e *errSkip) Error() string { return e.reason }

// startDaemon starts the daemon of a case and waits until it answers NAMES.
func startDaemon(ctx context.Context, t Target, d *daemonStep, v vars) (*daemonProc, error) {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		p, err := tryStartDaemon(ctx, t, d, v)
		if err == nil {
			return p, nil
		}
		var sk *errSkip
		if errors.As(err, &sk) || !errors.Is(err, errPortRace) {
			return nil, err
		}
		lastErr = err
	}
	return nil, lastErr
}

var errPortRace = errors.New("daemon exited at once with status 0 (port taken by someone else?)")

func tryStartDaemon(ctx context.Context, t Target, d *daemonStep, v vars) (*daemonProc, error) {
	p := &daemonProc{done: make(chan struct{}), detached: d.detach}
	explicitPort := false
	for _, a := range d.args {
		if a.it.s == "-port" {
			explicitPort = true
		}
	}
	for _, e := range d.env {
		if e.name == "ERL_EPMD_PORT" {
			explicitPort = true
		}
	}
	if d.fixedPort > 0 {
		p.port = d.fixedPort
		p.dialPort = d.fixedPort % 65536
		p.unlock = lockFixedPort(p.dialPort)
		if !portFree(p.dialPort) {
			p.unlock()
			return nil, &errSkip{fmt.Sprintf("port %d (from -port %d) is in use on loopback", p.dialPort, d.fixedPort)}
		}
	} else {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		p.port, p.dialPort = port, port
	}
	v["port"] = int64(p.port)
	var args []string
	if !explicitPort {
		args = append(args, "-port", strconv.Itoa(p.port))
	}
	for _, a := range d.args {
		s, err := a.eval(v)
		if err != nil {
			p.release()
			return nil, err
		}
		args = append(args, s)
	}
	var env []string
	for _, e := range d.env {
		s, err := e.val.eval(v)
		if err != nil {
			p.release()
			return nil, err
		}
		env = append(env, e.name+"="+s)
	}
	p.cmd = exec.Command(t.Path, args...)
	p.cmd.Env = cleanEnv(env)
	p.stderr = new(lockedBuffer)
	p.cmd.Stdout = p.stderr
	p.cmd.Stderr = p.stderr
	p.cmd.SysProcAttr = dieWithParent()
	if p.detached {
		becomeSubreaper()
	}
	if err := startTracked(p.cmd); err != nil {
		p.release()
		return nil, err
	}
	go func() {
		waitTracked(p.cmd)
		p.exitCode = p.cmd.ProcessState.ExitCode()
		close(p.done)
	}()
	if p.detached {
		select {
		case <-p.done:
			if p.exitCode != 0 {
				p.release()
				return nil, fmt.Errorf("epmd -daemon exited with status %d: %s", p.exitCode, p.stderr.String())
			}
		case <-time.After(5 * time.Second):
			p.stop()
			return nil, errors.New("epmd -daemon did not return within 5s")
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := p.probe(); err == nil {
			return p, nil
		}
		select {
		case <-p.done:
			if !p.detached {
				p.release()
				if p.exitCode == 0 {
					return nil, errPortRace
				}
				return nil, fmt.Errorf("daemon exited with status %d before answering; output: %q", p.exitCode, p.stderr.String())
			}
		case <-ctx.Done():
			p.stop()
			return nil, ctx.Err()
		default:
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("daemon did not answer NAMES on 127.0.0.1:%d within 10s; output: %q", p.dialPort, p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// probe sends NAMES and reads the reply to the end, so that the daemon
// has closed the probe's connection before the case begins.
func (p *daemonProc) probe() error {
	c, err := net.DialTimeout("tcp4", p.addr4(), time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte{0, 1, 'n'}); err != nil {
		return err
	}
	b, err := io.ReadAll(c)
	if err != nil {
		return err
	}
	if len(b) < 4 {
		return errors.New("short NAMES reply")
	}
	return nil
}

func (p *daemonProc) addr4() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.dialPort)) }
func (p *daemonProc) addr6() string { return net.JoinHostPort("::1", strconv.Itoa(p.dialPort)) }

func (p *daemonProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *daemonProc) release() {
	if p.unlock != nil {
		p.unlock()
		p.unlock = nil
	}
}

// stop ends the daemon: the child is killed; a detached daemon (which is
// not our child) is asked to exit with KILL_REQ.
func (p *daemonProc) stop() {
	defer p.release()
	if p.detached {
		<-p.done
		for i := 0; i < 50; i++ {
			c, err := net.DialTimeout("tcp4", p.addr4(), time.Second)
			if err != nil {
				reapOrphans()
				return // gone
			}
			c.SetDeadline(time.Now().Add(2 * time.Second))
			c.Write([]byte{0, 1, 'k'})
			io.ReadAll(c)
			c.Close()
			time.Sleep(50 * time.Millisecond)
		}
		return
	}
	if !p.exited() {
		p.cmd.Process.Kill()
	}
	<-p.done
}

// Child processes the suite waits for itself (os/exec). Everything else
// that ends up a child of ours is an orphaned -daemon daemon, reparented
// to us because we are a subreaper, and reapOrphans collects it.
var (
	trackedMu sync.Mutex
	tracked   = map[int]bool{}
)

func startTracked(cmd *exec.Cmd) error {
	trackedMu.Lock()
	defer trackedMu.Unlock()
	if err := cmd.Start(); err != nil {
		return err
	}
	tracked[cmd.Process.Pid] = true
	return nil
}

func waitTracked(cmd *exec.Cmd) error {
	err := cmd.Wait()
	trackedMu.Lock()
	delete(tracked, cmd.Process.Pid)
	trackedMu.Unlock()
	return err
}

// reapOrphans collects exited children that os/exec does not wait for.
func reapOrphans() {
	deadline := time.Now().Add(2 * time.Second)
	for {
		zombies, others := orphanChildren()
		for _, pid := range zombies {
			reap(pid)
		}
		if others == 0 || time.Now().After(deadline) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// orphanChildren lists our untracked children: the exited ones, and how
// many are still running.
func orphanChildren() (zombies []int, running int) {
	trackedMu.Lock()
	defer trackedMu.Unlock()
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, t := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + t.Name() + "/children")
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			pid, err := strconv.Atoi(f)
			if err != nil || tracked[pid] {
				continue
			}
			st, err := os.ReadFile("/proc/" + f + "/stat")
			if err != nil {
				continue
			}
			// pid (comm) state ...: the state follows the last ')'.
			i := bytes.LastIndexByte(st, ')')
			if i >= 0 && i+2 < len(st) && st[i+2] == 'Z' {
				zombies = append(zombies, pid)
			} else {
				running++
			}
		}
	}
	return zombies, running
}
