package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Flavours of epmd. The flavour decides which [stock]/[gopmd] lines of a
// script apply.
const (
	Stock = "stock"
	Gopmd = "gopmd"
)

// GopmdRelease is the OTP release whose stock epmd gopmd follows where
// releases differ: the release an [otp...] condition of a script is
// checked against for a gopmd daemon.
const GopmdRelease = 29

// A Target is the epmd under test: a binary the suite starts for every
// case, or the address of one already running.
type Target struct {
	// Path is the epmd binary. The suite starts it as a child process,
	// on a free loopback port, for each case.
	Path string
	// Flavour is Stock or Gopmd (see DetectFlavour).
	Flavour string
	// Release is the OTP release whose epmd this is (stock), or follows
	// (gopmd): the major number, 25 for OTP 25.2.3. 0 means unknown; an
	// [otp...] condition of a script is then false.
	Release int
	// Addr, if set, is a running daemon ("127.0.0.1:4369", "[::1]:4369")
	// to use instead of starting Path. Only cases that need nothing but a
	// plain daemon run against it, one at a time; the others are skipped.
	Addr string
	// Command, if set, is how to start the daemon instead of
	// "Path -port PORT FLAGS...": a command template (see
	// ParseCommandTemplate).
	Command []string
	// CLI, if set, is how to run the client instead of "Path ARGS...":
	// a command template in which {args} stands for the arguments.
	CLI []string
	// Without lists the capabilities the daemon does not have: the cases
	// that need one of them are skipped.
	Without Capabilities
	// Probe is how the suite tells that a daemon it started is ready:
	// ProbePortPlease (the default), ProbeNames or ProbeConnect.
	Probe string
	// Limits bound every wait of the suite on this daemon.
	Limits Limits
	// Dir is the working directory of the daemons and clients the suite
	// starts ("": the suite's own), where whatever they write (a BEAM's
	// crash dump) ends up.
	Dir string
}

// Readiness probes.
const (
	// ProbePortPlease connects and asks for an unknown name, reading the
	// answer to the end (any answer, or a close, will do).
	ProbePortPlease = "port-please"
	// ProbeNames connects and asks for NAMES, reading the reply to the end.
	ProbeNames = "names"
	// ProbeConnect only connects.
	ProbeConnect = "connect"
)

// Limits are the suite's time limits. Zero fields take the defaults.
type Limits struct {
	// Start bounds a daemon's start: until it answers the probe, or
	// until the launcher of -daemon returns.
	Start time.Duration
	// Step is how much longer than its own stated wait (within, for,
	// sleep) a step may take.
	Step time.Duration
	// Case bounds a whole case, daemon start and stop included.
	Case time.Duration
}

// Default limits.
const (
	DefaultStartLimit = 20 * time.Second
	DefaultStepLimit  = 15 * time.Second
	DefaultCaseLimit  = 2 * time.Minute
)

func (l Limits) start() time.Duration { return orDefault(l.Start, DefaultStartLimit) }

// cli bounds a run of the client: half the start limit, at least 10 s (a
// client that starts a BEAM takes about as long as a daemon that does).
func (l Limits) cli() time.Duration  { return max(l.start()/2, 10*time.Second) }
func (l Limits) step() time.Duration { return orDefault(l.Step, DefaultStepLimit) }
func (l Limits) caseLimit() time.Duration {
	return orDefault(l.Case, DefaultCaseLimit)
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
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
	ownGroup(cmd)
	cmd.Cancel = func() error { killGroup(cmd); return nil }
	cmd.WaitDelay = time.Second
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
	portLo    int // with portHi: the range every port comes from; 0: any
	portHi    int
)

// SetPortRange confines every port the suite hands out (daemons, $free)
// to lo..hi. Ports a script names literally (-port 70000) are not
// affected.
func SetPortRange(lo, hi int) error {
	if lo < 1 || hi > 65535 || lo > hi {
		return fmt.Errorf("bad port range %d-%d", lo, hi)
	}
	portsMu.Lock()
	defer portsMu.Unlock()
	portLo, portHi = lo, hi
	return nil
}

// freePort returns a port that was free on 127.0.0.1 and ::1 (when IPv6
// loopback exists) and has not been handed out before in this process;
// once every port of a -ports range has been handed out, ports are
// handed out again.
func freePort() (int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	if portLo > 0 {
		n := portHi - portLo + 1
		for pass := 0; pass < 2; pass++ {
			start := rand.IntN(n)
			for i := 0; i < n; i++ {
				p := portLo + (start+i)%n
				if (pass == 0 && portsUsed[p]) || !portFree(p) {
					continue
				}
				portsUsed[p] = true
				return p, nil
			}
		}
		return 0, fmt.Errorf("no free loopback port in %d-%d", portLo, portHi)
	}
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
	exitHow  string        // valid after done: "exit status 2", "signal: segmentation fault"
	killed   atomic.Bool   // the suite killed it
	host     string        // where it listens: 127.0.0.1 unless -addr says otherwise
	port     int           // configured port ($port)
	dialPort int           // where it listens
	detached bool          // started with -daemon: the child exits at once
	probe    string
	unlock   func()
}

// errSkip makes a case SKIP instead of FAIL.
type errSkip struct{ reason string }

func (e *errSkip) Error() string { return e.reason }

// errBlocked is a failure on a capability the case is not about: it makes
// the case BLOCKED (by cap) rather than FAIL, unless the case is about cap.
type errBlocked struct {
	cap string
	err error
}

func (e *errBlocked) Error() string { return e.err.Error() }
func (e *errBlocked) Unwrap() error { return e.err }

// startDaemon starts the daemon of a case and waits until it answers the
// readiness probe.
func startDaemon(ctx context.Context, t Target, d *daemonStep, v vars) (*daemonProc, error) {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		p, err := tryStartDaemon(ctx, t, d, v)
		if err == nil {
			return p, nil
		}
		if !errors.Is(err, errPortRace) {
			return nil, err
		}
		lastErr = err
	}
	return nil, lastErr
}

var errPortRace = errors.New("daemon exited at once with status 0, and its port was taken meanwhile by another program")

// daemonFlags names the case's daemon flags (not -port), for messages and
// capabilities.
func (d *daemonStep) flags() []string {
	var fl []string
	for _, a := range d.args {
		if s := a.it.s; strings.HasPrefix(s, "-") && s != "-port" {
			fl = append(fl, s)
		}
	}
	return fl
}

func tryStartDaemon(ctx context.Context, t Target, d *daemonStep, v vars) (*daemonProc, error) {
	p := &daemonProc{done: make(chan struct{}), detached: d.detach, host: "127.0.0.1", probe: t.Probe}
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
	argv, tenv, err := t.daemonCommand(p.dialPort, explicitPort, args)
	if err != nil {
		p.release()
		return nil, err
	}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Dir = t.Dir
	p.cmd.Env = cleanEnv(append(tenv, env...))
	p.stderr = new(lockedBuffer)
	p.cmd.Stdout = p.stderr
	p.cmd.Stderr = p.stderr
	// A daemon's own children may keep its output open after it exits.
	p.cmd.WaitDelay = 2 * time.Second
	ownGroup(p.cmd)
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
		p.exitHow = p.cmd.ProcessState.String()
		close(p.done)
	}()
	limit := t.Limits.start()
	// A start that fails with flags is blocked by the flag the daemon's
	// output names, else by the first.
	fail := func(err error) error {
		fl := d.flags()
		if len(fl) == 0 {
			return err
		}
		by := fl[0]
		out := p.stderr.String()
		for _, f := range fl {
			if strings.Contains(out, f) {
				by = f
				break
			}
		}
		return &errBlocked{by, err}
	}
	if p.detached {
		select {
		case <-p.done:
			if p.exitCode != 0 {
				p.release()
				return nil, fail(fmt.Errorf("epmd -daemon exited with %s: %s", p.exitHow, p.stderr.String()))
			}
		case <-time.After(limit):
			p.stop()
			return nil, &errTimeout{fmt.Sprintf("the launching process of %s to return (it should detach and exit 0), for %v", strings.Join(argv, " "), limit)}
		case <-ctx.Done():
			p.stop()
			return nil, ctx.Err()
		}
	}
	deadline := time.Now().Add(limit)
	for {
		if err := p.ready(); err == nil {
			return p, nil
		}
		select {
		case <-p.done:
			if !p.detached {
				p.release()
				out := tail(p.stderr.String(), 600)
				if p.exitCode == 0 && !portFree(p.dialPort) {
					return nil, errPortRace
				}
				return nil, fail(fmt.Errorf("daemon exited with %s before answering (command: %s); output: %q", p.exitHow, strings.Join(argv, " "), out))
			}
		case <-ctx.Done():
			p.stop()
			return nil, ctx.Err()
		default:
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, &errTimeout{fmt.Sprintf("the daemon to answer the %s probe on %s (command: %s), for %v; output: %q", p.probeName(), p.addr4(), strings.Join(argv, " "), limit, tail(p.stderr.String(), 2000))}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// daemonCommand is the command line and extra environment that start the
// daemon on port with the case's flags.
func (t Target) daemonCommand(port int, explicitPort bool, args []string) (argv, env []string, err error) {
	portArgs := []string{"-port", strconv.Itoa(port)}
	if explicitPort {
		portArgs = nil
	}
	if t.Command == nil {
		return append(append([]string{t.Path}, portArgs...), args...), nil, nil
	}
	usesPort := false
	for _, w := range t.Command {
		usesPort = usesPort || strings.Contains(w, "{port}")
	}
	if usesPort {
		portArgs = nil
	}
	all := append(portArgs, args...)
	haveArgs := false
	for i, w := range t.Command {
		if w == "{args}" {
			argv = append(argv, all...)
			haveArgs = true
			continue
		}
		w = strings.ReplaceAll(w, "{port}", strconv.Itoa(port))
		w = strings.ReplaceAll(w, "{epmd}", t.Path)
		if len(argv) == 0 && envRE.MatchString(w) && i < len(t.Command)-1 {
			env = append(env, w)
			continue
		}
		argv = append(argv, w)
	}
	if !haveArgs && len(all) > 0 {
		return nil, nil, &errSkip{fmt.Sprintf("needs the daemon flags %q, and the daemon command template has no {args}", strings.Join(all, " "))}
	}
	if len(argv) == 0 {
		return nil, nil, errors.New("the daemon command template names no program")
	}
	return argv, env, nil
}

// cliCommand is the command line that runs the client with args.
func (t Target) cliCommand(args []string) ([]string, error) {
	if t.CLI == nil {
		if t.Path == "" {
			return nil, &errSkip{"no epmd binary to run"}
		}
		return append([]string{t.Path}, args...), nil
	}
	var argv []string
	for _, w := range t.CLI {
		if w == "{args}" {
			argv = append(argv, args...)
			continue
		}
		argv = append(argv, strings.ReplaceAll(w, "{epmd}", t.Path))
	}
	return argv, nil
}

func (p *daemonProc) probeName() string {
	if p.probe == "" {
		return ProbePortPlease
	}
	return p.probe
}

// ready runs the readiness probe once. A probe that sends a request reads
// the answer to the end, so that the daemon has closed the probe's
// connection before the case begins.
func (p *daemonProc) ready() error {
	c, err := net.DialTimeout("tcp", p.addr4(), time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	var req []byte
	switch p.probeName() {
	case ProbeConnect:
		return nil
	case ProbeNames:
		req = []byte{0, 1, 'n'}
	default:
		// PORT_PLEASE2_REQ for a name no case registers.
		req = append([]byte{0, 16, 'z'}, "conformance-rdy"...)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(req); err != nil {
		return err
	}
	b, err := io.ReadAll(c)
	if err != nil && len(b) == 0 {
		return err
	}
	if p.probeName() == ProbeNames && len(b) < 4 {
		return errors.New("short NAMES reply")
	}
	return nil
}

// answering checks that a running daemon still accepts and answers a
// probe, within limit.
func (p *daemonProc) answering(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var err error
	for time.Now().Before(deadline) {
		if err = p.ready(); err == nil {
			return nil
		}
		if p.cmd != nil && !p.detached && p.exited() {
			return fmt.Errorf("%v (the process has exited)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

func (p *daemonProc) addr4() string { return net.JoinHostPort(p.host, strconv.Itoa(p.dialPort)) }
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

// stopWait bounds how long stop waits for a killed process to be reaped.
const stopWait = 10 * time.Second

// stop ends the daemon: its process group is killed; a detached daemon
// (which has left our group) is asked to exit with KILL_REQ. Every wait
// is bounded.
func (p *daemonProc) stop() {
	defer p.release()
	if p.cmd == nil {
		return
	}
	if !p.exited() {
		p.killed.Store(true)
		killGroup(p.cmd)
	}
	select {
	case <-p.done:
	case <-time.After(stopWait):
	}
	if !p.detached {
		return
	}
	// KILL_REQ until the daemon says OK, then only wait for its port to
	// close: once it is gone, the port may soon be another daemon's (of
	// this run or of another program), which must not get a KILL_REQ.
	deadline := time.Now().Add(stopWait)
	killed := false
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", p.addr4(), time.Second)
		if err != nil {
			reapOrphans()
			return // gone
		}
		if !killed {
			c.SetDeadline(time.Now().Add(time.Second))
			c.Write([]byte{0, 1, 'k'})
			b, _ := io.ReadAll(c)
			killed = string(b) == "OK"
		}
		c.Close()
		time.Sleep(50 * time.Millisecond)
	}
	// It does not obey KILL_REQ: kill the process that listens on its
	// port, if it is a child of ours (reparented to us as subreaper).
	killOrphanListener(p.dialPort)
	reapOrphans()
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
