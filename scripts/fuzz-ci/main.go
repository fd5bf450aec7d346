// Command fuzz-ci runs the module's fuzz targets and property tests the way
// CI does, and keeps what they find. It is run from the module's root
// (make fuzz-ci, make fuzz-promote, make props-ci):
//
//	go run ./scripts/fuzz-ci run [-budgets FILE] [-parallel N] [-scale F] [-targets RE] [-v]
//	go run ./scripts/fuzz-ci list [-budgets FILE]
//	go run ./scripts/fuzz-ci promote [-dry-run] [-targets RE]
//	go run ./scripts/fuzz-ci props [-checks N] [-v]
//
// run finds every fuzz target (each func FuzzXxx(*testing.F) in the test
// files of every package of the module) and fuzzes each with go test
// -fuzz for a count of executions (-fuzztime=Nx), not a duration: with a
// duration, Go 1.26's fuzz coordinator can fail a target with a spurious
// "context deadline exceeded" when the time runs out (golang/go#75804).
// The counts come from the budgets file (scripts/fuzz-ci/budgets.txt),
// sized so that each target fuzzes for about a minute; a target with no
// line there is sized by a short calibration run. It prints one line per
// run, with the executions, the time taken and the new interesting inputs,
// and fails when any target fails: a failing input is written to the
// package's testdata/fuzz/FuzzXxx/ by go test.
//
// promote copies the interesting inputs go test keeps in its cache
// ($GOCACHE/fuzz/<import path>/FuzzXxx) into the committed corpus
// (testdata/fuzz/FuzzXxx next to the target), leaving out inputs already
// there under any name.
//
// props runs every rapid property test (a TestXxx calling rapid.Check) of
// every package that uses pgregory.net/rapid, with -rapid.checks=N.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"time"
)

func usage() {
	fmt.Fprintln(os.Stderr, `usage: fuzz-ci run|list|promote|props [flags]   (-h after a command for its flags)`)
	os.Exit(2)
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "run", "list":
		err = cmdRun(os.Args[1], os.Args[2:])
	case "promote":
		err = cmdPromote(os.Args[2:])
	case "props":
		err = cmdProps(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fuzz-ci:", err)
		os.Exit(1)
	}
}

// moduleRoot is the directory of go.mod for the current directory.
func moduleRoot(goCmd string) (string, error) {
	out, err := exec.Command(goCmd, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %v", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside a Go module")
	}
	return filepath.Dir(mod), nil
}

func goEnv(goCmd, name string) (string, error) {
	out, err := exec.Command(goCmd, "env", name).Output()
	if err != nil {
		return "", fmt.Errorf("go env %s: %v", name, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// discover returns the module root and every fuzz target in it, limited to
// those whose "<package dir>.<FuzzTarget>" matches filter.
func discover(goCmd string, filter *regexp.Regexp) (string, []target, error) {
	root, err := moduleRoot(goCmd)
	if err != nil {
		return "", nil, err
	}
	pkgs, err := listPackages(goCmd, root, nil)
	if err != nil {
		return "", nil, err
	}
	all, err := findTargets(pkgs)
	if err != nil {
		return "", nil, err
	}
	var ts []target
	for _, t := range all {
		if filter == nil || filter.MatchString(t.Pkg.Rel+"."+t.Name) {
			ts = append(ts, t)
		}
	}
	return root, ts, nil
}

func cmdRun(name string, args []string) error {
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	budgets := fs.String("budgets", "scripts/fuzz-ci/budgets.txt", "the budgets file, relative to the module root")
	parallel := fs.Int("parallel", runtime.NumCPU(), "fuzz workers per target (go test -parallel)")
	scale := fs.Float64("scale", 1, "multiply every budget by this (0.01 for a quick look)")
	filter := fs.String("targets", "", "only targets whose \"<package dir>.<FuzzTarget>\" matches this regexp")
	perCap := fs.Duration("cap", 20*time.Minute, "stop and fail a run still going after this")
	verbose := fs.Bool("v", false, "copy go test's output as it comes")
	calExecs := fs.Int64("calibrate-execs", 2000, "executions of the calibration run of a target with no budget line")
	calTime := fs.Duration("calibrate-time", time.Minute, "fuzzing time to size a target with no budget line for")
	fs.Parse(args)
	if fs.NArg() > 0 || *parallel < 1 || *scale <= 0 {
		fs.Usage()
		os.Exit(2)
	}
	goCmd := goCommand()
	root, ts, re, err := discoverMatching(goCmd, *filter)
	if err != nil {
		return err
	}
	bfile := *budgets
	if !filepath.IsAbs(bfile) {
		bfile = filepath.Join(root, bfile)
	}
	bs, err := readBudgets(bfile)
	if err != nil {
		return err
	}
	jobs, err := plan(ts, bs, re, *budgets)
	if err != nil {
		return err
	}
	if name == "list" {
		for _, j := range jobs {
			if j.execs > 0 {
				fmt.Printf("%s: %d executions (%s)\n", j.label(), j.execs, j.budget)
			} else {
				fmt.Printf("%s: no budget line, sized by calibration\n", j.label())
			}
		}
		return nil
	}
	cache, err := goEnv(goCmd, "GOCACHE")
	if err != nil {
		return err
	}
	cfg := &runConfig{
		goCmd: goCmd, root: root, goCache: cache, parallel: *parallel, scale: *scale,
		perCap: *perCap, verbose: *verbose, out: os.Stdout,
		calibrateExecs: *calExecs, calibrateTime: *calTime,
	}
	gover, _ := goEnv(goCmd, "GOVERSION")
	fmt.Printf("fuzz-ci: %d runs of %d targets, -parallel=%d, scale %g, %s, %d CPUs, load average %s\n",
		len(jobs), len(ts), *parallel, *scale, gover, runtime.NumCPU(), loadAvg())
	begin := time.Now()
	failed := 0
	var execs int64
	var cpu time.Duration
	for _, j := range jobs {
		s := cfg.runJob(j)
		cfg.report(s)
		execs += s.execs
		cpu += s.cpu
		if s.err != nil {
			failed++
		}
	}
	fmt.Printf("fuzz-ci: %d runs, %d failed, %d executions in %s (CPU %s), load average %s\n",
		len(jobs), failed, execs, time.Since(begin).Round(time.Second), cpu.Round(time.Second), loadAvg())
	if failed > 0 {
		return fmt.Errorf("%d of %d runs failed", failed, len(jobs))
	}
	return nil
}

// plan pairs every target with its budget lines (a target with none gets
// one calibrated run). A budget line naming no target is an error, unless
// a -targets filter left that target out.
func plan(ts []target, bs []budget, filter *regexp.Regexp, file string) ([]job, error) {
	byKey := map[string][]budget{}
	for _, b := range bs {
		k := b.Pkg + "." + b.Name
		byKey[k] = append(byKey[k], b)
	}
	known := map[string]bool{}
	var jobs []job
	for _, t := range ts {
		k := t.Pkg.Rel + "." + t.Name
		known[k] = true
		if len(byKey[k]) == 0 {
			jobs = append(jobs, job{t: t})
			continue
		}
		for _, b := range byKey[k] {
			jobs = append(jobs, job{t: t, env: b.Env, execs: b.Execs, line: b.Line,
				budget: fmt.Sprintf("%s:%d", file, b.Line)})
		}
	}
	for _, b := range bs {
		k := b.Pkg + "." + b.Name
		if !known[k] && (filter == nil || filter.MatchString(k)) {
			return nil, fmt.Errorf("%s:%d: no fuzz target %s in %s", file, b.Line, b.Name, b.Pkg)
		}
	}
	return jobs, nil
}

func goCommand() string {
	if g := os.Getenv("GO"); g != "" {
		return g
	}
	return "go"
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
