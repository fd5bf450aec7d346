package conformance

import (
	"context"
	"fmt"
	"io/fs"
	"regexp"
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
	// Run selects cases by name (nil: all).
	Run *regexp.Regexp
	// Parallel is how many cases run at once (default 8; 1 against Addr).
	Parallel int
	// Goldens holds the golden files scripts refer to (the testdata
	// directory); nil if none.
	Goldens fs.FS
}

// Verdict is a case's line in the report.
type Verdict string

const (
	VerdictPass Verdict = "PASS"
	VerdictFail Verdict = "FAIL"
	VerdictDiff Verdict = "DIFF" // passes, showing a documented difference
	VerdictSkip Verdict = "SKIP"
)

// Result is the outcome of a case against the target (and the reference).
type Result struct {
	Case    *Case
	Verdict Verdict
	Reason  string
	// Target and Reference are the single-daemon outcomes (Reference is
	// nil without a reference).
	Target, Reference *Outcome
}

// Line is the one-line report of a result.
func (r *Result) Line() string {
	switch r.Verdict {
	case VerdictDiff:
		return fmt.Sprintf("DIFF %s (expected: differences.md #%d)", r.Case.Name, r.Case.Difference)
	case VerdictPass:
		return "PASS " + r.Case.Name
	}
	return fmt.Sprintf("%s %s: %s", r.Verdict, r.Case.Name, r.Reason)
}

// Summary counts results: DIFF counts as passed.
func Summary(rs []*Result) (passed, failed, skipped int) {
	for _, r := range rs {
		switch r.Verdict {
		case VerdictPass, VerdictDiff:
			passed++
		case VerdictFail:
			failed++
		default:
			skipped++
		}
	}
	return
}

// Select returns the cases whose names match re (all if re is nil).
func Select(cases []*Case, re *regexp.Regexp) []*Case {
	if re == nil {
		return cases
	}
	var out []*Case
	for _, c := range cases {
		if re.MatchString(c.Name) {
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

// RunSuite runs the cases and calls report for each result, in case order,
// as soon as it and every case before it are done.
func RunSuite(ctx context.Context, cfg Config, cases []*Case, report func(*Result)) []*Result {
	cases = Select(cases, cfg.Run)
	par := cfg.Parallel
	if par <= 0 {
		par = 8
	}
	if cfg.Target.Addr != "" {
		par = 1 // cases share the daemon's registry
	}
	results := make([]*Result, len(cases))
	ready := make([]chan struct{}, len(cases))
	for i := range ready {
		ready[i] = make(chan struct{})
	}
	sem := make(chan struct{}, par)
	for i, c := range cases {
		go func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			results[i] = RunOne(ctx, cfg, c)
			close(ready[i])
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
	case ref != nil && ref.Status == Fail:
		// The script no longer describes the stock daemon: that is a
		// broken case, whatever the target did.
		res.Verdict = VerdictFail
		res.Reason = "the reference (stock) epmd does not pass this script: " + ref.Reason
		if t.Status == Fail {
			res.Reason += "; target: " + t.Reason
		}
	case t.Status == Skip:
		res.Verdict, res.Reason = VerdictSkip, t.Reason
	case t.Status == Fail:
		res.Verdict = VerdictFail
		res.Reason = t.Reason
		if ref != nil && ref.Status == Pass {
			res.Reason += fmt.Sprintf(" [stock epmd passes this case: a difference not in docs/differences.md]")
		}
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
	par := cfg.Parallel
	if par <= 0 {
		par = 8
	}
	sem := make(chan struct{}, par)
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
// line's indentation, [stock] prefix and trailing comment.
func applyUpdates(text string, ups []update) string {
	lines := strings.Split(text, "\n")
	sort.Slice(ups, func(i, j int) bool { return ups[i].first > ups[j].first })
	for _, u := range ups {
		firstLine := lines[u.first-1]
		ind := firstLine[:len(firstLine)-len(strings.TrimLeft(firstLine, " \t"))]
		prefix := ""
		trimmed := strings.TrimLeft(firstLine, " \t")
		for _, p := range []string{"[stock] ", "[stock]"} {
			if strings.HasPrefix(trimmed, p) {
				prefix = "[stock] "
				break
			}
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
