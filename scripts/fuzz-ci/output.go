package main

import (
	"regexp"
	"strconv"
	"time"
)

// fuzzStats is what a go test -fuzz run printed about itself.
type fuzzStats struct {
	Workers     int           // "now fuzzing with N workers"
	Baseline    int           // inputs in the baseline coverage run (seeds, corpus, cache)
	Elapsed     time.Duration // the coordinator's clock at its last status line
	Execs       int64         // executions at the last status line
	NewInputs   int           // "new interesting": inputs this run added to the cache
	CorpusTotal int           // "(total: N)": baseline plus new
	Reproducer  string        // "Failing input written to ...", as printed
	SawFuzzing  bool          // the engine got past the baseline run
	NoTarget    bool          // go test found no such fuzz target
}

// The lines of Go's fuzz coordinator (internal/fuzz, logStats and the
// end of the baseline run) and of testing.F's failure report.
var (
	reStatus = regexp.MustCompile(`^fuzz: elapsed: (\S+), execs: (\d+) \(\d+/sec\)(?:, new interesting: (\d+) \(total: (\d+)\))?$`)
	reStart  = regexp.MustCompile(`^fuzz: elapsed: \S+, (?:gathering baseline coverage|testing seed corpus): (\d+)/\d+ completed, now fuzzing with (\d+) workers$`)
	reRepro  = regexp.MustCompile(`^\s*Failing input written to (\S+)$`)
	reNoFuzz = regexp.MustCompile(`^testing: warning: no fuzz tests to fuzz|^testing: warning: no tests to run`)
)

// line takes one line of go test's output into s. It reports whether the
// line is the start of fuzzing proper (the end of the baseline run, or the
// first status line when there was none).
func (s *fuzzStats) line(l string) (started bool) {
	if m := reStatus.FindStringSubmatch(l); m != nil {
		if d, err := time.ParseDuration(m[1]); err == nil {
			s.Elapsed = d
		}
		s.Execs, _ = strconv.ParseInt(m[2], 10, 64)
		if m[3] != "" {
			s.NewInputs, _ = strconv.Atoi(m[3])
			s.CorpusTotal, _ = strconv.Atoi(m[4])
		}
		// With an empty corpus there is no baseline run: the first
		// status line is the start.
		started = !s.SawFuzzing
		s.SawFuzzing = true
		return started
	}
	if m := reStart.FindStringSubmatch(l); m != nil {
		s.Baseline, _ = strconv.Atoi(m[1])
		s.Workers, _ = strconv.Atoi(m[2])
		s.SawFuzzing = true
		return true
	}
	if m := reRepro.FindStringSubmatch(l); m != nil {
		s.Reproducer = m[1]
		return false
	}
	if reNoFuzz.MatchString(l) {
		s.NoTarget = true
	}
	return false
}
