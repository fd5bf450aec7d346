// Command epmd-bench measures an Erlang Port Mapper Daemon (gopmd, the stock
// C epmd, or any other) on loopback, driving it as real clients do: a new
// TCP connection per request, registrations held on their connections.
//
// Usage:
//
//	epmd-bench [target] [flags] [figure ...]
//
// The target is one of
//
//	-epmd PATH          start PATH -port P -address 127.0.0.1 -relaxed_command_check
//	                    on a free port, measure it, stop it
//	-addr HOST:PORT     a running daemon; add -pid N for the /proc figures
//	-null               the null server: accept, read the request, write
//	                    "w\x01", close (the kernel's share of a look-up)
//	-compare A,B[,C]    start each (a binary path, or "null"), run every figure
//	                    on each in turn, A B A B ..., -rounds times, and print
//	                    min/median/max per target and the ratio of A to B
//
// A figure is WORKLOAD[:key=value,...]; without one, -w and the flags give
// it. Workloads: lookup, names, churn, hold, slow (see -h). Keys: nodes, c,
// n, duration (d), timeout, slow, hold, dribble, defaulting to the flags of
// the same meaning. For example:
//
//	epmd-bench -compare bin/epmd,/usr/bin/epmd lookup:nodes=10 lookup:nodes=1000 names:nodes=1000
//
// -plot FILE.svg sweeps the number of registered nodes (-sweep) and draws
// look-up p50/p99 and NAMES time against it, one colour per daemon; a
// daemon that cannot hold a count ends its line there and the plot says
// how many it held. -json FILE writes everything measured.
//
// Registrations the tool holds (the nodes registered before a run, hold,
// the sweep) are bound to source ports below the kernel's ephemeral range
// (-bind-ports auto). Linux scans the ephemeral range, even ports first, to
// give each connect() a port; once more than half of it is held (14116
// ports with the default 32768-60999), every further connect() costs about
// a millisecond of kernel time in the client, which would show as daemon
// latency. Look-ups, NAMES and churn use ordinary ephemeral ports.
// -bind-ports off lets the kernel pick for everything, to see that effect.
//
// Every phase is bounded by a count and a duration, so the tool always
// stops by itself. It talks to 127.0.0.1 (or the -addr given) only, and it
// only ever stops processes it started, by their pid.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

func main() {
	if os.Getenv(nullEnv) == "1" {
		os.Exit(serveNull())
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// options are the command line.
type options struct {
	base      figure
	figures   []figure
	epmd      string
	addr      string
	pid       int
	null      bool
	compare   []string
	rounds    int
	jsonPath  string
	plotPath  string
	sweep     []int
	sweepN    int64
	sweepC    int
	sweepNm   int64
	setup     time.Duration
	regConc   int
	quiet     bool
	explicitW bool
	cpuprof   string
	ports     *portPool
	fresh     bool
}

func parseArgs(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("epmd-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.base.Workload, "w", wLookup, "workload when no figure is given: "+strings.Join(workloads, ", "))
	fs.IntVar(&o.base.Nodes, "nodes", 10, "nodes registered before the measurement (hold: how many to hold)")
	fs.IntVar(&o.base.Conc, "c", 16, "concurrent clients")
	n := fs.Int64("n", 20000, "at most this many operations per run")
	fs.DurationVar(&o.base.Duration, "duration", 5*time.Second, "at most this long per run (operations in flight then finish)")
	fs.DurationVar(&o.base.Timeout, "timeout", 5*time.Second, "timeout of each request")
	fs.IntVar(&o.base.Slow, "slow", 4, "slow workload: slow clients (half dribble NAMES a byte at a time, half never read the NAMES reply)")
	fs.DurationVar(&o.base.SlowHold, "slow-hold", time.Second, "slow workload: how long a non-reading client keeps its connection")
	fs.DurationVar(&o.base.Dribble, "dribble", 100*time.Millisecond, "slow workload: pause between the bytes of a dribbling client")
	fs.DurationVar(&o.base.Settle, "settle", 2*time.Second, "hoard workload: wait after closing the readers before reading the daemon's memory again")
	fs.IntVar(&o.base.Dump, "dump", 100, "hoard: DUMP readers that never read; dumploop: clients asking DUMP in a loop")
	fs.IntVar(&o.base.NamesReaders, "nreaders", 60, "hoard: NAMES readers that never read, each after a change of the table")
	fs.BoolVar(&o.base.Max, "max", false, "register maximal nodes (254-character names of 4-byte characters, 1020-byte extra) beforehand")
	fs.StringVar(&o.epmd, "epmd", "", "start this daemon binary on a free loopback port and measure it")
	fs.StringVar(&o.addr, "addr", "", "measure the running daemon at this host:port")
	fs.IntVar(&o.pid, "pid", 0, "with -addr: the daemon's pid, for CPU, RSS and fd figures")
	fs.BoolVar(&o.null, "null", false, "measure the null server (accept, read, write \"w\\x01\", close)")
	cmp := fs.String("compare", "", "comma-separated daemon binaries (or \"null\") to compare, A,B[,...]")
	fs.IntVar(&o.rounds, "rounds", 0, "runs of each figure on each target (default 3 with -compare, else 1)")
	fs.StringVar(&o.jsonPath, "json", "", "write the results as JSON to this file")
	fs.StringVar(&o.plotPath, "plot", "", "sweep the registered-node counts and write an SVG chart to this file")
	sweep := fs.String("sweep", joinInts(defaultSweep), "-plot: registered-node counts to sweep")
	fs.Int64Var(&o.sweepN, "sweep-n", 2000, "-plot: look-ups at each count")
	fs.IntVar(&o.sweepC, "sweep-c", 1, "-plot: concurrent look-up clients (1 measures a request's latency without queueing)")
	fs.Int64Var(&o.sweepNm, "sweep-names", 20, "-plot: NAMES requests at each count")
	fs.DurationVar(&o.setup, "setup-timeout", 2*time.Minute, "bound on registering the nodes before a run, and on waiting for the previous run's to go")
	fs.IntVar(&o.regConc, "reg-c", 16, "concurrency of the registrations before a run")
	bind := fs.String("bind-ports", "auto", "source ports LO-HI for the registrations the tool holds, \"auto\" (10000 up to the kernel's ephemeral range) or \"off\" (the kernel picks; see go doc)")
	fs.BoolVar(&o.quiet, "q", false, "no progress on stderr")
	fs.BoolVar(&o.fresh, "fresh", false, "restart each daemon the tool starts before every run (for memory figures such as hoard's)")
	fs.StringVar(&o.cpuprof, "cpuprofile", "", "write the tool's own CPU profile to this file")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	o.base.N = *n
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "w" {
			o.explicitW = true
		}
	})
	if *cmp != "" {
		o.compare = strings.Split(*cmp, ",")
		if len(o.compare) < 2 {
			return nil, errors.New("-compare needs at least two targets, A,B")
		}
		for _, c := range o.compare {
			if c == "" {
				return nil, fmt.Errorf("-compare %q: empty target", *cmp)
			}
		}
	}
	modes := 0
	for _, set := range []bool{o.epmd != "", o.addr != "", o.null, len(o.compare) > 0} {
		if set {
			modes++
		}
	}
	if modes != 1 {
		return nil, errors.New("give exactly one target: -epmd PATH, -addr HOST:PORT [-pid N], -null or -compare A,B")
	}
	if o.pid != 0 && o.addr == "" {
		return nil, errors.New("-pid goes with -addr")
	}
	if o.rounds == 0 {
		o.rounds = 1
		if len(o.compare) > 0 {
			o.rounds = 3
		}
	}
	if o.rounds < 1 || o.rounds > 100 {
		return nil, errors.New("-rounds must be 1..100")
	}
	if o.regConc < 1 || o.regConc > 1024 {
		return nil, errors.New("-reg-c must be 1..1024")
	}
	if o.setup <= 0 || o.setup > time.Hour {
		return nil, errors.New("-setup-timeout must be in (0, 1h]")
	}
	var err error
	if o.sweep, err = parseInts(*sweep); err != nil {
		return nil, fmt.Errorf("-sweep: %w", err)
	}
	if o.sweepN < 1 || o.sweepNm < 1 || o.sweepC < 1 || o.sweepC > 4096 {
		return nil, errors.New("-sweep-n and -sweep-names must be >= 1, -sweep-c 1..4096")
	}
	if o.ports, err = parsePorts(*bind); err != nil {
		return nil, fmt.Errorf("-bind-ports: %w", err)
	}
	for _, spec := range fs.Args() {
		f, err := parseFigure(spec, o.base)
		if err != nil {
			return nil, err
		}
		o.figures = append(o.figures, f)
	}
	if len(o.figures) == 0 && (o.plotPath == "" || o.explicitW) {
		f, err := parseFigure(o.base.Workload, o.base)
		if err != nil {
			return nil, err
		}
		o.figures = append(o.figures, f)
	}
	return o, nil
}

const usage = `usage: epmd-bench (-epmd PATH | -addr HOST:PORT [-pid N] | -null | -compare A,B[,...]) [flags] [figure ...]

Measures an epmd on loopback as real clients use it. A figure is
WORKLOAD[:key=value,...] with keys nodes, c, n, duration, timeout, slow,
hold, dribble, settle, max, dump, nreaders (defaults: the flags below).
Workloads:

  lookup  PORT_PLEASE2 on a new connection each, from c clients, of names
          drawn at random from the nodes registered beforehand
  names   NAMES read to EOF, with the nodes registered
  churn   each of c clients registers its own name, closes, registers again
  hold    open registrations (c at a time) until nodes are held or one fails
  slow    lookups from c clients while "slow" clients send NAMES a byte at a
          time or never read its reply; reports the lookups
  hoard   "dump" local clients send DUMP and "nreaders" send NAMES (each
          after a change of the table: a new registration, the previous
          one closed) and never read the replies; they hold on for "hold"
          while lookups run from c clients; reports the daemon's VmRSS
          before, its peak (sampled every 50 ms), VmRSS "settle" after the
          readers closed and VmHWM, and the lookups. Use with max and
          nodes (e.g. hoard:nodes=5000,max=1,hold=15s)
  dumploop lookups from c clients idle, then while "dump" local clients
          ask DUMP in a loop (reading each reply); reports both

Reports ops/s, p50/p99/max latency, errors, and for a daemon whose pid is
known the daemon's CPU per operation (user+sys from /proc/PID/stat over the
run, 10 ms ticks), its VmRSS and open fds at the end of the run.

Flags:
`

// parsePorts reads -bind-ports.
func parsePorts(s string) (*portPool, error) {
	switch s {
	case "off":
		return nil, nil
	case "auto":
		lo, hi := 10000, 32767
		if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
			if f := strings.Fields(string(b)); len(f) == 2 {
				if eph, err := strconv.Atoi(f[0]); err == nil {
					hi = eph - 1
				}
			}
		}
		if hi-lo < 1000 {
			return nil, nil
		}
		return newPortPool(lo, hi), nil
	}
	a, b, ok := strings.Cut(s, "-")
	lo, err1 := strconv.Atoi(a)
	hi, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || lo < 1024 || hi > 65535 || hi < lo {
		return nil, fmt.Errorf("%q is not auto, off or LO-HI with 1024 <= LO <= HI <= 65535", s)
	}
	return newPortPool(lo, hi), nil
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v < 1 {
			return nil, fmt.Errorf("%q is not a positive count", f)
		}
		if len(out) > 0 && v <= out[len(out)-1] {
			return nil, errors.New("counts must increase")
		}
		out = append(out, v)
	}
	return out, nil
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseArgs(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "epmd-bench:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.cpuprof != "" {
		f, err := os.Create(o.cpuprof)
		if err != nil {
			fmt.Fprintln(stderr, "epmd-bench:", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "epmd-bench:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	if err := bench(ctx, o, args, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "epmd-bench:", err)
		return 1
	}
	return 0
}

// bench runs what o asks for.
func bench(ctx context.Context, o *options, args []string, stdout, stderr io.Writer) error {
	rep := &report{
		Tool:    "epmd-bench",
		Command: append([]string{"epmd-bench"}, args...),
		Started: time.Now(),
		Machine: describeMachine(),
		Figures: o.figures,
		Rounds:  o.rounds,
	}
	var progress io.Writer = stderr
	if o.quiet {
		progress = nil
	}
	r := &runner{setupTimeout: o.setup, regConc: o.regConc, progress: progress, ports: o.ports, fresh: o.fresh}

	var targets []*target
	switch {
	case len(o.compare) > 0:
		for _, c := range o.compare {
			if c == "null" {
				targets = append(targets, &target{Label: "null", Kind: kindNull})
			} else {
				targets = append(targets, &target{Label: c, Kind: kindStarted, Path: c})
			}
		}
	case o.epmd != "":
		targets = []*target{{Label: o.epmd, Kind: kindStarted, Path: o.epmd}}
	case o.null:
		targets = []*target{{Label: "null", Kind: kindNull}}
	default:
		targets = []*target{{Label: o.addr, Kind: kindExternal, Addr: o.addr, Pid: o.pid}}
	}
	letters := make([]string, len(targets))
	for i := range targets {
		letters[i] = string(rune('A' + i))
	}
	defer func() {
		for _, t := range targets {
			t.stop()
		}
	}()
	for _, t := range targets {
		if err := t.start(ctx); err != nil {
			return err
		}
		r.logf("%s: %s on %s, pid %d", t.Label, t.Kind, t.Addr, t.Pid)
	}

	fmt.Fprintf(stdout, "epmd-bench %s\n", rep.Started.UTC().Format(time.RFC3339))
	fmt.Fprintf(stdout, "machine: %s\n", rep.Machine)
	rep.LoadAvg[0] = loadAvg()
	fmt.Fprintf(stdout, "load average (1 5 15 min) at start: %s\n", rep.LoadAvg[0])

	// Figures: A B A B ... for each.
	var cfs []compareFigure
	for _, f := range o.figures {
		perTarget := make([][]runResult, len(targets))
		for round := 1; round <= o.rounds; round++ {
			for ti, t := range targets {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				r.logf("[%s round %d/%d] %s on %s", letters[ti], round, o.rounds, f, t.Label)
				res := r.run(ctx, t, f)
				res.Round = round
				r.logf("  %s", runLine(res))
				perTarget[ti] = append(perTarget[ti], res)
				rep.Runs = append(rep.Runs, res)
			}
		}
		if len(targets) >= 2 {
			cfs = append(cfs, buildCompare(f, targets, perTarget, o.rounds, letters))
		}
	}
	if len(targets) >= 2 && len(cfs) > 0 {
		fmt.Fprintln(stdout)
		printCompare(stdout, targets, letters, cfs)
		rep.Compare = cfs
	} else if len(rep.Runs) > 0 {
		fmt.Fprintln(stdout)
		printRuns(stdout, rep.Runs)
	}

	// The sweep for the plot.
	if o.plotPath != "" {
		cfg := sweepConfig{counts: o.sweep, conc: o.sweepC, lookups: o.sweepN, names: o.sweepNm,
			dur: o.base.Duration, timeout: o.base.Timeout}
		for _, t := range targets {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r.logf("sweep on %s: %s nodes", t.Label, joinInts(o.sweep))
			rep.Sweep = append(rep.Sweep, r.sweep(ctx, t, cfg))
		}
		fmt.Fprintln(stdout)
		printSweep(stdout, rep.Sweep)
		title := "epmd: look-up and NAMES latency vs registered nodes"
		sub := []string{
			fmt.Sprintf("%s; per point: %d look-ups (new connection each) from %d client(s), %d NAMES one at a time; p50/p99 over the look-ups, median over the NAMES",
				rep.Started.UTC().Format("2006-01-02"), cfg.lookups, cfg.conc, cfg.names),
			rep.Machine.String(),
			"epmd-bench " + strings.Join(args, " "),
		}
		f, err := os.Create(o.plotPath)
		if err != nil {
			return err
		}
		if err := renderPlot(f, title, sub, o.sweep, rep.Sweep); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		rep.Plot = o.plotPath
		fmt.Fprintf(stdout, "plot written to %s\n", o.plotPath)
	}

	rep.LoadAvg[1] = loadAvg()
	fmt.Fprintf(stdout, "\nload average (1 5 15 min) at end: %s\n", rep.LoadAvg[1])
	for ti, t := range targets {
		rep.Targets = append(rep.Targets, targetInfo{Letter: letters[ti], Label: t.Label, Kind: t.Kind, Addr: t.Addr, Pid: t.Pid, Restarts: t.restarts})
	}
	rep.Finished = time.Now()
	if o.jsonPath != "" {
		if err := writeJSON(o.jsonPath, rep); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "results written to %s\n", o.jsonPath)
	}
	return nil
}

// runLine is the one-line progress summary of a run.
func runLine(r runResult) string {
	if r.Skipped != "" {
		return "skipped: " + r.Skipped
	}
	s := fmt.Sprintf("%d ops, %d errors, %s ops/s, p50 %s µs, p99 %s µs, max %s µs",
		r.Ops, r.Errors, fmtNum(r.OpsPerSec), fmtNum(r.P50us), fmtNum(r.P99us), fmtNum(r.MaxUs))
	if d := r.Daemon; d != nil {
		s += fmt.Sprintf(", daemon %s µs cpu/op, rss %d KiB, %d fds", fmtNum(d.CPUPerOpUs), d.RSSKiB, d.FDs)
	}
	if n := runNotes(r); n != "" {
		s += "; " + n
	}
	return s
}

// printSweep prints the sweep as a table.
func printSweep(w io.Writer, series []sweepSeries) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\tnodes\tlookup p50 µs\tlookup p99 µs\tlookup errors\tNAMES p50 µs\tNAMES max µs\tNAMES errors\trss KiB\tfds\t")
	for _, s := range series {
		for _, p := range s.Points {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%s\t%s\t%d\t%d\t%d\t\n", s.Target, p.Nodes,
				fmtNum(p.LookupP50us), fmtNum(p.LookupP99us), p.LookupErrors, fmtNum(p.NamesP50us), fmtNum(p.NamesMaxUs), p.NamesErrors, p.RSSKiB, p.FDs)
		}
	}
	tw.Flush()
	for _, s := range series {
		switch {
		case s.Skipped != "":
			fmt.Fprintf(w, "%s: skipped: %s\n", s.Target, s.Skipped)
		case s.FailedAt > 0:
			fmt.Fprintf(w, "%s: held %d registrations, then %s\n", s.Target, s.FailedAt, s.Failure)
		case s.Failure != "":
			fmt.Fprintf(w, "%s: stopped: %s\n", s.Target, s.Failure)
		}
	}
}
