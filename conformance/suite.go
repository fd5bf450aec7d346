package conformance

import (
	"context"
	"fmt"
	"io/fs"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
)

// Config says what to run the suite against.
type Config struct {
	// Target is the epmd under test.
	Target Target
	// Reference, if its Path is set, is the stock epmd: every case also
	// runs against it, and a case fails only where the two differ in a
	// way the script does not allow for.
	Reference Target
	// Run selects cases by name (nil: all); Skip leaves out the cases
	// whose name it matches.
	Run, Skip *regexp.Regexp
	// Parallel is how many cases run at once (default: the number of
	// CPUs; 1 against Addr).
	Parallel int
	// Goldens holds the golden files scripts refer to (the testdata
	// directory); nil if none.
	Goldens fs.FS
	// Expected are the differences the target is known to have (an
	// expected-differences file): a matching case that fails is a DIFF.
	Expected []Expected
}

// Verdict is a case's line in the report.
type Verdict string

const (
	VerdictPass    Verdict = "PASS"
	VerdictFail    Verdict = "FAIL"
	VerdictDiff    Verdict = "DIFF" // passes, showing a documented difference
	VerdictSkip    Verdict = "SKIP"
	VerdictCrash   Verdict = "CRASH"
	VerdictBlocked Verdict = "BLOCKED"
	VerdictTimeout Verdict = "TIMEOUT"
)

// Result is the outcome of a case against the target (and the reference).
type Result struct {
	Case    *Case
	Verdict Verdict
	Reason  string
	// BlockedBy is the capability a BLOCKED case failed on.
	BlockedBy string
	// Expected is the expected-differences line that made a failure a
	// DIFF (nil if none).
	Expected *Expected
	// NotRun says the case did not run because the run stopped before
	// it: the daemon at -addr stopped answering, or the run's time limit.
	NotRun bool
	// Target and Reference are the single-daemon outcomes (Reference is
	// nil without a reference).
	Target, Reference *Outcome
}

// Line is the one-line report of a result.
func (r *Result) Line() string {
	switch r.Verdict {
	case VerdictDiff:
		if r.Expected != nil {
			return fmt.Sprintf("DIFF %s (expected: %s)", r.Case.Name, r.Expected.Reason)
		}
		return fmt.Sprintf("DIFF %s (expected: differences.md #%d)", r.Case.Name, r.Case.Difference)
	case VerdictPass:
		return "PASS " + r.Case.Name
	}
	return fmt.Sprintf("%s %s: %s", r.Verdict, r.Case.Name, r.Reason)
}

// Counts are a suite run's totals by verdict.
type Counts struct {
	Passed, Diff, Failed, Skipped, Crashed, Blocked, TimedOut int
	// ByCapability counts the BLOCKED cases by the capability that
	// blocked them.
	ByCapability map[string]int
}

// OK reports whether the run passed: nothing failed, crashed, was
// blocked or timed out.
func (c Counts) OK() bool { return c.Failed+c.Crashed+c.Blocked+c.TimedOut == 0 }

// Line is the summary line: "N passed, N failed, N skipped", with the
// other statuses added when there are any. DIFF counts as passed.
func (c Counts) Line() string {
	s := fmt.Sprintf("%d passed, %d failed", c.Passed+c.Diff, c.Failed)
	if c.Crashed > 0 {
		s += fmt.Sprintf(", %d crashed", c.Crashed)
	}
	if c.Blocked > 0 {
		s += fmt.Sprintf(", %d blocked", c.Blocked)
	}
	if c.TimedOut > 0 {
		s += fmt.Sprintf(", %d timed out", c.TimedOut)
	}
	return s + fmt.Sprintf(", %d skipped", c.Skipped)
}

// Count totals the results.
func Count(rs []*Result) Counts {
	c := Counts{ByCapability: map[string]int{}}
	for _, r := range rs {
		switch r.Verdict {
		case VerdictPass:
			c.Passed++
		case VerdictDiff:
			c.Diff++
		case VerdictFail:
			c.Failed++
		case VerdictCrash:
			c.Crashed++
		case VerdictBlocked:
			c.Blocked++
			c.ByCapability[r.BlockedBy]++
		case VerdictTimeout:
			c.TimedOut++
		default:
			c.Skipped++
		}
	}
	return c
}

// Summary counts results: DIFF counts as passed; CRASH, BLOCKED and
// TIMEOUT count as failed.
func Summary(rs []*Result) (passed, failed, skipped int) {
	c := Count(rs)
	return c.Passed + c.Diff, c.Failed + c.Crashed + c.Blocked + c.TimedOut, c.Skipped
}

// Select returns the cases whose names match run and not skip (either
// may be nil).
func Select(cases []*Case, run, skip *regexp.Regexp) []*Case {
	var out []*Case
	for _, c := range cases {
		if (run == nil || run.MatchString(c.Name)) && (skip == nil || !skip.MatchString(c.Name)) {
			out = append(out, c)
		}
	}
	return out
}

func (cfg *Config) goldens() func(string) ([]byte, error) {
	if cfg.Goldens == nil {
		return nil
	}
	return func(name string) ([]byte, error) { return fs.ReadFile(cfg.Goldens, name) }
}

func (cfg *Config) parallel() int {
	if cfg.Target.Addr != "" {
		return 1 // cases share the daemon's registry
	}
	if cfg.Parallel > 0 {
		return cfg.Parallel
	}
	return runtime.NumCPU()
}

// RunSuite runs the cases and calls report for each result, in case order,
// as soon as it and every case before it are done. When ctx ends (the
// run's time limit), the cases still running end as TIMEOUT and the ones
// not started are reported as not run. Against a running daemon (-addr),
// the daemon is checked before every case, and the run stops when it no
// longer answers.
func RunSuite(ctx context.Context, cfg Config, cases []*Case, report func(*Result)) []*Result {
	cases = Select(cases, cfg.Run, cfg.Skip)
	results := make([]*Result, len(cases))
	ready := make([]chan struct{}, len(cases))
	for i := range ready {
		ready[i] = make(chan struct{})
	}
	var (
		haltMu sync.Mutex
		halt   string
	)
	sem := make(chan struct{}, cfg.parallel())
	for i, c := range cases {
		go func() {
			defer close(ready[i])
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				results[i] = notRun(c, runLimitWhy, VerdictTimeout)
				return
			}
			defer func() { <-sem }()
			haltMu.Lock()
			why := halt
			haltMu.Unlock()
			if why == "" && ctx.Err() != nil {
				results[i] = notRun(c, runLimitWhy, VerdictTimeout)
				return
			}
			if why == "" && cfg.Target.Addr != "" && c.Shared {
				if err := addrAnswering(cfg.Target); err != nil {
					why = fmt.Sprintf("the daemon at %s does not answer (%v)", cfg.Target.Addr, err)
				}
			}
			if why != "" {
				haltMu.Lock()
				if halt == "" {
					halt = why
				}
				haltMu.Unlock()
				results[i] = notRun(c, why, VerdictSkip)
				return
			}
			results[i] = RunOne(ctx, cfg, c)
			if cfg.Target.Addr != "" && results[i].Verdict == VerdictCrash {
				haltMu.Lock()
				halt = fmt.Sprintf("the daemon at %s stopped answering during %s", cfg.Target.Addr, c.Name)
				haltMu.Unlock()
			}
		}()
	}
	for i := range cases {
		<-ready[i]
		if report != nil {
			report(results[i])
		}
	}
	return results
}

// runLimitWhy is why a case did not start.
const runLimitWhy = "the run's time limit ran out before the case started"

// notRun is the result of a case the run did not get to: TIMEOUT when the
// run's time limit ran out first, SKIP when the daemon at -addr stopped
// answering (the run itself then fails: see Halted).
func notRun(c *Case, why string, v Verdict) *Result {
	st := Skip
	if v == VerdictTimeout {
		st = Timeout
	}
	return &Result{Case: c, Verdict: v, NotRun: true, Reason: "not run: " + why,
		Target: &Outcome{Status: st, Reason: why}}
}

// Halted says why a run against a running daemon (-addr) stopped before
// its end ("" if it did not): the daemon stopped answering.
func Halted(rs []*Result) string {
	for _, r := range rs {
		if r.NotRun && r.Verdict == VerdictSkip {
			return r.Target.Reason
		}
	}
	return ""
}

// addrAnswering checks that the daemon at t.Addr answers the probe.
func addrAnswering(t Target) error {
	host, port, err := splitAddr(t.Addr)
	if err != nil {
		return err
	}
	d := &daemonProc{host: host, port: port, dialPort: port, probe: t.Probe}
	return d.answering(t.Limits.start())
}

// RunOne runs one case against the target, and against the reference too
// when there is one (both at once), and judges the result.
func RunOne(ctx context.Context, cfg Config, c *Case) *Result {
	res := &Result{Case: c}
	var wg sync.WaitGroup
	if cfg.Reference.Path != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res.Reference = RunCase(ctx, cfg.Reference, c, cfg.goldens())
		}()
	}
	res.Target = RunCase(ctx, cfg.Target, c, cfg.goldens())
	wg.Wait()
	judge(res, cfg)
	return res
}

func judge(res *Result, cfg Config) {
	t, ref := res.Target, res.Reference
	c := res.Case
	switch {
	case ref != nil && ref.Status != Pass && ref.Status != Skip:
		// The script no longer describes the stock daemon: that is a
		// broken case, whatever the target did.
		res.Verdict = VerdictFail
		res.Reason = fmt.Sprintf("the reference (stock) epmd does not pass this script (%s): %s", ref.Status, ref.Reason)
		if t.Status != Pass && t.Status != Skip {
			res.Reason += "; target: " + t.Reason
		}
	case t.Status == Skip:
		res.Verdict, res.Reason = VerdictSkip, t.Reason
	case t.Status == Fail && expectedFor(cfg.Expected, c.Name) != nil:
		res.Verdict, res.Expected = VerdictDiff, expectedFor(cfg.Expected, c.Name)
		res.Reason = t.Reason
	case t.Status == Fail:
		res.Verdict = VerdictFail
		res.Reason = t.Reason
		if ref != nil && ref.Status == Pass {
			res.Reason += " [stock epmd passes this case: a difference not in docs/differences.md]"
		}
	case t.Status == Crash:
		res.Verdict, res.Reason = VerdictCrash, t.Reason
	case t.Status == Blocked:
		res.Verdict, res.Reason, res.BlockedBy = VerdictBlocked, t.Reason, t.BlockedBy
	case t.Status == Timeout:
		res.Verdict, res.Reason = VerdictTimeout, t.Reason
	case c.Difference > 0 && cfg.Target.Flavour == Gopmd:
		res.Verdict = VerdictDiff
	default:
		res.Verdict = VerdictPass
	}
}

// Update runs every case against stock epmd and returns the script files
// rewritten with what it observed, and the golden files it produced. The
// lines marked [gopmd] are left alone. Cases that fail in a way that
// cannot be re-recorded make Update return an error.
func Update(ctx context.Context, stock Target, files []*File, cfg Config) (scripts map[string]string, goldens map[string][]byte, err error) {
	type job struct {
		f *File
		c *Case
		o *Outcome
	}
	var jobs []*job
	for _, f := range files {
		for _, c := range f.Cases {
			if cfg.Run == nil || cfg.Run.MatchString(c.Name) {
				jobs = append(jobs, &job{f: f, c: c})
			}
		}
	}
	sem := make(chan struct{}, cfg.parallel())
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			j.o = runCase(ctx, stock, j.c, cfg.goldens(), true)
		}()
	}
	wg.Wait()
	scripts = map[string]string{}
	goldens = map[string][]byte{}
	var errs []string
	byFile := map[*File][]update{}
	for _, j := range jobs {
		if j.o.Status == Fail {
			errs = append(errs, j.c.Name+": "+j.o.Reason)
			continue
		}
		for _, u := range j.o.updates {
			byFile[j.f] = append(byFile[j.f], u)
		}
		for k, v := range j.o.goldens {
			goldens[k] = v
		}
	}
	for f, ups := range byFile {
		scripts[f.Name] = applyUpdates(f.Text, ups)
	}
	if len(errs) > 0 {
		sort.Strings(errs)
		return scripts, goldens, fmt.Errorf("%d cases could not be re-recorded:\n%s", len(errs), strings.Join(errs, "\n"))
	}
	return scripts, goldens, nil
}

// applyUpdates replaces the given physical line ranges, keeping each
// line's indentation, condition prefix ([stock], [otp>=27]) and trailing
// comment.
func applyUpdates(text string, ups []update) string {
	lines := strings.Split(text, "\n")
	sort.Slice(ups, func(i, j int) bool { return ups[i].first > ups[j].first })
	for _, u := range ups {
		firstLine := lines[u.first-1]
		ind := firstLine[:len(firstLine)-len(strings.TrimLeft(firstLine, " \t"))]
		prefix := ""
		if c, _, err := cutConditions(strings.TrimLeft(stripComment(firstLine), " \t")); err == nil && c.text != "" {
			prefix = c.text + " "
		}
		comment := ""
		lastLine := lines[u.last-1]
		if s := stripComment(lastLine); len(s) < len(lastLine) {
			comment = "  " + strings.TrimSpace(lastLine[len(s):])
		}
		var repl []string
		cont := false
		for _, l := range strings.Split(u.text, "\n") {
			if cont {
				repl = append(repl, ind+l)
			} else {
				repl = append(repl, ind+prefix+l)
			}
			cont = strings.HasSuffix(l, `\`)
		}
		repl[len(repl)-1] += comment
		lines = append(lines[:u.first-1], append(repl, lines[u.last:]...)...)
	}
	return strings.Join(lines, "\n")
}
