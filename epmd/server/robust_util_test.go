//go:build linux

package server_test

// Helpers of the robustness tests (robust_test.go, flood_test.go,
// netns_test.go): daemons run as separate processes (ours, built from
// ./cmd/epmd, and the stock C epmd), helper processes re-executing this
// test binary, look-up workloads and their latency figures.
//
// Figures are logged with t.Logf as "FIGURE name: ..." lines; they are
// measured, never asserted, because the machine is shared and noisy.
// docs/reliability.md quotes them from a real run.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gopmd/gopmd/epmd/client"
	"github.com/gopmd/gopmd/epmd/epmdtest"
	"github.com/gopmd/gopmd/epmd/internal/testenv"
	"github.com/gopmd/gopmd/epmd/server"
	"github.com/gopmd/gopmd/epmd/wire"
	"github.com/gopmd/gopmd/fsm"
)

// raceEnabled is set by race_on_test.go when built with -race.
var raceEnabled = false

// figure logs one measured figure.
func figure(t testing.TB, name, format string, args ...any) {
	t.Helper()
	t.Logf("FIGURE %s: %s", name, fmt.Sprintf(format, args...))
}

// skipShort skips a test that takes longer than about 20 s under -short.
func skipShort(t *testing.T, why string) {
	t.Helper()
	if testing.Short() {
		t.Skip("long test (" + why + "); skipped under -short")
	}
}

// ---------------------------------------------------------------------
// Daemon processes

// ourEpmd returns the path of our daemon (epmdtest.Ours).
func ourEpmd(t testing.TB) string {
	t.Helper()
	return epmdtest.Ours(t)
}

// syncBuffer collects a process's output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is a process started by a test; t.Cleanup kills it (SIGKILL) if it
// is still running, and waits for it.
type proc struct {
	name   string
	port   int
	cmd    *exec.Cmd
	out    *syncBuffer // stdout and stderr
	exited chan struct{}
	err    error // from Wait, set before exited is closed
}

// startProc starts argv with env added to a copy of this process's
// environment without the ERL_EPMD_ variables.
func startProc(t testing.TB, name string, argv, env []string) *proc {
	t.Helper()
	p := &proc{name: name, out: new(syncBuffer), exited: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Env = append(cleanEnv(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(p.kill)
	return p
}

func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ERL_EPMD_") && !strings.HasPrefix(kv, "GOPMD_HELPER") {
			env = append(env, kv)
		}
	}
	return env
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// wait waits up to d for the process to exit and reports whether it did.
func (p *proc) wait(d time.Duration) bool {
	select {
	case <-p.exited:
		return true
	case <-time.After(d):
		return false
	}
}

// status describes how the process ended: "exit 0", "exit 1", "signal:
// terminated".
func (p *proc) status() string {
	st := p.cmd.ProcessState
	if st == nil {
		return "running"
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return "killed by " + ws.Signal().String()
	}
	return "exit " + strconv.Itoa(st.ExitCode())
}

func (p *proc) signal(sig os.Signal) { p.cmd.Process.Signal(sig) }

func (p *proc) kill() {
	if p.running() {
		p.cmd.Process.Kill()
	}
	<-p.exited
}

func (p *proc) addr() string { return "127.0.0.1:" + strconv.Itoa(p.port) }

// daemonKind names the two daemons the tests compare.
type daemonKind string

const (
	gopmd daemonKind = "gopmd"
	stock daemonKind = "stock"
)

// daemonPath returns the binary of kind.
func daemonPath(t testing.TB, kind daemonKind) string {
	t.Helper()
	if kind == stock {
		return testenv.StockEpmd(t)
	}
	return ourEpmd(t)
}

// startDaemon runs bin (our or the stock epmd) as its own process on a
// free loopback port with args after -port, behind the command prefix
// (e.g. prlimit), and waits until it accepts connections. It retries with
// another port when the daemon exits at once (port taken meanwhile). The
// daemon listens on loopback only (-address 127.0.0.1 adds nothing to the
// two loopback sockets), never on the host's other interfaces.
func startDaemon(t testing.TB, kind daemonKind, bin string, prefix []string, args ...string) *proc {
	t.Helper()
	for attempt := 0; ; attempt++ {
		port := testenv.FreePort(t)
		argv := append(slices.Clone(prefix), bin, "-port", strconv.Itoa(port), "-address", "127.0.0.1")
		argv = append(argv, args...)
		p := startProc(t, string(kind), argv, nil)
		p.port = port
		if p.waitReady(10 * time.Second) {
			return p
		}
		if attempt == 2 || p.running() {
			t.Fatalf("%s daemon on port %d not ready: %s\n%s", kind, port, p.status(), p.out.String())
		}
	}
}

// waitReady waits until the daemon accepts on 127.0.0.1 and reports
// whether it is still running then.
func (p *proc) waitReady(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && p.running() {
		c, err := net.DialTimeout("tcp4", p.addr(), 200*time.Millisecond)
		if err == nil {
			c.Close()
			// A daemon that found the port taken exits at once
			// (with 0, as stock does): make sure ours is the one.
			time.Sleep(20 * time.Millisecond)
			return p.running()
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// openFds counts the open descriptors of process pid ("self" for this one).
func openFds(pid string) int {
	ents, err := os.ReadDir("/proc/" + pid + "/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// ---------------------------------------------------------------------
// In-process daemon on a known port (for erl, which needs the port)

// startLoopbackServer runs an in-process server on 127.0.0.1 and ::1 at a
// free port, as the daemon does with -address 127.0.0.1.
func startLoopbackServer(t *testing.T, cfg server.Config) (*server.Server, int) {
	t.Helper()
	s, port := epmdtest.NewLoopbackServer(t, cfg)
	return s.Server, port
}

// countHandler is a slog.Handler counting refusals by reason. The server
// logs a refusal in stock epmd's words (fsm.Refusal's Detail), so a
// duplicate is the line "node name already occupied NAME".
type countHandler struct {
	mu      sync.Mutex
	refused map[string]int
}

func newCountHandler() *countHandler { return &countHandler{refused: map[string]int{}} }

// duplicateMessage starts the line logged for a duplicate_name refusal.
const duplicateMessage = "node name already occupied "

func (h *countHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }
func (h *countHandler) Handle(_ context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, duplicateMessage) {
		h.mu.Lock()
		h.refused[fsm.ReasonDuplicate]++
		h.mu.Unlock()
	}
	return nil
}
func (h *countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countHandler) WithGroup(string) slog.Handler      { return h }

func (h *countHandler) count(reason string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.refused[reason]
}

// ---------------------------------------------------------------------
// Look-up workloads and latency figures

// latencies summarizes successful request times.
type latencies []time.Duration

func (l latencies) pct(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	i := int(float64(len(s))*p+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

func ms(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 2, 64) + " ms" }

// loadResult is the outcome of a look-up workload.
type loadResult struct {
	ok, failed int
	lat        latencies
	errs       map[string]int // failure kinds
	elapsed    time.Duration
}

func (r loadResult) String() string {
	s := fmt.Sprintf("%d/%d look-ups ok", r.ok, r.ok+r.failed)
	if r.ok > 0 {
		s += fmt.Sprintf(", p50 %s, p99 %s, max %s", ms(r.lat.pct(.5)), ms(r.lat.pct(.99)), ms(r.lat.pct(1)))
	}
	if r.failed > 0 {
		var kinds []string
		for k, n := range r.errs {
			kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
		}
		slices.Sort(kinds)
		s += " (failed: " + strings.Join(kinds, ", ") + ")"
	}
	return s + fmt.Sprintf(", in %.1f s", r.elapsed.Seconds())
}

// errKind classifies a client error for the figures.
func errKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timed out"
	case errors.Is(err, client.ErrClosed), errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
		return "closed without reply"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, client.ErrNotFound):
		return "not found"
	}
	return "other: " + err.Error()
}

// lookupLoad runs up to total PORT_PLEASE2 look-ups of name from workers
// goroutines, each bounded by each, and stops early when wall has passed.
// A look-up succeeds when it returns the node with the wanted port.
func lookupLoad(addr, name string, port uint16, workers, total int, wall, each time.Duration) loadResult {
	return pacedLookups(addr, name, port, workers, total, wall, each, 0)
}

// pacedLookups is lookupLoad with a pause after each look-up of a worker.
func pacedLookups(addr, name string, port uint16, workers, total int, wall, each, pause time.Duration) loadResult {
	return lookupsUntil(context.Background(), addr, name, port, workers, total, wall, each, pause)
}

// lookupsUntil is pacedLookups that also stops when ctx ends.
func lookupsUntil(ctx context.Context, addr, name string, port uint16, workers, total int, wall, each, pause time.Duration) loadResult {
	c := &client.Client{Addr: addr, Timeout: each}
	var mu sync.Mutex
	res := loadResult{errs: map[string]int{}}
	start := time.Now()
	next := 0
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				if next >= total || time.Since(start) > wall || ctx.Err() != nil {
					mu.Unlock()
					return
				}
				next++
				mu.Unlock()
				t0 := time.Now()
				n, err := c.Lookup(context.Background(), name)
				d := time.Since(t0)
				if err == nil && n.Port != port {
					err = fmt.Errorf("wrong port %d, want %d", n.Port, port)
				}
				mu.Lock()
				if err != nil {
					res.failed++
					res.errs[errKind(err)]++
				} else {
					res.ok++
					res.lat = append(res.lat, d)
				}
				mu.Unlock()
				if pause > 0 {
					time.Sleep(pause)
				}
			}
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	return res
}

// node returns a registration request like an Erlang node's.
func node(name string, port uint16) wire.Node {
	return wire.Node{Name: name, Port: port, Type: wire.NodeNormal, Proto: wire.ProtoTCP4, High: 6, Low: 5}
}

// rawRegister sends ALIVE2 for n on a new connection and reads the reply;
// it returns the open connection when the node was registered.
func rawRegister(addr string, n wire.Node, timeout time.Duration) (*net.TCPConn, error) {
	frame, err := wire.EncodeRequest(&wire.Alive2Req{Node: n})
	if err != nil {
		return nil, err
	}
	nc, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	c := nc.(*net.TCPConn)
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write(frame); err != nil {
		c.Close()
		return nil, err
	}
	var reply [6]byte
	if _, err := io.ReadFull(c, reply[:]); err != nil {
		c.Close()
		return nil, fmt.Errorf("ALIVE2 %q reply: %w", n.Name, err)
	}
	if reply[1] != 0 {
		c.Close()
		return nil, &client.RegisterError{Name: n.Name, Result: reply[1]}
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// reset closes c with an RST instead of a FIN.
func reset(c *net.TCPConn) {
	c.SetLinger(0)
	c.Close()
}

// namesOf returns the daemon's registered nodes as name -> port.
func namesOf(addr string) (map[string]uint16, error) {
	c := &client.Client{Addr: addr, Timeout: 10 * time.Second}
	_, nodes, err := c.Names(context.Background())
	if err != nil {
		return nil, err
	}
	m := make(map[string]uint16, len(nodes))
	for _, n := range nodes {
		m[n.Name] = uint16(n.Port)
	}
	return m, nil
}

// settle polls cond every 20 ms for up to d and reports whether it held.
func settle(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ---------------------------------------------------------------------
// Helper processes: this test binary re-executed in a helper mode.

const helperEnv = "GOPMD_HELPER_MODE"

// helperCmd returns a command running this test binary in helper mode,
// behind the command prefix (e.g. ip netns exec NS).
func helperCmd(t testing.TB, prefix []string, mode string, env ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	argv := append(slices.Clone(prefix), exe, "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(cleanEnv(), append([]string{helperEnv + "=" + mode, noRaceExitSleep()}, env...)...)
	return cmd
}

// noRaceExitSleep returns a GORACE setting without the race detector's
// one-second sleep at exit, which would slow every helper process down.
func noRaceExitSleep() string {
	return strings.TrimSpace("GORACE=" + os.Getenv("GORACE") + " atexit_sleep_ms=0")
}

// helperReg is a helper process holding a registration.
type helperReg struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  *bufio.Scanner
	exited chan struct{}
}

// startHelperReg starts a helper that registers name with port at addr
// and holds the registration until its stdin closes or it is killed. It
// returns once the helper reports the registration.
func startHelperReg(t testing.TB, prefix []string, addr, name string, port uint16) (*helperReg, error) {
	cmd := helperCmd(t, prefix, "register",
		"GOPMD_HELPER_ADDR="+addr, "GOPMD_HELPER_NAME="+name, "GOPMD_HELPER_PORT="+strconv.Itoa(int(port)))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	h := &helperReg{cmd: cmd, stdin: stdin, lines: bufio.NewScanner(stdout), exited: make(chan struct{})}
	got := make(chan string, 1)
	go func() {
		line := ""
		if h.lines.Scan() {
			line = h.lines.Text()
		}
		got <- line
		io.Copy(io.Discard, stdout)
		cmd.Wait()
		close(h.exited)
	}()
	select {
	case line := <-got:
		if !strings.HasPrefix(line, "registered") {
			h.kill()
			return nil, fmt.Errorf("helper for %q: %q", name, line)
		}
	case <-time.After(20 * time.Second):
		h.kill()
		return nil, fmt.Errorf("helper for %q: no answer", name)
	}
	return h, nil
}

func (h *helperReg) kill() {
	h.cmd.Process.Kill()
	<-h.exited
}

func (h *helperReg) close() {
	h.stdin.Close()
	select {
	case <-h.exited:
	case <-time.After(5 * time.Second):
		h.kill()
	}
}

// TestHelperProcess is not a test: it is the body of the helper processes
// (see helperCmd), and returns at once in a normal run.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		return
	}
	var err error
	switch mode {
	case "register":
		err = helperRegister()
	case "remote":
		err = helperRemote()
	default:
		err = errors.New("unknown helper mode " + mode)
	}
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// helperRegister registers a node and holds it until stdin closes.
func helperRegister() error {
	port, _ := strconv.Atoi(os.Getenv("GOPMD_HELPER_PORT"))
	c := &client.Client{Addr: os.Getenv("GOPMD_HELPER_ADDR"), Timeout: 10 * time.Second}
	n := node(os.Getenv("GOPMD_HELPER_NAME"), uint16(port))
	r, err := c.Register(context.Background(), n)
	// A daemon that was just started may not listen yet.
	for deadline := time.Now().Add(10 * time.Second); errors.Is(err, syscall.ECONNREFUSED) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		r, err = c.Register(context.Background(), n)
	}
	if err != nil {
		return err
	}
	fmt.Printf("registered %d\n", r.Creation())
	io.Copy(io.Discard, os.Stdin)
	return r.Close()
}
