package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// runConfig is how every target is run.
type runConfig struct {
	goCmd    string
	root     string // the module's directory
	goCache  string // go env GOCACHE
	parallel int    // -parallel for go test
	scale    float64
	perCap   time.Duration // a run still going after this is stopped and fails
	verbose  bool          // copy go test's output as it comes
	out      io.Writer
	// Targets without a line in the budgets file: a first run of
	// calibrateExecs executions measures the rate, a second fills the
	// rest of calibrateTime.
	calibrateExecs int64
	calibrateTime  time.Duration
}

// runResult is one go test -fuzz run of one target.
type runResult struct {
	stats    fuzzStats
	want     int64         // -fuzztime=<want>x
	wall     time.Duration // the whole go test, build and baseline included
	fuzzing  time.Duration // from the end of the baseline run to the exit
	cpu      time.Duration // user + system time of go test and every process it waited for
	output   []byte
	err      error // set when the run failed
	capped   bool
	exitCode int
}

// cacheDir is where go test keeps the target's interesting inputs.
func (c *runConfig) cacheDir(t target) string {
	return filepath.Join(c.goCache, "fuzz", filepath.FromSlash(t.Pkg.ImportPath), t.Name)
}

func countFiles(dir string) int {
	es, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range es {
		if e.Type().IsRegular() {
			n++
		}
	}
	return n
}

// fuzzOnce runs go test -fuzz on t for execs executions.
func (c *runConfig) fuzzOnce(t target, env []string, execs int64) runResult {
	res := runResult{want: execs}
	args := []string{"test", "-run=^$", "-fuzz=^" + t.Name + "$",
		fmt.Sprintf("-fuzztime=%dx", execs), fmt.Sprintf("-parallel=%d", c.parallel), t.Pkg.Rel}
	ctx, cancel := context.WithTimeout(context.Background(), c.perCap)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.goCmd, args...)
	cmd.Dir = c.root
	cmd.Env = append(os.Environ(), env...)
	// go test, the test binary, its fuzz workers and whatever they start
	// share a process group, so that a run over its cap is stopped whole.
	ownGroup(cmd)
	cmd.WaitDelay = 10 * time.Second
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw

	var buf bytes.Buffer
	var started time.Time
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			l := sc.Text()
			buf.WriteString(l)
			buf.WriteByte('\n')
			if c.verbose {
				fmt.Fprintln(c.out, "    "+l)
			}
			if res.stats.line(l) && started.IsZero() {
				started = time.Now()
			}
		}
		io.Copy(io.Discard, pr)
	}()

	begin := time.Now()
	err := cmd.Start()
	if err == nil {
		err = cmd.Wait()
	}
	end := time.Now()
	pw.Close()
	wg.Wait()
	res.wall = end.Sub(begin)
	if !started.IsZero() {
		res.fuzzing = end.Sub(started)
	}
	res.output = buf.Bytes()
	if cmd.ProcessState != nil {
		// wait4's usage covers the waited-for descendants too (the
		// test binary, the fuzz workers, the daemons they ran), as
		// /usr/bin/time reports it.
		res.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		res.capped = true
		res.err = fmt.Errorf("stopped after %v, the cap per run (-cap)", c.perCap)
	case errors.As(err, &ee):
		res.exitCode = ee.ExitCode()
		res.err = fmt.Errorf("go test exited with status %d", res.exitCode)
	case err != nil:
		res.err = err
	case res.stats.NoTarget:
		res.err = errors.New("go test found no such fuzz target")
	case !res.stats.SawFuzzing:
		res.err = errors.New("go test passed without fuzzing (skipped?)")
	case res.stats.Execs < execs:
		res.err = fmt.Errorf("ended after %d of %d executions", res.stats.Execs, execs)
	}
	return res
}

// job is one target with its budget (Execs 0: calibrate).
type job struct {
	t      target
	env    []string
	execs  int64
	line   int // in the budgets file; 0 when calibrated
	budget string
}

func (j job) label() string {
	s := j.t.String()
	if len(j.env) > 0 {
		s += " [" + strings.Join(j.env, " ") + "]"
	}
	return s
}

// jobSummary is what one job did, over its one or two runs.
type jobSummary struct {
	j       job
	runs    []runResult
	execs   int64
	wall    time.Duration
	fuzzing time.Duration
	cpu     time.Duration
	newIn   int
	cache   [2]int // files in the cache before and after
	err     error
}

func (c *runConfig) runJob(j job) jobSummary {
	s := jobSummary{j: j}
	s.cache[0] = countFiles(c.cacheDir(j.t))
	add := func(r runResult) {
		s.runs = append(s.runs, r)
		s.execs += r.stats.Execs
		s.wall += r.wall
		s.fuzzing += r.fuzzing
		s.cpu += r.cpu
		s.newIn += r.stats.NewInputs
		if r.err != nil && s.err == nil {
			s.err = r.err
		}
	}
	if j.execs > 0 {
		add(c.fuzzOnce(j.t, j.env, scaled(j.execs, c.scale)))
	} else {
		// A short first run gives the rate; later runs fill the rest of
		// calibrateTime at the rate so far (the first executions are
		// often the slowest, so one more run may be needed).
		add(c.fuzzOnce(j.t, j.env, c.calibrateExecs))
		for range 3 {
			rest := c.calibrateTime - s.fuzzing
			if s.err != nil || rest <= 10*time.Second {
				break
			}
			rate := float64(s.execs) / math.Max(s.fuzzing.Seconds(), 0.001)
			n := int64(rate * rest.Seconds() * c.scale)
			if n <= 0 {
				break
			}
			add(c.fuzzOnce(j.t, j.env, n))
		}
	}
	s.cache[1] = countFiles(c.cacheDir(j.t))
	return s
}

func scaled(n int64, f float64) int64 {
	return max(1, int64(math.Round(float64(n)*f)))
}

// maxReproducerLog bounds the part of a failing input printed in the log.
const maxReproducerLog = 64 << 10

// report writes the one line of a job, and, when it failed, where the
// reproducer is and the output of the failed run.
func (c *runConfig) report(s jobSummary) {
	status := "ok  "
	if s.err != nil {
		status = "FAIL"
	}
	rate := float64(s.execs) / math.Max(s.fuzzing.Seconds(), 0.001)
	line := fmt.Sprintf("fuzz-ci: %s %s: %d execs, %s fuzzing (%s in all, %.0f/s, CPU %s), %d new interesting, cache %d -> %d",
		status, s.j.label(), s.execs, s.fuzzing.Round(time.Second), s.wall.Round(time.Second), rate,
		s.cpu.Round(time.Second), s.newIn, s.cache[0], s.cache[1])
	if s.j.line == 0 {
		line += fmt.Sprintf("; no budget line, sized by calibration (%.0f/s: %v is %d executions)",
			rate, c.calibrateTime, int64(rate*c.calibrateTime.Seconds()))
	}
	fmt.Fprintln(c.out, line)
	if s.err == nil {
		return
	}
	last := s.runs[len(s.runs)-1]
	fmt.Fprintf(c.out, "fuzz-ci:      %s\n", s.err)
	if r := last.stats.Reproducer; r != "" {
		fmt.Fprintf(c.out, "fuzz-ci:      reproducer: %s (commit it with a regression test; rerun: go test -run='^%s$/%s$' %s)\n",
			filepath.ToSlash(filepath.Join(s.j.t.Pkg.Rel, r)), s.j.t.Name, filepath.Base(r), s.j.t.Pkg.Rel)
		// The file is gone with CI's checkout: its text (go test's
		// corpus format) goes into the log, to be saved under that name.
		if b, err := os.ReadFile(filepath.Join(s.j.t.Pkg.Dir, r)); err == nil {
			if len(b) > maxReproducerLog {
				fmt.Fprintf(c.out, "fuzz-ci:      its first %d of %d bytes:\n", maxReproducerLog, len(b))
				b = b[:maxReproducerLog]
			} else {
				fmt.Fprintln(c.out, "fuzz-ci:      its content:")
			}
			for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
				fmt.Fprintln(c.out, "    "+l)
			}
		}
	}
	if !c.verbose {
		fmt.Fprintln(c.out, "fuzz-ci:      output of the failed run:")
		for _, l := range strings.Split(strings.TrimRight(string(last.output), "\n"), "\n") {
			fmt.Fprintln(c.out, "    "+l)
		}
	}
}
