// Command epmd-conformance runs gopmd's scripted conformance suite against
// any epmd: the scripts are built in, so it works from anywhere.
//
// Usage:
//
//	epmd-conformance -epmd /path/to/epmd [-reference /path/to/stock/epmd] [flags]
//	epmd-conformance -addr 127.0.0.1:4369 [flags]
//	epmd-conformance -list [-run RE] [-skip RE]
//
// Each case starts its own daemon on a free loopback port. With
// -reference, every case also runs against the stock epmd, and a case the
// stock daemon fails is reported as a broken script. It prints one line
// per case:
//
//	PASS name
//	FAIL name: why
//	DIFF name (expected: differences.md #N)
//	SKIP name: reason
//	CRASH name: how the daemon died, the end of its output
//	BLOCKED name: blocked by CAPABILITY: why
//	TIMEOUT name: what it waited for
//
// then, when not everything passed, the results by script and the blocked
// cases by capability, and last "N passed, N failed, N skipped" (DIFF
// counts as passed; crashed, blocked and timed out cases are added when
// there are any). With -json it writes one JSON object per case and a
// summary object instead; -junit FILE writes a JUnit XML report as well.
// The exit status is 0 if every case passed or was skipped, 1 otherwise,
// 2 on a usage error. See docs/conformance.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gopmd/gopmd/conformance"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// stringList is a flag that may be given several times.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

type options struct {
	epmd, ref, addr, flavour string
	daemonCmd, cliCmd        string
	otp, refOTP              int
	run, skip                string
	list, verbose, jsonOut   bool
	junit                    string
	parallel                 int
	ports                    string
	timeout                  time.Duration
	caseTimeout, stepTimeout time.Duration
	startTimeout             time.Duration
	without, expect, probe   string
	scripts                  stringList
}

func run(args []string, stdout, stderr io.Writer) int {
	var o options
	fs := flag.NewFlagSet("epmd-conformance", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.epmd, "epmd", "", "the epmd binary under test (required unless -addr, -daemon-cmd or -list)")
	fs.StringVar(&o.daemonCmd, "daemon-cmd", "", "how to start the daemon under test: a command template with {epmd}, {port} and {args} (default: \"{epmd} {args}\", where {args} is -port PORT and the case's flags)")
	fs.StringVar(&o.cliCmd, "cli-cmd", "", "how to run the client under test: a command template with {epmd} and {args} (default: \"{epmd} {args}\")")
	fs.StringVar(&o.ref, "reference", "", "the stock epmd to run every case against as well")
	fs.IntVar(&o.refOTP, "reference-otp", 0, "the OTP release of -reference (default: guessed from its path, such as erts-13.1.5: OTP 25)")
	fs.IntVar(&o.otp, "otp", 0, fmt.Sprintf("the OTP release whose epmd the daemon under test is or follows, for the scripts' [otp...] lines (default: gopmd %d; stock guessed from its path; otherwise -reference's, else %d)", conformance.GopmdRelease, conformance.DefaultRelease))
	fs.StringVar(&o.addr, "addr", "", "test an already running epmd at HOST:PORT (127.0.0.1:4369, [::1]:4369) instead; only the cases marked shared run")
	fs.StringVar(&o.flavour, "flavour", "auto", "which [stock]/[gopmd] script lines apply to the daemon under test: auto (ask -version), stock or gopmd; auto is stock with -addr")
	fs.StringVar(&o.run, "run", "", "run only the cases whose name matches this regular expression")
	fs.StringVar(&o.skip, "skip", "", "leave out the cases whose name matches this regular expression")
	fs.BoolVar(&o.list, "list", false, "print the names of the selected cases and exit")
	fs.BoolVar(&o.verbose, "v", false, "print each case's transcript")
	fs.BoolVar(&o.jsonOut, "json", false, "write one JSON object per case, then a summary object, to stdout")
	fs.StringVar(&o.junit, "junit", "", "also write a JUnit XML report to this file")
	fs.IntVar(&o.parallel, "parallel", runtime.NumCPU(), "how many cases run at once")
	fs.StringVar(&o.ports, "ports", "", "take every port the suite uses from LO-HI (default: any free port)")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Minute, "time limit for the whole run; the cases still running then, and those not yet started, are TIMEOUT")
	fs.DurationVar(&o.caseTimeout, "case-timeout", conformance.DefaultCaseLimit, "time limit for one case, daemon start and stop included")
	fs.DurationVar(&o.stepTimeout, "step-timeout", conformance.DefaultStepLimit, "how much longer than its own stated wait a step may take")
	fs.DurationVar(&o.startTimeout, "start-timeout", conformance.DefaultStartLimit, "how long a daemon may take to answer the readiness probe after it starts (a client run may take half as long, at least 10s)")
	fs.StringVar(&o.without, "without", "", "capabilities the daemon under test lacks, comma-separated; cases needing them are skipped (cli, names, dump, kill, stop, daemon-mode, systemd, ipv6, log, exit, alive2, alive2-v, or a daemon flag such as -relaxed_command_check)")
	fs.StringVar(&o.expect, "expect", "", "an expected-differences file: lines \"CASE-PATTERN REASON\"; a matching case that fails is reported as DIFF")
	fs.StringVar(&o.probe, "probe", conformance.ProbePortPlease, "how to tell that a started daemon is ready: port-please (ask for an unknown name), names, or connect")
	fs.Var(&o.scripts, "scripts", "a directory of extra scripts (*.txt) to run with the built-in ones; may be repeated")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: epmd-conformance -epmd /path/to/epmd [-reference /path/to/stock/epmd] [flags]")
		fmt.Fprintln(fs.Output(), "       epmd-conformance -addr HOST:PORT [flags]")
		fmt.Fprintln(fs.Output(), "       epmd-conformance -list [-run RE] [-skip RE]")
		fmt.Fprintln(fs.Output(), "\nSee docs/conformance.md, \"Testing your own epmd\".\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fs.Usage()
			return 0
		}
		return 2
	}
	usage := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "epmd-conformance: "+format+"\n", a...)
		return 2
	}
	if fs.NArg() != 0 {
		return usage("unexpected arguments %q (flags go before them? see -h)", fs.Args())
	}
	cfg := conformance.Config{Parallel: o.parallel}
	var err error
	if o.run != "" {
		if cfg.Run, err = regexp.Compile(o.run); err != nil {
			return usage("-run: %v", err)
		}
	}
	if o.skip != "" {
		if cfg.Skip, err = regexp.Compile(o.skip); err != nil {
			return usage("-skip: %v", err)
		}
	}
	files, goldens, err := loadScripts(o.scripts)
	if err != nil {
		return usage("%v", err)
	}
	cfg.Goldens = goldens
	cases := conformance.Select(conformance.Cases(files), cfg.Run, cfg.Skip)
	if len(cases) == 0 {
		return usage("-run %q -skip %q select no case (see -list)", o.run, o.skip)
	}
	if o.list {
		for _, c := range cases {
			fmt.Fprintln(stdout, c.Name)
		}
		return 0
	}
	if o.epmd == "" && o.addr == "" && o.daemonCmd == "" {
		fs.Usage()
		return 2
	}
	if o.parallel < 1 {
		return usage("-parallel must be at least 1")
	}
	if o.ports != "" {
		lo, hi, ok := strings.Cut(o.ports, "-")
		l, err1 := strconv.Atoi(lo)
		h, err2 := strconv.Atoi(hi)
		if !ok || err1 != nil || err2 != nil {
			return usage("-ports %q: want LO-HI, such as 20000-20999", o.ports)
		}
		if err := conformance.SetPortRange(l, h); err != nil {
			return usage("-ports: %v", err)
		}
	}
	limits := conformance.Limits{Start: o.startTimeout, Step: o.stepTimeout, Case: o.caseTimeout}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if cfg.Target, err = target(ctx, o.epmd, o.flavour, o.addr != ""); err != nil {
		return usage("%v", err)
	}
	t := &cfg.Target
	t.Addr, t.Limits, t.Probe = o.addr, limits, o.probe
	switch o.probe {
	case conformance.ProbePortPlease, conformance.ProbeNames, conformance.ProbeConnect:
	default:
		return usage("-probe %q: want port-please, names or connect", o.probe)
	}
	if o.daemonCmd != "" {
		if t.Command, err = conformance.ParseCommandTemplate(o.daemonCmd); err != nil {
			return usage("-daemon-cmd: %v", err)
		}
		absProgram(t.Command)
	}
	if o.cliCmd != "" {
		if t.CLI, err = conformance.ParseCommandTemplate(o.cliCmd); err != nil {
			return usage("-cli-cmd: %v", err)
		}
		absProgram(t.CLI)
	} else if t.Path == "" {
		// No binary to run as a client: the CLI cases cannot run.
		t.Without = conformance.Capabilities{"cli": true}
	}
	if o.without != "" {
		w, err := conformance.ParseCapabilities(o.without)
		if err != nil {
			return usage("-without: %v", err)
		}
		if t.Without == nil {
			t.Without = w
		} else {
			for k := range w {
				t.Without[k] = true
			}
		}
	}
	if o.expect != "" {
		b, err := os.ReadFile(o.expect)
		if err != nil {
			return usage("-expect: %v", err)
		}
		if cfg.Expected, err = conformance.ParseExpected(o.expect, string(b)); err != nil {
			return usage("-expect: %v", err)
		}
	}
	if o.addr != "" {
		if _, err := net4or6(o.addr); err != nil {
			return usage("%v", err)
		}
	}
	if o.ref != "" {
		if o.addr != "" {
			return usage("-reference and -addr do not go together")
		}
		if cfg.Reference, err = target(ctx, o.ref, "auto", false); err != nil {
			return usage("%v", err)
		}
		if cfg.Reference.Flavour != conformance.Stock {
			return usage("-reference %s is not a stock epmd (it answers -version)", o.ref)
		}
		cfg.Reference.Limits, cfg.Reference.Probe = limits, o.probe
		cfg.Reference.Release = o.refOTP
		if cfg.Reference.Release == 0 {
			cfg.Reference.Release = conformance.DetectRelease(o.ref)
		}
		if cfg.Reference.Release == 0 {
			fmt.Fprintf(stderr, "epmd-conformance: cannot tell the OTP release of -reference %s; holding it to OTP %d (give -reference-otp N)\n", o.ref, conformance.DefaultRelease)
			cfg.Reference.Release = conformance.DefaultRelease
		}
	}
	switch {
	case o.otp > 0:
		t.Release = o.otp
	case t.Flavour == conformance.Gopmd:
		t.Release = conformance.GopmdRelease
	case t.Path != "" && t.Command == nil && conformance.DetectRelease(t.Path) > 0:
		t.Release = conformance.DetectRelease(t.Path)
	case cfg.Reference.Release > 0:
		t.Release = cfg.Reference.Release
	default:
		t.Release = conformance.DefaultRelease
	}

	// Daemons and clients run in a directory of their own, so that what
	// they write (a BEAM's crash dump) does not land where we were started.
	if t.Dir, err = os.MkdirTemp("", "epmd-conformance-"); err != nil {
		return usage("%v", err)
	}
	defer os.RemoveAll(t.Dir)
	cfg.Reference.Dir = t.Dir

	runCtx, cancel := context.WithTimeoutCause(ctx, o.timeout, fmt.Errorf("the run's time limit (-timeout %v) ran out", o.timeout))
	defer cancel()
	start := time.Now()
	var reports []caseReport
	results := conformance.RunSuite(runCtx, cfg, cases, func(r *conformance.Result) {
		cr := newReport(r)
		reports = append(reports, cr)
		if o.jsonOut {
			writeJSON(stdout, cr)
			return
		}
		fmt.Fprintln(stdout, r.Line())
		if o.verbose {
			printTranscript(stdout, "", r.Target)
			if r.Reference != nil && (r.Verdict == conformance.VerdictFail || r.Reference.Status != conformance.Pass) {
				printTranscript(stdout, "stock: ", r.Reference)
			}
		}
	})
	elapsed := time.Since(start)
	counts := conformance.Count(results)
	halted := conformance.Halted(results)
	if halted != "" {
		fmt.Fprintf(stderr, "epmd-conformance: stopped: %s; the cases from there on were not run\n", halted)
	}
	if o.jsonOut {
		writeJSON(stdout, newSummary(counts, cfg, elapsed))
		fmt.Fprintln(stderr, counts.Line())
	} else {
		printBreakdown(stdout, results, counts)
		fmt.Fprintln(stdout, counts.Line())
	}
	if o.junit != "" {
		if err := writeJUnit(o.junit, reports, elapsed); err != nil {
			fmt.Fprintf(stderr, "epmd-conformance: -junit: %v\n", err)
			return 2
		}
	}
	if !counts.OK() || halted != "" {
		return 1
	}
	return 0
}

func net4or6(addr string) (string, error) {
	host, port, err := splitHostPort(addr)
	if err != nil {
		return "", err
	}
	return host + ":" + port, nil
}

func splitHostPort(addr string) (string, string, error) {
	i := strings.LastIndexByte(addr, ':')
	if i <= 0 {
		return "", "", fmt.Errorf("-addr %q: want HOST:PORT, such as 127.0.0.1:4369 or [::1]:4369", addr)
	}
	if n, err := strconv.Atoi(addr[i+1:]); err != nil || n < 1 || n > 65535 {
		return "", "", fmt.Errorf("-addr %q: bad port", addr)
	}
	return addr[:i], addr[i+1:], nil
}

// loadScripts loads the built-in scripts and those of the extra
// directories; golden files are looked up in the built-in set first.
func loadScripts(dirs []string) ([]*conformance.File, fs.FS, error) {
	files, err := conformance.Load(conformance.Scripts)
	if err != nil {
		return nil, nil, err
	}
	fsys := unionFS{conformance.Scripts}
	seen := map[string]bool{}
	for _, f := range files {
		seen[f.Name] = true
	}
	for _, d := range dirs {
		dfs := os.DirFS(d)
		more, err := conformance.Load(dfs)
		if err != nil {
			return nil, nil, fmt.Errorf("-scripts %s: %v", d, err)
		}
		if len(more) == 0 {
			return nil, nil, fmt.Errorf("-scripts %s: no *.txt scripts there", d)
		}
		for _, f := range more {
			if seen[f.Name] {
				return nil, nil, fmt.Errorf("-scripts %s: %s has the name of a script already loaded", d, f.Name)
			}
			seen[f.Name] = true
		}
		files = append(files, more...)
		fsys = append(fsys, dfs)
	}
	return files, fsys, nil
}

// unionFS opens a name in the first file system that has it.
type unionFS []fs.FS

func (u unionFS) Open(name string) (fs.File, error) {
	var first error
	for _, f := range u {
		h, err := f.Open(name)
		if err == nil {
			return h, nil
		}
		if first == nil {
			first = err
		}
	}
	return nil, first
}

var envWordRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)

// absProgram makes the program of a command template absolute when it is
// a relative path: daemons run in a directory of their own.
func absProgram(words []string) {
	for i, w := range words {
		if envWordRE.MatchString(w) {
			continue // an environment variable
		}
		if strings.ContainsRune(w, '/') && !filepath.IsAbs(w) && !strings.HasPrefix(w, "{") {
			if a, err := filepath.Abs(w); err == nil {
				words[i] = a
			}
		}
		return
	}
}

func target(ctx context.Context, path, flavour string, addr bool) (conformance.Target, error) {
	if path != "" {
		// Daemons run in a directory of their own: the path must not
		// depend on ours.
		if a, err := filepath.Abs(path); err == nil {
			path = a
		}
	}
	t := conformance.Target{Path: path}
	switch flavour {
	case conformance.Stock, conformance.Gopmd:
		t.Flavour = flavour
	case "auto", "":
	default:
		return t, fmt.Errorf("-flavour %q: want auto, stock or gopmd", flavour)
	}
	if path == "" {
		if t.Flavour == "" {
			t.Flavour = conformance.Stock
		}
		return t, nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return t, err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return t, fmt.Errorf("%s is not an executable file", path)
	}
	if t.Flavour == "" {
		if t.Flavour, err = conformance.DetectFlavour(ctx, path); err != nil {
			return t, err
		}
	}
	return t, nil
}

func printTranscript(w io.Writer, prefix string, o *conformance.Outcome) {
	if o == nil {
		return
	}
	for _, l := range o.Transcript {
		fmt.Fprintf(w, "    %s%s\n", prefix, strings.ReplaceAll(l, "\n", "\n    "+prefix))
	}
}

// printBreakdown prints, when not every case passed, how each script
// fared and which capabilities blocked how many cases.
func printBreakdown(w io.Writer, results []*conformance.Result, c conformance.Counts) {
	if c.OK() {
		return
	}
	type tally struct{ pass, total int }
	var order []string
	by := map[string]*tally{}
	for _, r := range results {
		name := strings.TrimSuffix(r.Case.File.Name, ".txt")
		t := by[name]
		if t == nil {
			t = &tally{}
			by[name] = t
			order = append(order, name)
		}
		if r.Verdict == conformance.VerdictSkip {
			continue
		}
		t.total++
		if r.Verdict == conformance.VerdictPass || r.Verdict == conformance.VerdictDiff {
			t.pass++
		}
	}
	var parts []string
	for _, n := range order {
		parts = append(parts, fmt.Sprintf("%s %d/%d", n, by[n].pass, by[n].total))
	}
	fmt.Fprintf(w, "passed by script: %s\n", strings.Join(parts, ", "))
	if len(c.ByCapability) > 0 {
		keys := make([]string, 0, len(c.ByCapability))
		for k := range c.ByCapability {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			if c.ByCapability[keys[i]] != c.ByCapability[keys[j]] {
				return c.ByCapability[keys[i]] > c.ByCapability[keys[j]]
			}
			return keys[i] < keys[j]
		})
		parts = parts[:0]
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s: %d", conformance.CapabilityTitle(k), c.ByCapability[k]))
		}
		fmt.Fprintf(w, "blocked by: %s\n", strings.Join(parts, ", "))
	}
}
