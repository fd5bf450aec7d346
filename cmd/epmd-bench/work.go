package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gopmd/gopmd/epmd/client"
	"github.com/gopmd/gopmd/epmd/wire"
)

// fdReserve is how many descriptors the tool keeps free for itself beyond
// the registrations it holds and its concurrent clients.
const fdReserve = 100

// runResult is the report of one run of one figure on one target.
type runResult struct {
	Target        string            `json:"target"`
	Figure        string            `json:"figure"`
	Params        figure            `json:"params"`
	Round         int               `json:"round,omitempty"`
	Skipped       string            `json:"skipped,omitempty"`
	Ops           int64             `json:"ops"`
	Errors        int64             `json:"errors"`
	ErrorKinds    map[string]int64  `json:"error_kinds,omitempty"`
	ErrorExamples map[string]string `json:"error_examples,omitempty"`
	Retries       int64             `json:"retries,omitempty"`
	ElapsedSec    float64           `json:"elapsed_s"`
	OpsPerSec     float64           `json:"ops_per_s"`
	P50us         float64           `json:"p50_us"`
	P99us         float64           `json:"p99_us"`
	MaxUs         float64           `json:"max_us"`
	MeanUs        float64           `json:"mean_us"`
	Held          int               `json:"held,omitempty"`
	StoppedBy     string            `json:"stopped_by,omitempty"`
	SlowRequests  int64             `json:"slow_requests,omitempty"`
	Memory        *memFigures       `json:"memory,omitempty"` // hoard
	Idle          *idleFigures      `json:"idle,omitempty"`   // dumploop: the look-ups without DUMP loops
	// ToolCPUPerOpUs is the tool's own CPU per operation (it shares the
	// machine with the daemon).
	ToolCPUPerOpUs float64        `json:"tool_cpu_per_op_us"`
	Daemon         *daemonFigures `json:"daemon,omitempty"`
	Notes          []string       `json:"notes,omitempty"`
}

// daemonFigures are the /proc figures of the daemon for a run.
type daemonFigures struct {
	Pid        int     `json:"pid"`
	CPUTicks   uint64  `json:"cpu_ticks"` // user+sys during the measured phase, 1/100 s
	CPUSeconds float64 `json:"cpu_s"`
	CPUPerOpUs float64 `json:"cpu_per_op_us"`
	RSSKiB     int64   `json:"rss_kib"` // at the end of the measured phase
	FDs        int     `json:"fds"`     // at the end of the measured phase
}

// runner runs figures on targets.
type runner struct {
	setupTimeout time.Duration // bound on registering the nodes beforehand and on settling
	regConc      int           // concurrency of that registration
	seq          atomic.Int64  // numbers runs, so that every run has its own node names
	progress     io.Writer     // progress lines (stderr); nil for none
	ports        *portPool     // source ports for held registrations; nil: the kernel picks
	fresh        bool          // restart a daemon the tool started before each run
}

func (r *runner) logf(format string, args ...any) {
	if r.progress != nil {
		fmt.Fprintf(r.progress, format+"\n", args...)
	}
}

// namePrefix is the prefix of every node name this process registers.
var namePrefix = "b" + strconv.Itoa(os.Getpid()%100000) + "_"

// nodeName and nodePort give the i-th node of a run.
func nodeName(prefix string, i int) string { return prefix + strconv.Itoa(i) }
func nodePort(i int) uint16                { return uint16(1024 + i%64000) }

func benchNode(name string, i int) wire.Node {
	return wire.Node{Name: name, Port: nodePort(i), Type: wire.NodeNormal, Proto: wire.ProtoTCP4, High: 6, Low: 5}
}

// run measures figure f once on target t.
func (r *runner) run(ctx context.Context, t *target, f figure) runResult {
	res := runResult{Target: t.Label, Figure: f.String(), Params: f}
	if !t.canRegister() && f.Workload != wLookup {
		res.Skipped = "the null server only answers look-ups"
		return res
	}
	if r.fresh && t.Kind == kindStarted && t.cmd != nil {
		// What a run leaves in the daemon (memory above all) must not
		// count in the next one.
		t.stop()
		if err := t.start(ctx); err != nil {
			res.Skipped = "restarting the daemon: " + err.Error()
			return res
		}
		res.Notes = append(res.Notes, "fresh daemon, pid "+strconv.Itoa(t.Pid))
	}
	note, err := t.ensureRunning(ctx)
	if err != nil {
		res.Skipped = "daemon not running: " + err.Error()
		return res
	}
	if note != "" {
		res.Notes = append(res.Notes, note)
	}
	if t.canRegister() {
		if err := r.settle(ctx, t); err != nil {
			res.Notes = append(res.Notes, "settle: "+err.Error())
		}
	}
	prefix := namePrefix + strconv.FormatInt(r.seq.Add(1), 10) + "_"
	cl := t.client(f.Timeout)

	// Nodes registered beforehand (not for hold, whose work is registering).
	var regs []*client.Registration
	defer func() { closeAll(regs) }()
	nodes := f.Nodes
	if f.Workload == wHold || !t.canRegister() {
		nodes = 0
	}
	if need := nodes + f.Conc + f.Slow + f.Dump + f.NamesReaders + fdReserve; nodes > 0 && need > fileLimit() {
		res.Skipped = fmt.Sprintf("%d registrations and %d clients need %d descriptors; the file limit is %d", nodes, f.Conc+f.Slow, need, fileLimit())
		return res
	}
	if nodes > 0 {
		t0 := time.Now()
		var lr *loadResult
		register := r.holder(cl)
		if f.Max {
			plain := register
			register = func(ctx context.Context, node wire.Node) (*client.Registration, error) {
				return plain(ctx, maxNode(node))
			}
		}
		regs, lr = registerNodes(ctx, register, prefix, 0, nodes, loadSpec{conc: r.regConc, n: int64(nodes), dur: r.setupTimeout, stopOnError: true})
		if lr.stopped != nil || lr.ops < int64(nodes) {
			res.Skipped = fmt.Sprintf("registered only %d of %d nodes beforehand: %v", lr.ops, nodes, lr.stopped)
			return res
		}
		r.logf("  registered %d nodes in %s", nodes, time.Since(t0).Round(time.Millisecond))
	}

	var before procStats
	var beforeErr error
	if t.Pid > 0 {
		before, beforeErr = readProcStats(t.Pid)
	}
	selfBefore, selfErr := readProcStats(os.Getpid())
	var lr *loadResult
	switch f.Workload {
	case wLookup:
		lr = lookupLoad(ctx, cl, f, prefix, nodes)
	case wNames:
		lr = namesLoad(ctx, cl, f, prefix, nodes, t.daemonPort())
	case wChurn:
		lr = churnLoad(ctx, cl, f, prefix)
	case wHold:
		want := f.Nodes
		if limit := fileLimit() - f.Conc - fdReserve; want > limit {
			res.Notes = append(res.Notes, fmt.Sprintf("hold capped at %d by the tool's file limit %d", limit, fileLimit()))
			want = limit
		}
		var held []*client.Registration
		held, lr = registerNodes(ctx, r.holder(cl), prefix, 0, want, loadSpec{conc: f.Conc, n: int64(want), dur: f.Duration, stopOnError: true})
		regs = held
		res.Held = int(lr.ops)
		switch {
		case lr.stopped != nil:
			res.StoppedBy = lr.stopped.Error()
		case res.Held < want:
			res.StoppedBy = fmt.Sprintf("the time limit (%s)", f.Duration)
		}
	case wSlow:
		lr, res.SlowRequests = slowLoad(ctx, cl, t.Addr, f, prefix, nodes)
	case wHoard:
		lr, res.Memory = hoardLoad(ctx, cl, t, f, prefix, nodes)
		m := res.Memory
		res.Notes = append(res.Notes, fmt.Sprintf("%d readers open (%d failed), %d table changes (%d failed); daemon VmRSS %d KiB before, peak %d KiB (+%.1f MiB), %d KiB %s after, VmHWM %d KiB; host TCP buffers %d -> peak %d KiB",
			m.ReadersOpen, m.ReadersFailed, m.Churned, m.ChurnFailed, m.RSSBeforeKiB, m.RSSPeakKiB, float64(m.GrowthKiB)/1024, m.RSSAfterKiB, f.Settle, m.HWMKiB, m.TCPMemBefore, m.TCPMemPeak))
	case wDump:
		var dumps int64
		lr, res.Idle, dumps = dumpLoopLoad(ctx, cl, f, prefix, nodes)
		res.SlowRequests = dumps
		res.Notes = append(res.Notes, fmt.Sprintf("idle: %d look-ups, %d errors, p50 %s µs, p99 %s µs, max %s µs; with %d DUMP loops (%d DUMPs): see the figures",
			res.Idle.Ops, res.Idle.Errors, fmtNum(res.Idle.P50us), fmtNum(res.Idle.P99us), fmtNum(res.Idle.MaxUs), f.Dump, dumps))
	}
	if t.Pid > 0 {
		after, err := readProcStats(t.Pid)
		switch {
		case beforeErr != nil:
			res.Notes = append(res.Notes, "/proc: "+beforeErr.Error())
		case err != nil:
			res.Notes = append(res.Notes, "/proc: "+err.Error())
		default:
			d := &daemonFigures{Pid: t.Pid, RSSKiB: after.RSSKiB, FDs: after.FDs}
			if after.CPUTicks >= before.CPUTicks {
				d.CPUTicks = after.CPUTicks - before.CPUTicks
			}
			d.CPUSeconds = float64(d.CPUTicks) / clockTicks
			if lr.ops > 0 {
				d.CPUPerOpUs = d.CPUSeconds * 1e6 / float64(lr.ops)
			}
			res.Daemon = d
		}
	}
	if selfAfter, err := readProcStats(os.Getpid()); err == nil && selfErr == nil && lr.ops > 0 {
		res.ToolCPUPerOpUs = float64(selfAfter.CPUTicks-selfBefore.CPUTicks) / clockTicks * 1e6 / float64(lr.ops)
	}
	fillResult(&res, lr)
	if !t.alive() {
		res.Notes = append(res.Notes, "the daemon died during the run; output: "+strings.TrimSpace(t.output.String()))
	}
	return res
}

// fillResult copies a load phase's figures into res.
func fillResult(res *runResult, lr *loadResult) {
	s := summarize(lr.lat)
	res.Ops = lr.ops
	res.Errors = lr.errs.total()
	res.ErrorKinds, res.ErrorExamples = lr.errs.snapshot()
	res.Retries = lr.retries
	res.ElapsedSec = lr.elapsed.Seconds()
	if lr.elapsed > 0 {
		res.OpsPerSec = float64(lr.ops) / lr.elapsed.Seconds()
	}
	res.P50us = us(s.P50)
	res.P99us = us(s.P99)
	res.MaxUs = us(s.Max)
	res.MeanUs = us(s.Mean)
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// settle waits until the daemon lists none of this process's nodes, so that
// a run does not see the registrations of the previous one, which the
// daemon may not have dropped yet.
func (r *runner) settle(ctx context.Context, t *target) error {
	cl := t.client(5 * time.Second)
	deadline := time.Now().Add(r.setupTimeout)
	var last int
	for i := 0; time.Now().Before(deadline) && i < 100000; i++ {
		_, nodes, err := cl.Names(ctx)
		if err != nil {
			return err
		}
		last = 0
		for _, n := range nodes {
			if strings.HasPrefix(n.Name, namePrefix) {
				last++
			}
		}
		if last == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("%d nodes of a previous run still registered after %s", last, r.setupTimeout)
}

// registerFunc registers one node.
type registerFunc func(ctx context.Context, node wire.Node) (*client.Registration, error)

// registerNodes registers nodes from .. to-1 of prefix and returns the
// registrations that succeeded (in no particular order).
func registerNodes(ctx context.Context, register registerFunc, prefix string, from, to int, spec loadSpec) ([]*client.Registration, *loadResult) {
	slots := make([]*client.Registration, to-from)
	lr := runLoad(ctx, spec, func(ctx context.Context, _ int, seq int64) (int, error) {
		i := from + int(seq)
		reg, err := register(ctx, benchNode(nodeName(prefix, i), i))
		if err != nil {
			return 0, err
		}
		slots[seq] = reg
		return 0, nil
	})
	regs := slots[:0]
	for _, reg := range slots {
		if reg != nil {
			regs = append(regs, reg)
		}
	}
	return regs, lr
}

// holder returns how registrations that are held for a while (the nodes
// registered before a run, hold, the sweep) are made: from a source port
// of r.ports when there is a pool and the daemon is on loopback.
//
// Why: Linux gives connect() an ephemeral port by scanning its range
// (32768-60999 by default, 28232 ports) from a hashed offset, even ports
// first. Once the tool holds more registrations than there are even ports
// (14116), every connect() - every look-up - scans them all, which costs
// about a millisecond of kernel time in the tool and would be charged to
// the daemon's latency. Holding the registrations on ports below the
// ephemeral range leaves that range to the look-ups, as it would be for
// nodes spread over several hosts. -bind-ports off restores the kernel's
// choice.
func (r *runner) holder(cl *client.Client) registerFunc {
	local := loopbackOf(cl.Addr)
	if r.ports == nil || local == nil {
		return cl.Register
	}
	return func(ctx context.Context, node wire.Node) (*client.Registration, error) {
		for attempt := 0; attempt < 64; attempt++ {
			c := *cl
			c.Dialer = &net.Dialer{LocalAddr: &net.TCPAddr{IP: local, Port: r.ports.take()}, Control: reuseAddr}
			reg, err := c.Register(ctx, node)
			if err != nil && (errors.Is(err, syscall.EADDRINUSE) || errors.Is(err, syscall.EADDRNOTAVAIL)) {
				continue // the port is taken, or its last connection is in TIME_WAIT
			}
			return reg, err
		}
		return cl.Register(ctx, node)
	}
}

// loopbackOf returns the loopback address of addr's family when addr's
// host is a loopback address, else nil.
func loopbackOf(addr string) net.IP {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	ip := net.ParseIP(host)
	switch {
	case ip == nil || !ip.IsLoopback():
		return nil
	case ip.To4() != nil:
		return net.IPv4(127, 0, 0, 1)
	}
	return net.IPv6loopback
}

// reuseAddr sets SO_REUSEADDR on a client socket before it is bound, so
// that binding a port whose previous connection is in TIME_WAIT works, and
// so that the bound port never stops another program from listening on it.
func reuseAddr(_, _ string, rc syscall.RawConn) error {
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = setsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
	}); err != nil {
		return err
	}
	return serr
}

// portPool hands out source ports from [lo, hi] round robin, skipping a
// few well-known epmd ports.
type portPool struct {
	mu       sync.Mutex
	lo, hi   int
	next     int
	reserved map[int]bool
}

func newPortPool(lo, hi int) *portPool {
	return &portPool{lo: lo, hi: hi, next: lo, reserved: map[int]bool{4369: true, 4464: true, 14369: true}}
}

func (p *portPool) size() int { return p.hi - p.lo + 1 }

func (p *portPool) take() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	port := p.next
	for range p.size() {
		port = p.next
		p.next++
		if p.next > p.hi {
			p.next = p.lo
		}
		if !p.reserved[port] {
			break
		}
	}
	return port
}

// closeAll closes registrations, a few at a time.
func closeAll(regs []*client.Registration) {
	const workers = 8
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(regs); i += workers {
				regs[i].Close()
			}
		}()
	}
	wg.Wait()
}

// lookupLoad looks up registered names, chosen at random, each on a new
// connection. With no nodes registered it looks up a name that is not
// registered and expects "not found".
func lookupLoad(ctx context.Context, cl *client.Client, f figure, prefix string, nodes int) *loadResult {
	rngs := make([]*rand.Rand, f.Conc)
	for w := range rngs {
		rngs[w] = rand.New(rand.NewPCG(uint64(w), 0x9e3779b97f4a7c15))
	}
	return runLoad(ctx, loadSpec{conc: f.Conc, n: f.N, dur: f.Duration}, func(ctx context.Context, w int, _ int64) (int, error) {
		return 0, lookupOnce(ctx, cl, rngs[w], prefix, nodes, f.Max)
	})
}

func lookupOnce(ctx context.Context, cl *client.Client, rng *rand.Rand, prefix string, nodes int, maximal bool) error {
	if nodes == 0 {
		_, err := cl.Lookup(ctx, prefix+"absent")
		if errors.Is(err, client.ErrNotFound) {
			return nil
		}
		if err == nil {
			return checkErr("look-up of an unregistered name found a node")
		}
		return err
	}
	i := rng.IntN(nodes)
	name := nodeName(prefix, i)
	if maximal {
		name = maxName(name)
	}
	n, err := cl.Lookup(ctx, name)
	if err != nil {
		if errors.Is(err, client.ErrNotFound) {
			return checkErr("registered node %s not found", name)
		}
		return err
	}
	if n.Name != name || n.Port != nodePort(i) {
		return checkErr("look-up of %s gave %s port %d", name, n.Name, n.Port)
	}
	return nil
}

// churnLoad has each worker register its own name, close the registration,
// and register the same name again, as a restarting node does. The daemon
// notices a close asynchronously, so a re-registration can be refused as a
// duplicate; it is then retried (counted in retries, not errors) after a
// short pause, at most maxChurnRetries times. An operation's latency is the
// whole cycle: register (with retries) and close.
func churnLoad(ctx context.Context, cl *client.Client, f figure, prefix string) *loadResult {
	return runLoad(ctx, loadSpec{conc: f.Conc, n: f.N, dur: f.Duration}, func(ctx context.Context, w int, _ int64) (int, error) {
		name := prefix + "c" + strconv.Itoa(w)
		node := benchNode(name, w)
		for retries := 0; ; retries++ {
			reg, err := cl.Register(ctx, node)
			if errors.Is(err, client.ErrRefused) && retries < maxChurnRetries {
				select {
				case <-ctx.Done():
					return retries, ctx.Err()
				case <-time.After(100 * time.Microsecond):
				}
				continue
			}
			if err != nil {
				return retries, err
			}
			return retries, reg.Close()
		}
	})
}

const maxChurnRetries = 1000

// slowLoad runs look-ups while f.Slow slow clients misbehave: the even ones
// send a NAMES request one byte at a time with f.Dribble between bytes,
// then read the reply; the odd ones send NAMES on a socket with a tiny
// receive buffer, never read the reply, and close after f.SlowHold. A
// daemon that writes replies with blocking writes from one thread stalls
// until such a client goes away. The look-ups are measured; the slow
// clients stop when they are done. It returns the slow requests completed.
func slowLoad(ctx context.Context, cl *client.Client, addr string, f figure, prefix string, nodes int) (*loadResult, int64) {
	stop := make(chan struct{})
	var slowDone atomic.Int64
	var wg sync.WaitGroup
	for i := range f.Slow {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < 1_000_000; k++ {
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				var err error
				if i%2 == 0 {
					err = dribbleNames(addr, f.Dribble, f.Timeout, stop)
				} else {
					err = unreadNames(addr, f.SlowHold, f.Timeout, stop)
				}
				if err == nil {
					slowDone.Add(1)
				} else {
					// Do not spin on a daemon that refuses connections.
					select {
					case <-stop:
						return
					case <-time.After(10 * time.Millisecond):
					}
				}
			}
		}()
	}
	lr := lookupLoad(ctx, cl, f, prefix, nodes)
	close(stop)
	wg.Wait()
	return lr, slowDone.Load()
}

var namesFrame = []byte{0, 1, byte(wire.TagNamesReq)}

// dribbleNames sends NAMES a byte at a time, then reads the reply to EOF.
func dribbleNames(addr string, pause, timeout time.Duration, stop <-chan struct{}) error {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	for _, b := range namesFrame {
		c.SetWriteDeadline(time.Now().Add(timeout))
		if _, err := c.Write([]byte{b}); err != nil {
			return err
		}
		select {
		case <-stop:
			return errors.New("stopped")
		case <-time.After(pause):
		}
	}
	c.SetReadDeadline(time.Now().Add(timeout))
	_, err = io.Copy(io.Discard, c)
	return err
}

// unreadNames sends NAMES from a socket whose receive buffer is as small
// as the kernel allows, and never reads the reply.
func unreadNames(addr string, hold, timeout time.Duration, stop <-chan struct{}) error {
	d := net.Dialer{Timeout: timeout, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = setsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, 1024)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := c.Write(namesFrame); err != nil {
		return err
	}
	select {
	case <-stop:
	case <-time.After(hold):
	}
	return nil
}
