package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gopmd/gopmd/epmd/wire"
)

// Status is the outcome of running a case against one daemon.
type Status int

const (
	Pass Status = iota
	Fail
	Skip
	// Crash: the daemon died (or stopped answering) during the case,
	// and the case did not ask for that.
	Crash
	// Blocked: the case failed on a capability it is not about (its
	// setup), so it could not test what it is about.
	Blocked
	// Timeout: a step, the case or the run went past its time limit.
	Timeout
)

func (s Status) String() string {
	return [...]string{"PASS", "FAIL", "SKIP", "CRASH", "BLOCKED", "TIMEOUT"}[s]
}

// Outcome is what running one case against one target gave.
type Outcome struct {
	Status     Status
	Reason     string   // why it did not pass, starting with the line
	Transcript []string // one line per step: what was done or observed
	// Line is the failing step's first source line (0 if none);
	// Observed says what the daemon did there.
	Line     int
	Observed string
	// Step is the failing (or unfinished) step as written; Want what it
	// expected, when that can be said apart from the step.
	Step, Want string
	// BlockedBy is the capability a Blocked case failed on (a key of
	// Capabilities).
	BlockedBy string
	// Elapsed is how long the case took.
	Elapsed time.Duration

	// Filled in update mode: replacement text per step (by first line).
	updates map[int]update
	// goldens are golden files to write in update mode.
	goldens map[string][]byte
}

type update struct {
	first, last int
	text        string
}

// closeSettle is how long "close" waits after closing.
const closeSettle = 20 * time.Millisecond

// sconn is one scripted connection.
type sconn struct {
	c          net.Conn
	pending    *string // name sent in an ALIVE2 on this connection
	registered *string // name the daemon accepted from this connection
	lastSend   time.Time
	eof        bool  // read returned EOF
	rerr       error // read error other than a timeout (e.g. reset)
	writeErr   error
}

type runner struct {
	ctx   context.Context
	t     Target
	c     *Case
	v     vars
	d     *daemonProc
	conns map[string]*sconn
	last  *cliResult
	out   *Outcome
	// recording: -update mode, where failed expectations are re-recorded
	// instead of ending the case.
	recording bool
	goldens   func(name string) ([]byte, error)
	w         *watch
}

type cliResult struct {
	stdout, stderr []byte
	code           int
	args           []string
}

// stepFailure is an expectation that did not hold.
type stepFailure struct {
	msg      string
	observed string
	want     string
	upd      string // replacement text in update mode ("" = cannot update)
	cap      string // the capability the daemon showed it lacks, if any
}

func (e *stepFailure) Error() string { return e.msg }

// RunCase runs one case against one target. goldens reads the golden
// files named by "expect stdout file" (nil: none available).
func RunCase(ctx context.Context, t Target, c *Case, goldens func(string) ([]byte, error)) *Outcome {
	return runCase(ctx, t, c, goldens, false)
}

// errTimeout is a wait that went past its limit: what was awaited.
type errTimeout struct{ what string }

func (e *errTimeout) Error() string { return "timed out waiting for " + e.what }

// watch is what the watchdog of a case sees: the step in progress, since
// when and for how long it may run, and what to close to end it.
type watch struct {
	mu      sync.Mutex
	step    string
	src     *srcLine
	since   time.Time
	limit   time.Duration
	conns   []net.Conn
	d       *daemonProc
	aborted bool
}

func runCase(ctx context.Context, t Target, c *Case, goldens func(string) ([]byte, error), recording bool) *Outcome {
	start := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := &runner{ctx: ctx, t: t, c: c, v: vars{}, conns: map[string]*sconn{}, out: &Outcome{}, recording: recording, goldens: goldens, w: &watch{}}
	if recording {
		r.out.updates = map[int]update{}
		r.out.goldens = map[string][]byte{}
	}
	if k := t.Without.missing(c); k != "" {
		r.out.Status, r.out.Reason = Skip, "needs "+CapabilityTitle(k)+", which the daemon under test does not have (declared)"
		return r.out
	}
	done := make(chan *Outcome, 1)
	go func() { done <- r.body() }()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	caseLimit := t.Limits.caseLimit()
	for {
		var why string
		select {
		case o := <-done:
			o.Elapsed = time.Since(start)
			return o
		case <-ctx.Done():
			why = "the run's time limit or an interrupt ended the case"
			if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				why = err.Error()
			}
		case <-tick.C:
			why = r.overdue(start, caseLimit)
		}
		if why != "" {
			o := r.abort(why, done, cancel)
			o.Elapsed = time.Since(start)
			return o
		}
	}
}

// overdue says why the case must stop now ("" if it need not).
func (r *runner) overdue(start time.Time, caseLimit time.Duration) string {
	r.w.mu.Lock()
	defer r.w.mu.Unlock()
	if r.w.step != "" && time.Since(r.w.since) > r.w.limit {
		return fmt.Sprintf("step %s did not finish within %v", r.w.step, r.w.limit.Round(time.Millisecond))
	}
	if time.Since(start) > caseLimit {
		what := "the case"
		if r.w.step != "" {
			what += " (at step " + r.w.step + ")"
		}
		return fmt.Sprintf("%s did not finish within the case limit of %v", what, caseLimit)
	}
	return ""
}

// abort ends a case that ran out of time: everything it waits on is
// closed or killed, and it is reported as Timeout with what it waited for.
func (r *runner) abort(why string, done chan *Outcome, cancel func()) *Outcome {
	r.w.mu.Lock()
	r.w.aborted = true
	for _, c := range r.w.conns {
		c.Close()
	}
	d := r.w.d
	src := r.w.src
	r.w.mu.Unlock()
	cancel()
	if d != nil && d.cmd != nil {
		d.killed.Store(true)
		killGroup(d.cmd)
	}
	var o *Outcome
	select {
	case o = <-done:
	case <-time.After(stopWait + 2*time.Second):
		// The case is stuck beyond reach; report what is known.
		r.w.mu.Lock()
		o = &Outcome{Transcript: append([]string(nil), r.out.Transcript...)}
		r.w.mu.Unlock()
	}
	o.Status = Timeout
	o.Reason = why
	o.BlockedBy = ""
	if src != nil {
		o.Line, o.Step = src.first, src.text
		o.Reason = fmt.Sprintf("%s:%d: %s", r.c.File.Name, src.first, why)
	}
	if d != nil && d.stderr != nil {
		o.Transcript = append(o.Transcript, "daemon output:\n"+indent(tail(d.stderr.String(), 4000)))
	}
	return o
}

// begin tells the watchdog that step s starts, and how long it may take.
func (r *runner) begin(s step, own time.Duration) {
	src := s.pos()
	r.w.mu.Lock()
	defer r.w.mu.Unlock()
	r.w.src = src
	r.w.step = fmt.Sprintf("%s:%d %q", r.c.File.Name, src.first, src.text)
	r.w.since = time.Now()
	r.w.limit = own + r.t.Limits.step()
}

// phase tells the watchdog that the suite's own work after the steps
// starts (checking the daemon, stopping it), and how long it may take.
func (r *runner) phase(what string, own time.Duration) {
	r.w.mu.Lock()
	defer r.w.mu.Unlock()
	r.w.src = nil
	r.w.step = what
	r.w.since = time.Now()
	r.w.limit = own + r.t.Limits.step()
}

func (r *runner) watchConn(c net.Conn) {
	r.w.mu.Lock()
	defer r.w.mu.Unlock()
	r.w.conns = append(r.w.conns, c)
	if r.w.aborted {
		c.Close()
	}
}

// ownWait is how long a step says it may wait, on top of which the step
// limit applies.
func (r *runner) ownWait(s step) time.Duration {
	switch s := s.(type) {
	case *sleepStep:
		return s.d
	case *expectBytesStep:
		return s.within
	case *expectClosedStep:
		return s.within
	case *expectOpenStep:
		return s.dur + 300*time.Millisecond
	case *expectAlive2Step:
		return 2 * defaultWithin
	case *closeStep:
		return defaultWithin
	case *sendStep:
		b, _ := s.data.eval(vars{"port": 0, "free": 0})
		return time.Duration(len(b)+2)*s.dribble + 5*time.Second
	case *expectLogStep:
		return s.within
	case *expectDaemonStep:
		return s.within
	case *runStep:
		return r.t.Limits.cli()
	}
	return defaultWithin
}

func (r *runner) body() *Outcome {
	c, t := r.c, r.t
	defer r.cleanup()
	if c.usesFree {
		p, err := freePort()
		if err != nil {
			return r.finish(c.daemon, err)
		}
		r.v["free"] = int64(p)
	}
	if t.Addr != "" {
		if !c.Shared {
			r.out.Status, r.out.Reason = Skip, "needs a fresh daemon of its own (not marked shared)"
			return r.out
		}
		host, port, err := splitAddr(t.Addr)
		if err != nil {
			r.out.Status, r.out.Reason = Fail, err.Error()
			return r.out
		}
		r.d = &daemonProc{host: host, port: port, dialPort: port, done: make(chan struct{}), probe: t.Probe}
		r.v["port"] = int64(port)
	} else {
		r.begin(c.daemon, t.Limits.start()+stopWait)
		d, err := startDaemon(r.ctx, t, c.daemon, r.v)
		if err != nil {
			return r.finish(c.daemon, err)
		}
		r.d = d
		r.w.mu.Lock()
		r.w.d = d
		r.w.mu.Unlock()
		r.logf("%d: %s -> started, listening on %d", c.daemon.src.first, c.daemon.src.text, d.dialPort)
	}
	for _, s := range c.steps {
		if cond := s.pos().cond; !cond.holds(t.Flavour, t.Release) {
			continue
		}
		if err := r.ctx.Err(); err != nil {
			return r.finish(s, err)
		}
		r.begin(s, r.ownWait(s))
		err := r.exec(s)
		if err == nil {
			continue
		}
		var f *stepFailure
		if r.recording && errors.As(err, &f) {
			if f.upd == "" {
				return r.finish(s, fmt.Errorf("cannot re-record: %v", err))
			}
			src := s.pos()
			r.out.updates[src.first] = update{src.first, src.last, f.upd}
			r.logf("%d: %s -> re-recorded as: %s", src.first, src.text, f.upd)
			continue
		}
		return r.checkAlive(r.finish(s, err))
	}
	r.out.Status = Pass
	return r.checkAlive(r.out)
}

// crashSettle is how long after a case a daemon that answered is watched
// for an exit before the case is taken to have left it alive.
const crashSettle = 100 * time.Millisecond

// splitAddr parses -addr: 127.0.0.1:PORT, [::1]:PORT, localhost:PORT.
func splitAddr(addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	n, perr := strconv.Atoi(port)
	if err != nil || perr != nil || n < 1 || n > 65535 || host == "" {
		return "", 0, fmt.Errorf("-addr %q: want HOST:PORT, such as 127.0.0.1:4369 or [::1]:4369", addr)
	}
	if host == "localhost" {
		host = "127.0.0.1"
	}
	return host, n, nil
}

// checkAlive turns the outcome of a case into a Crash when the daemon
// died during it without the case asking for that, or no longer answers.
func (r *runner) checkAlive(o *Outcome) *Outcome {
	d := r.d
	if d == nil || o.Status == Skip || r.recording || r.c.expectsExit() {
		return o
	}
	r.phase("checking that the daemon still answers", r.t.Limits.start()+time.Second)
	// The case's own connections are done with: close them first, so that
	// a daemon serving one connection at a time can answer the probe.
	for name, c := range r.conns {
		c.c.Close()
		delete(r.conns, name)
	}
	var why string
	switch {
	case d.cmd != nil && !d.detached:
		err := d.answering(r.t.Limits.start())
		// A daemon that is dying may still answer (a Go panic runs the
		// deferred closes, prints its trace, then exits), and its exit
		// takes a moment to be collected: give it that moment.
		wait := crashSettle
		if err != nil {
			wait = time.Second
		}
		select {
		case <-d.done:
		case <-time.After(wait):
		}
		switch {
		case d.exited() && d.killed.Load():
			return o
		case d.exited():
			why = "the daemon exited during the case (" + d.exitHow + ")"
		case err != nil:
			why = fmt.Sprintf("the daemon is still running but no longer answers (%s probe: %v)", d.probeName(), err)
		}
	default:
		// -addr mode, or a detached daemon: it can only be asked.
		if err := d.answering(r.t.Limits.start()); err != nil {
			why = fmt.Sprintf("the daemon at %s no longer answers (%s probe: %v)", d.addr4(), d.probeName(), err)
		}
	}
	if why == "" {
		return o
	}
	prev := ""
	if o.Status != Pass {
		prev = "; before that: " + o.Reason
	}
	o.Status, o.BlockedBy = Crash, ""
	o.Reason = why + prev
	if d.stderr != nil {
		if s := d.stderr.String(); s != "" {
			o.Reason += "; its output ends: " + strconv.Quote(tail(s, 600))
		}
	}
	return o
}

// needsOwnDaemon says why a case cannot run against a shared, running
// daemon ("" if it can).
func (c *Case) needsOwnDaemon() string {
	if len(c.daemon.args) > 0 || len(c.daemon.env) > 0 {
		return "has daemon flags"
	}
	for _, s := range c.steps {
		switch s := s.(type) {
		case *runStep:
			return "runs the CLI"
		case *expectDaemonStep, *expectLogStep:
			return "watches the process"
		case *expectNamesStep, *expectDumpStep:
			return "checks the whole registry"
		case *expectAlive2Step:
			if s.creation.kind == "now" {
				return "expects a brand-new name"
			}
		case *sendStep:
			b, err := s.data.eval(vars{"port": 0, "free": 0})
			if err != nil {
				return "sends what only a fresh daemon can be sent"
			}
			if !s.raw {
				b = append([]byte{0, 0}, b...)
			}
			if len(b) >= 3 && (b[2] == 'k' || b[2] == 's') {
				return "sends KILL or STOP"
			}
		}
	}
	return ""
}

func (r *runner) finish(s step, err error) *Outcome {
	src := s.pos()
	var sk *errSkip
	if errors.As(err, &sk) {
		r.out.Status, r.out.Reason = Skip, sk.reason
		return r.out
	}
	r.out.Status = Fail
	r.out.Line = src.first
	r.out.Step = src.text
	r.out.Reason = fmt.Sprintf("%s:%d: %s: %v", r.c.File.Name, src.first, src.text, err)
	var f *stepFailure
	if errors.As(err, &f) {
		r.out.Observed = f.observed
		r.out.Want = f.want
	}
	var to *errTimeout
	if errors.As(err, &to) {
		r.out.Status = Timeout
	}
	capKey := ""
	var bl *errBlocked
	if errors.As(err, &bl) {
		capKey = bl.cap
	} else if f != nil {
		capKey = f.cap
	}
	if capKey != "" && r.out.Status == Fail && !r.c.about(capKey) {
		r.out.Status = Blocked
		r.out.BlockedBy = capKey
		r.out.Reason = "blocked by " + CapabilityTitle(capKey) + ": " + r.out.Reason
	}
	if r.d != nil && r.d.stderr != nil {
		if s := r.d.stderr.String(); s != "" {
			r.logf("daemon output:\n%s", indent(tail(s, 4000)))
		}
	}
	return r.out
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}

func (r *runner) logf(format string, args ...any) {
	r.w.mu.Lock()
	defer r.w.mu.Unlock()
	r.out.Transcript = append(r.out.Transcript, fmt.Sprintf(format, args...))
}

func (r *runner) cleanup() {
	for _, c := range r.conns {
		c.c.Close()
	}
	if r.d != nil && r.d.cmd != nil {
		r.phase("stopping the daemon", 2*stopWait)
		r.d.stop()
	}
}

func (r *runner) conn(name string) (*sconn, error) {
	c := r.conns[name]
	if c == nil {
		return nil, fmt.Errorf("connection %s is not open", name)
	}
	return c, nil
}

func (r *runner) exec(s step) error {
	src := s.pos()
	switch s := s.(type) {
	case *openStep:
		if old := r.conns[s.conn]; old != nil {
			old.c.Close()
		}
		network, addr := "tcp", r.d.addr4()
		if s.ipv6 {
			if !HaveIPv6() {
				return &errSkip{"IPv6 loopback ::1 is not available"}
			}
			network, addr = "tcp6", r.d.addr6()
		}
		c, err := net.DialTimeout(network, addr, 3*time.Second)
		if err != nil {
			if s.ipv6 {
				return &errBlocked{"ipv6", err}
			}
			return err
		}
		r.watchConn(c)
		r.conns[s.conn] = &sconn{c: c}
		r.logf("%d: %s", src.first, src.text)
	case *sendStep:
		c, err := r.conn(s.conn)
		if err != nil {
			return err
		}
		b, err := s.data.eval(r.v)
		if err != nil {
			return err
		}
		if !s.raw {
			if len(b) > 0xFFFF {
				return fmt.Errorf("frame body of %d bytes does not fit", len(b))
			}
			b = wire.AppendRawFrame(nil, uint16(len(b)), b)
		}
		c.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if s.dribble > 0 {
			for i := range b {
				if i > 0 {
					time.Sleep(s.dribble)
				}
				c.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
				if _, err := c.c.Write(b[i : i+1]); err != nil {
					c.writeErr = err
					break
				}
			}
		} else if _, err := c.c.Write(b); err != nil {
			c.writeErr = err
		}
		if len(s.data) == 1 && !s.raw {
			if a, ok := s.data[0].(alive2Item); ok {
				if name, err := a.f.name.eval(r.v); err == nil {
					n := string(name)
					c.pending = &n
				}
			}
		}
		c.lastSend = time.Now()
		note := ""
		if c.writeErr != nil {
			note = " (write failed: " + c.writeErr.Error() + ")"
		}
		r.logf("%d: %s -> %d bytes%s", src.first, src.text, len(b), note)
	case *closeStep:
		c, err := r.conn(s.conn)
		if err != nil {
			return err
		}
		c.c.Close()
		delete(r.conns, s.conn)
		// Let the daemon see the close before the next step, so that a
		// following request does not race with the unregistration: wait
		// until NAMES no longer lists the name this connection holds.
		time.Sleep(closeSettle)
		if c.registered != nil {
			if err := r.waitUnlisted(*c.registered); err != nil {
				return err
			}
		}
		r.logf("%d: %s", src.first, src.text)
	case *shutdownStep:
		c, err := r.conn(s.conn)
		if err != nil {
			return err
		}
		if tc, ok := c.c.(*net.TCPConn); ok {
			if err := tc.CloseWrite(); err != nil {
				return err
			}
		}
		r.logf("%d: %s", src.first, src.text)
	case *sleepStep:
		select {
		case <-time.After(s.d):
		case <-r.ctx.Done():
			return r.ctx.Err()
		}
	case *expectBytesStep:
		return r.expectBytes(s)
	case *expectClosedStep:
		return r.expectClosed(s)
	case *expectOpenStep:
		return r.expectOpen(s)
	case *expectAlive2Step:
		return r.expectAlive2(s)
	case *expectNamesStep:
		return r.expectNames(s)
	case *expectDumpStep:
		return r.expectDump(s)
	case *runStep:
		return r.run(s)
	case *expectOutputStep:
		return r.expectOutput(s)
	case *expectStatusStep:
		if r.last == nil {
			return errors.New("no run before expect status")
		}
		if r.last.code != s.code {
			return &stepFailure{
				msg:      fmt.Sprintf("exit status %d, want %d", r.last.code, s.code),
				observed: fmt.Sprintf("exit status %d", r.last.code),
				upd:      fmt.Sprintf("expect status %d", r.last.code),
			}
		}
		r.logf("%d: %s -> ok", src.first, src.text)
	case *expectDaemonStep:
		return r.expectDaemon(s)
	case *expectLogStep:
		deadline := time.Now().Add(s.within)
		for {
			if s.re.MatchString(r.d.stderr.String()) {
				r.logf("%d: %s -> ok", src.first, src.text)
				return nil
			}
			if time.Now().After(deadline) {
				return &stepFailure{
					msg:      fmt.Sprintf("daemon output does not match within %v; output: %q", s.within, tail(r.d.stderr.String(), 2000)),
					observed: fmt.Sprintf("output %q", tail(r.d.stderr.String(), 500)),
					cap:      "log",
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	default:
		return fmt.Errorf("internal: unknown step %T", s)
	}
	return nil
}

// readState describes how a read ended.
type readState int

const (
	readFull    readState = iota // got what was asked for
	readEOF                      // the daemon closed the connection
	readReset                    // the connection was reset
	readTimeout                  // nothing more within the wait
	readError
)

// read reads until n bytes (n < 0: until EOF), EOF, error or the deadline.
func (c *sconn) read(n int, within time.Duration) ([]byte, readState, error) {
	if c.eof {
		return nil, readEOF, nil
	}
	if c.rerr != nil {
		return nil, readReset, c.rerr
	}
	c.c.SetReadDeadline(time.Now().Add(within))
	var got []byte
	buf := make([]byte, 4096)
	for n < 0 || len(got) < n {
		want := len(buf)
		if n >= 0 && n-len(got) < want {
			want = n - len(got)
		}
		k, err := c.c.Read(buf[:want])
		got = append(got, buf[:k]...)
		if err != nil {
			var ne net.Error
			switch {
			case errors.Is(err, io.EOF):
				c.eof = true
				return got, readEOF, nil
			case errors.As(err, &ne) && ne.Timeout():
				return got, readTimeout, nil
			case errors.Is(err, syscall.ECONNRESET):
				c.rerr = err
				return got, readReset, err
			default:
				c.rerr = err
				return got, readError, err
			}
		}
	}
	return got, readFull, nil
}

// describe renders what a read observed.
func describe(got []byte, st readState, err error, within time.Duration) string {
	var parts []string
	if len(got) > 0 {
		parts = append(parts, fmt.Sprintf("%d bytes %s", len(got), hexdump(got)))
	}
	switch st {
	case readEOF:
		parts = append(parts, "closed")
	case readReset:
		parts = append(parts, "reset")
	case readTimeout:
		parts = append(parts, fmt.Sprintf("then nothing for %v (still open)", within))
	case readError:
		parts = append(parts, "error: "+err.Error())
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}

// hexdump shows bytes as hex, with printable text alongside when there is
// some.
func hexdump(b []byte) string {
	const max = 96
	s := b
	more := ""
	if len(s) > max {
		s, more = s[:max], fmt.Sprintf(" ...(+%d)", len(b)-max)
	}
	h := fmt.Sprintf("% x", s)
	printable := 0
	for _, c := range s {
		if c >= 0x20 && c < 0x7f {
			printable++
		}
	}
	if printable >= 3 {
		return fmt.Sprintf("[%s]%s %q", h, more, s)
	}
	return "[" + h + "]" + more
}

func (r *runner) expectBytes(s *expectBytesStep) error {
	c, err := r.conn(s.conn)
	if err != nil {
		return err
	}
	want, err := s.data.eval(r.v)
	if err != nil {
		return err
	}
	got, st, rerr := c.read(len(want), s.within)
	if st == readFull && bytes.Equal(got, want) {
		// A one-sided check: reading late (a loaded machine) can only make
		// the reply look later than it was, never sooner.
		if took := time.Since(c.lastSend); took < s.after {
			return &stepFailure{
				msg:      fmt.Sprintf("the reply came %v after the last send, want at least %v", took.Round(time.Millisecond), s.after),
				observed: fmt.Sprintf("reply after %v", took.Round(time.Millisecond)),
			}
		}
		r.logf("%d: %s -> ok", s.src.first, s.src.text)
		return nil
	}
	if r.recording && st == readFull {
		// Take the rest of a longer reply too.
		more, st2, err2 := c.read(-1, 300*time.Millisecond)
		got, st, rerr = append(got, more...), st2, err2
	}
	f := &stepFailure{
		msg:      fmt.Sprintf("want %d bytes %s; got %s", len(want), hexdump(want), describe(got, st, rerr, s.within)),
		observed: describe(got, st, rerr, s.within),
		want:     fmt.Sprintf("%d bytes %s", len(want), hexdump(want)),
	}
	within := ""
	if s.within != defaultWithin {
		within = " within " + s.within.String()
	}
	if s.after > 0 {
		within += " after " + s.after.String()
	}
	switch {
	case len(got) > 0:
		f.upd = fmt.Sprintf("expect %s bytes%s %s", s.conn, within, renderBytes(got, r.v))
	case st == readEOF || st == readReset:
		f.upd = fmt.Sprintf("expect %s closed", s.conn)
	case st == readTimeout:
		f.upd = fmt.Sprintf("expect %s open", s.conn)
	}
	return f
}

func (r *runner) expectClosed(s *expectClosedStep) error {
	c, err := r.conn(s.conn)
	if err != nil {
		return err
	}
	got, st, rerr := c.read(-1, s.within)
	if len(got) == 0 && (st == readEOF || st == readReset) {
		r.logf("%d: %s -> %s", s.src.first, s.src.text, describe(got, st, rerr, s.within))
		return nil
	}
	f := &stepFailure{
		msg:      "want the connection closed with no (more) reply; got " + describe(got, st, rerr, s.within),
		observed: describe(got, st, rerr, s.within),
		want:     "closed with no (more) reply",
	}
	if len(got) > 0 {
		f.upd = fmt.Sprintf("expect %s bytes %s", s.conn, renderBytes(got, r.v))
		if st == readEOF || st == readReset {
			f.upd += fmt.Sprintf("\nexpect %s closed", s.conn)
		}
	} else if st == readTimeout {
		f.upd = fmt.Sprintf("expect %s open", s.conn)
	}
	return f
}

func (r *runner) expectOpen(s *expectOpenStep) error {
	c, err := r.conn(s.conn)
	if err != nil {
		return err
	}
	got, st, rerr := c.read(1, s.dur)
	if st == readTimeout && len(got) == 0 {
		r.logf("%d: %s -> still open, nothing received", s.src.first, s.src.text)
		return nil
	}
	if st == readFull {
		more, st2, err2 := c.read(-1, 300*time.Millisecond)
		got, st, rerr = append(got, more...), st2, err2
	}
	f := &stepFailure{
		msg:      fmt.Sprintf("want the connection open and silent for %v; got %s", s.dur, describe(got, st, rerr, s.dur)),
		observed: describe(got, st, rerr, s.dur),
		want:     fmt.Sprintf("open and silent for %v", s.dur),
	}
	if len(got) > 0 {
		f.upd = fmt.Sprintf("expect %s bytes %s", s.conn, renderBytes(got, r.v))
	} else {
		f.upd = fmt.Sprintf("expect %s closed", s.conn)
	}
	return f
}

func (r *runner) expectAlive2(s *expectAlive2Step) error {
	c, err := r.conn(s.conn)
	if err != nil {
		return err
	}
	got, st, rerr := c.read(1, defaultWithin)
	if st == readFull {
		n := 3
		if got[0] == 'v' {
			n = 5
		}
		more, st2, err2 := c.read(n, defaultWithin)
		got, st, rerr = append(got, more...), st2, err2
	}
	fail := func(msg string) error {
		f := &stepFailure{
			msg:      msg + "; got " + describe(got, st, rerr, defaultWithin),
			observed: describe(got, st, rerr, defaultWithin),
			want:     strings.TrimPrefix(msg, "want "),
		}
		// A registration the script expects to succeed that gets the
		// other reply form, or no reply at all, shows a missing capability.
		if res, err := s.result.eval(r.v); err == nil && res == 0 {
			switch {
			case st == readFull && s.tag == 'v' && got[0] == 'y':
				f.cap = "alive2-v"
			case len(got) == 0 || (got[0] != 'v' && got[0] != 'y'):
				f.cap = "alive2"
			}
		}
		switch {
		case st == readFull && (got[0] == 'v' || got[0] == 'y'):
			rule := "now"
			if got[0] == 'y' {
				rule = "1..3"
			}
			if got[1] != 0 {
				rule = "99"
			} else if ok, _ := s.creation.check(creationOf(got), got[0], r.v); ok {
				rule = s.creation.text
			}
			f.upd = fmt.Sprintf("expect %s alive2 %c result=%d creation=%s", s.conn, got[0], got[1], rule)
			if s.save != "" {
				f.upd += " save=" + s.save
				r.v[s.save] = int64(creationOf(got))
			}
		case len(got) > 0:
			f.upd = fmt.Sprintf("expect %s bytes %s", s.conn, renderBytes(got, r.v))
		case st == readEOF || st == readReset:
			f.upd = fmt.Sprintf("expect %s closed", s.conn)
		}
		return f
	}
	if st != readFull {
		return fail(fmt.Sprintf("want an ALIVE2 %c reply", s.tag))
	}
	if got[0] != s.tag {
		return fail(fmt.Sprintf("want an ALIVE2 %c reply", s.tag))
	}
	res, err := s.result.eval(r.v)
	if err != nil {
		return err
	}
	if int64(got[1]) != res {
		return fail(fmt.Sprintf("want result %d", res))
	}
	cr := creationOf(got)
	ok, why := s.creation.check(cr, s.tag, r.v)
	if !ok {
		return fail(fmt.Sprintf("creation %d: %s", cr, why))
	}
	if s.save != "" {
		r.v[s.save] = int64(cr)
	}
	if got[1] == 0 {
		c.registered = c.pending
	}
	r.logf("%d: %s -> %c result %d creation %d", s.src.first, s.src.text, got[0], got[1], cr)
	return nil
}

func creationOf(b []byte) uint32 {
	if b[0] == 'v' {
		return uint32(b[2])<<24 | uint32(b[3])<<16 | uint32(b[4])<<8 | uint32(b[5])
	}
	return uint32(b[2])<<8 | uint32(b[3])
}

// nowSlack is how far a "now" creation may be from the current Unix time
// plus one.
const nowSlack = 5

func (cr creationRule) check(c uint32, tag byte, v vars) (bool, string) {
	switch cr.kind {
	case "any":
		return true, ""
	case "now":
		now := time.Now().Unix() + 1
		if c < 4 || int64(c) < now-nowSlack || int64(c) > now+nowSlack {
			return false, fmt.Sprintf("want >= 4 and within %ds of now+1 (%d)", nowSlack, now)
		}
		return true, ""
	case "range":
		lo, err := cr.lo.eval(v)
		if err != nil {
			return false, err.Error()
		}
		hi, err := cr.hi.eval(v)
		if err != nil {
			return false, err.Error()
		}
		if int64(c) < lo || int64(c) > hi {
			return false, fmt.Sprintf("want %d..%d", lo, hi)
		}
		return true, ""
	}
	want, err := cr.e.eval(v)
	if err != nil {
		return false, err.Error()
	}
	if tag == 'v' {
		want = int64(uint32(want))
	}
	if int64(c) != want {
		return false, fmt.Sprintf("want %s = %d", cr.text, want)
	}
	return true, ""
}

// request opens a fresh connection, sends one frame and reads to the end.
func (r *runner) request(body []byte) ([]byte, error) {
	c, err := net.DialTimeout("tcp", r.d.addr4(), 3*time.Second)
	if err != nil {
		return nil, err
	}
	if r.w != nil {
		r.watchConn(c)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(defaultWithin))
	if _, err := c.Write(wire.AppendRawFrame(nil, uint16(len(body)), body)); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(c)
	if errors.Is(err, syscall.ECONNRESET) {
		err = nil
	}
	return b, err
}

// waitUnlisted waits until NAMES no longer lists name.
func (r *runner) waitUnlisted(name string) error {
	deadline := time.Now().Add(defaultWithin)
	for {
		got, err := r.request([]byte{'n'})
		var resp wire.NamesResp
		if err == nil && resp.UnmarshalBinary(got) == nil {
			found := false
			for _, n := range resp.Nodes {
				found = found || n.Name == name
			}
			if !found {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return &stepFailure{
				msg:      fmt.Sprintf("%q still registered %v after its connection was closed", name, defaultWithin),
				observed: "still registered",
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (r *runner) expectNames(s *expectNamesStep) error {
	want := appendU32(nil, uint32(r.v["port"]))
	for _, n := range s.nodes {
		name, err := n.name.eval(r.v)
		if err != nil {
			return err
		}
		port, err := n.port.eval(r.v)
		if err != nil {
			return err
		}
		want = wire.AppendNameLine(want, string(name), uint16(port))
	}
	got, err := r.request([]byte{'n'})
	if err != nil {
		return &stepFailure{msg: "NAMES: " + err.Error(), observed: err.Error(), cap: "names"}
	}
	if bytes.Equal(got, want) {
		r.logf("%d: %s -> ok", s.src.first, s.src.text)
		return nil
	}
	f := &stepFailure{
		msg:      fmt.Sprintf("NAMES reply %s, want %s", hexdump(got), hexdump(want)),
		observed: "NAMES reply " + hexdump(got),
		want:     "NAMES reply " + hexdump(want),
	}
	var resp wire.NamesResp
	if len(got) < 4 || resp.UnmarshalBinary(got) != nil {
		f.cap = "names"
	}
	if resp.UnmarshalBinary(got) == nil && int64(resp.Port) == r.v["port"] {
		var b bytes.Buffer
		b.WriteString("expect names")
		for _, n := range resp.Nodes {
			fmt.Fprintf(&b, " %s %d", renderName(n.Name), n.Port)
		}
		if re, _ := (&wire.NamesResp{Port: resp.Port, Nodes: resp.Nodes}).AppendBinary(nil); bytes.Equal(re, got) {
			f.upd = b.String()
		}
	}
	return f
}

func (r *runner) expectDump(s *expectDumpStep) error {
	got, err := r.request([]byte{'d'})
	if err != nil {
		return &stepFailure{msg: "DUMP: " + err.Error(), observed: err.Error(), cap: "dump"}
	}
	var resp wire.DumpResp
	perr := resp.UnmarshalBinary(got)
	if perr == nil {
		// The decoder is lenient about nothing that matters here, but make
		// sure the bytes are exactly what the format says.
		if re, _ := resp.AppendBinary(nil); !bytes.Equal(re, got) {
			perr = errors.New("reply does not re-encode to the same bytes")
		}
	}
	if perr != nil {
		return &stepFailure{msg: fmt.Sprintf("DUMP reply %s: %v", hexdump(got), perr), observed: "DUMP reply " + hexdump(got), cap: "dump"}
	}
	type entry struct {
		old bool
		e   wire.DumpEntry
	}
	var entries []entry
	for _, e := range resp.Active {
		entries = append(entries, entry{false, e})
	}
	for _, e := range resp.Old {
		entries = append(entries, entry{true, e})
	}
	render := func() string {
		var b bytes.Buffer
		b.WriteString("expect dump")
		for i, e := range entries {
			kind := "active"
			if e.old {
				kind = "old"
			}
			fd := "*"
			if i < len(s.entries) && !strings.ContainsAny(s.entries[i].fd[:1], "0123456789") {
				fd = s.entries[i].fd
			}
			fmt.Fprintf(&b, " \\\n    %s %s %d %s", kind, renderName(e.e.Name), e.e.Port, fd)
		}
		return b.String()
	}
	fail := func(msg string) error {
		return &stepFailure{msg: msg + "; DUMP reply " + hexdump(got), observed: "DUMP reply " + hexdump(got), upd: render()}
	}
	if int64(resp.Port) != r.v["port"] {
		return fail(fmt.Sprintf("header port %d, want %d", resp.Port, r.v["port"]))
	}
	if len(entries) != len(s.entries) {
		return fail(fmt.Sprintf("%d entries, want %d", len(entries), len(s.entries)))
	}
	captured := vars{}
	for i, w := range s.entries {
		e := entries[i]
		name, err := w.name.eval(r.v)
		if err != nil {
			return err
		}
		port, err := w.port.eval(r.v)
		if err != nil {
			return err
		}
		if e.old != w.old || e.e.Name != string(name) || int64(e.e.Port) != port {
			return fail(fmt.Sprintf("entry %d differs", i+1))
		}
		switch fd := w.fd; {
		case fd == "*":
		case fd[0] == '>':
			captured[fd[1:]] = int64(e.e.Fd)
		case fd[0] == '$':
			want, ok := r.v[fd[1:]]
			if !ok {
				want, ok = captured[fd[1:]]
			}
			if !ok {
				return fmt.Errorf("undefined variable %s", fd)
			}
			if int64(e.e.Fd) != want {
				return fail(fmt.Sprintf("entry %d: fd %d, want %s = %d", i+1, e.e.Fd, fd, want))
			}
		default:
			want, _ := strconv.Atoi(fd)
			if e.e.Fd != want {
				return fail(fmt.Sprintf("entry %d: fd %d, want %d", i+1, e.e.Fd, want))
			}
		}
	}
	for k, v := range captured {
		r.v[k] = v
	}
	r.logf("%d: %s -> ok", s.src.first, s.src.text)
	return nil
}

func (r *runner) run(s *runStep) error {
	var args, env []string
	for _, a := range s.args {
		x, err := a.eval(r.v)
		if err != nil {
			return err
		}
		args = append(args, x)
	}
	for _, e := range s.env {
		x, err := e.val.eval(r.v)
		if err != nil {
			return err
		}
		env = append(env, e.name+"="+x)
	}
	argv, err := r.t.cliCommand(args)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.ctx, r.t.Limits.cli())
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = r.t.Dir
	cmd.Env = cleanEnv(env)
	var stdout, stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	ownGroup(cmd)
	cmd.Cancel = func() error { killGroup(cmd); return nil }
	cmd.WaitDelay = 2 * time.Second
	err = startTracked(cmd)
	if err == nil {
		err = waitTracked(cmd)
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) && !errors.Is(err, exec.ErrWaitDelay) {
		return &errBlocked{"cli", err}
	}
	if ctx.Err() != nil {
		// A daemon-only binary started as a client serves instead of
		// answering: the CLI is missing.
		return &errBlocked{"cli", &errTimeout{fmt.Sprintf("%s to finish, for %v; stdout %q, stderr %q",
			strings.Join(argv, " "), r.t.Limits.cli(), tail(stdout.String(), 300), tail(stderr.String(), 300))}}
	}
	r.last = &cliResult{stdout: []byte(stdout.String()), stderr: []byte(stderr.String()), code: cmd.ProcessState.ExitCode(), args: args}
	r.logf("%d: %s -> exit %d, stdout %q, stderr %q", s.src.first, s.src.text, r.last.code, tail(stdout.String(), 300), tail(stderr.String(), 300))
	return nil
}

func (r *runner) expectOutput(s *expectOutputStep) error {
	if r.last == nil {
		return errors.New("no run before expect " + s.stream)
	}
	got := r.last.stdout
	if s.stream == "stderr" {
		got = r.last.stderr
	}
	f := &stepFailure{observed: fmt.Sprintf("%s %q", s.stream, got)}
	if len(got) == 0 {
		f.upd = fmt.Sprintf("expect %s", s.stream)
	} else {
		f.upd = fmt.Sprintf("expect %s %s", s.stream, renderBytes(got, r.v))
	}
	switch s.mode {
	case "re":
		if s.re.Match(got) {
			r.logf("%d: %s -> ok", s.src.first, s.src.text)
			return nil
		}
		f.msg = fmt.Sprintf("%s %q does not match %q", s.stream, got, s.re.String())
		return f
	case "file":
		if r.recording {
			r.out.goldens[s.file] = got
		}
		if r.goldens == nil {
			return fmt.Errorf("golden file %s: no golden files available", s.file)
		}
		want, err := r.goldens(s.file)
		if err != nil && !r.recording {
			return err
		}
		if bytes.Equal(got, want) {
			r.logf("%d: %s -> ok", s.src.first, s.src.text)
			return nil
		}
		if r.recording {
			r.logf("%d: %s -> golden file re-recorded", s.src.first, s.src.text)
			return nil
		}
		f.msg = fmt.Sprintf("%s differs from golden file %s: got %q, want %q", s.stream, s.file, got, want)
		f.want = fmt.Sprintf("%s %q", s.stream, want)
		f.upd = ""
		return f
	}
	want, err := s.data.eval(r.v)
	if err != nil {
		return err
	}
	if bytes.Equal(got, want) {
		r.logf("%d: %s -> ok", s.src.first, s.src.text)
		return nil
	}
	f.msg = fmt.Sprintf("%s %q, want %q", s.stream, got, want)
	f.want = fmt.Sprintf("%s %q", s.stream, want)
	return f
}

func (r *runner) expectDaemon(s *expectDaemonStep) error {
	if r.d.cmd == nil || r.d.detached {
		return &errSkip{"the daemon is not a child process the suite can watch"}
	}
	if s.running {
		if r.d.exited() {
			return &stepFailure{
				msg:      fmt.Sprintf("daemon exited with status %d", r.d.exitCode),
				observed: fmt.Sprintf("exited with status %d", r.d.exitCode),
				upd:      fmt.Sprintf("expect daemon exited %d", r.d.exitCode),
			}
		}
		r.logf("%d: %s -> ok", s.src.first, s.src.text)
		return nil
	}
	select {
	case <-r.d.done:
	case <-time.After(s.within):
		return &stepFailure{
			msg:      fmt.Sprintf("daemon still running after %v", s.within),
			observed: "still running",
			upd:      "expect daemon running",
		}
	}
	if r.d.exitCode != s.code {
		upd := fmt.Sprintf("expect daemon exited %d", r.d.exitCode)
		if s.within != defaultWithin {
			upd += " within " + s.within.String()
		}
		return &stepFailure{
			msg:      fmt.Sprintf("daemon exited with status %d, want %d", r.d.exitCode, s.code),
			observed: fmt.Sprintf("exited with status %d", r.d.exitCode),
			upd:      upd,
		}
	}
	r.logf("%d: %s -> ok", s.src.first, s.src.text)
	return nil
}

func appendU32(b []byte, v uint32) []byte {
	return append(b, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

// renderName writes a node name as a script token.
func renderName(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\"#\\[]") && isPrintable([]byte(s)) && !strings.HasPrefix(s, "$") {
		return s
	}
	return strconv.Quote(s)
}

func isPrintable(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}

// renderBytes writes observed bytes as a byte expression: the 4-byte
// configured port as u32:$port, printable runs as strings (the decimal port
// as ${port}), long runs of one byte as X*N, the rest as hex.
func renderBytes(b []byte, v vars) string {
	var parts []string
	port, havePort := v["port"]
	if havePort && len(b) >= 4 && bytes.Equal(b[:4], appendU32(nil, uint32(port))) {
		parts = append(parts, "u32:$port")
		b = b[4:]
	}
	var hex []string
	flushHex := func() {
		if len(hex) > 0 {
			parts = append(parts, strings.Join(hex, " "))
			hex = nil
		}
	}
	text := func(c byte) bool { return c >= 0x20 && c < 0x7f || c == '\n' || c == '\t' || c == '\r' }
	for i := 0; i < len(b); {
		// runs of a single byte
		j := i
		for j < len(b) && b[j] == b[i] {
			j++
		}
		if j-i >= 8 {
			flushHex()
			if b[i] >= 0x21 && b[i] < 0x7f && b[i] != '"' && b[i] != '\\' {
				parts = append(parts, fmt.Sprintf("%q*%d", string(b[i]), j-i))
			} else {
				parts = append(parts, fmt.Sprintf("%02x*%d", b[i], j-i))
			}
			i = j
			continue
		}
		j = i
		for j < len(b) && text(b[j]) {
			if k := j; k+8 <= len(b) && bytes.Count(b[k:k+8], b[k:k+1]) == 8 {
				break
			}
			j++
		}
		if j-i >= 3 {
			flushHex()
			s := strconv.Quote(string(b[i:j]))
			if havePort && port >= 100 {
				s = strings.ReplaceAll(s, strconv.FormatInt(port, 10), "${port}")
			}
			parts = append(parts, s)
			i = j
			continue
		}
		hex = append(hex, fmt.Sprintf("%02x", b[i]))
		i++
	}
	flushHex()
	return strings.Join(parts, " ")
}
