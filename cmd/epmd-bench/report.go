package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// report is everything one invocation of the tool measured; -json writes it.
type report struct {
	Tool     string          `json:"tool"`
	Command  []string        `json:"command"`
	Started  time.Time       `json:"started"`
	Finished time.Time       `json:"finished"`
	Machine  machine         `json:"machine"`
	LoadAvg  [2]string       `json:"load_average"` // at the start and at the end: 1, 5 and 15 min
	Targets  []targetInfo    `json:"targets"`
	Runs     []runResult     `json:"runs"`
	Compare  []compareFigure `json:"compare,omitempty"`
	Sweep    []sweepSeries   `json:"sweep,omitempty"`
	Plot     string          `json:"plot,omitempty"`
	Notes    []string        `json:"notes,omitempty"`
	Figures  []figure        `json:"figures"`
	Rounds   int             `json:"rounds,omitempty"`
}

type targetInfo struct {
	Letter   string `json:"letter,omitempty"`
	Label    string `json:"label"`
	Kind     string `json:"kind"`
	Addr     string `json:"addr"`
	Pid      int    `json:"pid,omitempty"`
	Restarts int    `json:"restarts,omitempty"`
}

func writeJSON(path string, rep *report) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// fmtNum formats a figure for a table: integers for large values, a
// decimal for small ones.
func fmtNum(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return "-"
	case v == 0:
		return "0"
	case math.Abs(v) >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case math.Abs(v) >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

// printRuns prints one line per run.
func printRuns(w io.Writer, runs []runResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\tfigure\tops\terrors\tops/s\tp50 µs\tp99 µs\tmax µs\tcpu µs/op\trss KiB\tfds\ttool cpu µs/op\t  notes")
	for _, r := range runs {
		if r.Skipped != "" {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t  %s\n", r.Target, r.Figure, "skipped: "+r.Skipped)
			continue
		}
		cpu, rss, fds := "-", "-", "-"
		if d := r.Daemon; d != nil {
			cpu, rss, fds = fmtNum(d.CPUPerOpUs), strconv.FormatInt(d.RSSKiB, 10), strconv.Itoa(d.FDs)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t  %s\n",
			r.Target, r.Figure, r.Ops, r.Errors, fmtNum(r.OpsPerSec), fmtNum(r.P50us), fmtNum(r.P99us), fmtNum(r.MaxUs),
			cpu, rss, fds, fmtNum(r.ToolCPUPerOpUs), runNotes(r))
	}
	tw.Flush()
}

// runNotes summarises what a run's numbers columns do not show.
func runNotes(r runResult) string {
	var parts []string
	if r.Workload() == wHold {
		s := fmt.Sprintf("held %d", r.Held)
		if r.StoppedBy != "" {
			s += " (stopped by: " + r.StoppedBy + ")"
		}
		parts = append(parts, s)
	}
	if r.Retries > 0 {
		parts = append(parts, fmt.Sprintf("%d retries", r.Retries))
	}
	if r.Workload() == wSlow {
		parts = append(parts, fmt.Sprintf("%d slow requests done", r.SlowRequests))
	}
	kinds := make([]string, 0, len(r.ErrorKinds))
	for k := range r.ErrorKinds {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		parts = append(parts, fmt.Sprintf("%d× %s", r.ErrorKinds[k], k))
	}
	parts = append(parts, r.Notes...)
	return strings.Join(parts, "; ")
}

// Workload returns the run's workload.
func (r runResult) Workload() string { return r.Params.Workload }

// metric is one row of a comparison table.
type metric struct {
	Name   string
	Better string // "higher", "lower" or "" (informational)
	get    func(r runResult) (float64, bool)
}

func daemonMetric(f func(*daemonFigures) float64) func(runResult) (float64, bool) {
	return func(r runResult) (float64, bool) {
		if r.Daemon == nil {
			return 0, false
		}
		return f(r.Daemon), true
	}
}

var metrics = []metric{
	{"held", "higher", func(r runResult) (float64, bool) { return float64(r.Held), r.Workload() == wHold }},
	{"ops/s", "higher", func(r runResult) (float64, bool) { return r.OpsPerSec, true }},
	{"p50 µs", "lower", func(r runResult) (float64, bool) { return r.P50us, r.Ops > 0 }},
	{"p99 µs", "lower", func(r runResult) (float64, bool) { return r.P99us, r.Ops > 0 }},
	{"max µs", "lower", func(r runResult) (float64, bool) { return r.MaxUs, r.Ops > 0 }},
	{"errors", "lower", func(r runResult) (float64, bool) { return float64(r.Errors), true }},
	{"retries", "lower", func(r runResult) (float64, bool) { return float64(r.Retries), r.Workload() == wChurn }},
	{"slow reqs done", "", func(r runResult) (float64, bool) { return float64(r.SlowRequests), r.Workload() == wSlow }},
	{"cpu µs/op", "lower", daemonMetric(func(d *daemonFigures) float64 { return d.CPUPerOpUs })},
	{"rss KiB", "lower", daemonMetric(func(d *daemonFigures) float64 { return float64(d.RSSKiB) })},
	{"fds", "", daemonMetric(func(d *daemonFigures) float64 { return float64(d.FDs) })},
	{"tool cpu µs/op", "", func(r runResult) (float64, bool) { return r.ToolCPUPerOpUs, r.Ops > 0 }},
}

// compareFigure is the comparison of one figure across targets.
type compareFigure struct {
	Figure  string          `json:"figure"`
	Params  figure          `json:"params"`
	Rounds  int             `json:"rounds"`
	Order   string          `json:"order"`
	Metrics []compareMetric `json:"metrics"`
	Notes   []string        `json:"notes,omitempty"`
}

type compareMetric struct {
	Name    string      `json:"name"`
	Better  string      `json:"better,omitempty"`
	Targets []statRange `json:"targets"`
	// RatioAB is median(A)/median(B) for the first two targets: the factor
	// from B to A. Whether above 1 is good depends on Better.
	RatioAB *float64 `json:"ratio_a_over_b,omitempty"`
	Verdict string   `json:"verdict,omitempty"`
}

type statRange struct {
	Target string  `json:"target"`
	N      int     `json:"n"` // rounds with a value
	Min    float64 `json:"min"`
	Median float64 `json:"median"`
	Max    float64 `json:"max"`
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return math.NaN()
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// buildCompare condenses runs[target][round] of one figure.
func buildCompare(f figure, targets []*target, runs [][]runResult, rounds int, letters []string) compareFigure {
	cf := compareFigure{Figure: f.String(), Params: f, Rounds: rounds}
	var order []string
	for range rounds {
		order = append(order, letters[:len(targets)]...)
	}
	cf.Order = strings.Join(order, " ")
	seen := map[string]bool{}
	note := func(key, text string) {
		if !seen[key] {
			seen[key] = true
			cf.Notes = append(cf.Notes, text)
		}
	}
	for ti := range targets {
		l := letters[ti]
		for _, r := range runs[ti] {
			if r.Skipped != "" {
				note(l+"skipped"+r.Skipped, l+": skipped: "+r.Skipped)
			}
			for _, n := range r.Notes {
				note(l+"note"+n, l+": "+n)
			}
			if r.StoppedBy != "" {
				note(l+"stopped", l+": stopped by: "+r.StoppedBy)
			}
			kinds := make([]string, 0, len(r.ErrorExamples))
			for k := range r.ErrorExamples {
				kinds = append(kinds, k)
			}
			slices.Sort(kinds)
			for _, k := range kinds {
				note(l+"error"+k, l+": error "+k+", e.g. "+r.ErrorExamples[k])
			}
		}
	}
	for _, m := range metrics {
		cm := compareMetric{Name: m.Name, Better: m.Better}
		any := false
		for ti, t := range targets {
			var vals []float64
			for _, r := range runs[ti] {
				if r.Skipped != "" {
					continue
				}
				if v, ok := m.get(r); ok {
					vals = append(vals, v)
				}
			}
			sr := statRange{Target: t.Label, N: len(vals), Min: math.NaN(), Median: math.NaN(), Max: math.NaN()}
			if len(vals) > 0 {
				any = true
				sr.Min, sr.Max = slices.Min(vals), slices.Max(vals)
				sr.Median = median(vals)
			}
			cm.Targets = append(cm.Targets, sr)
		}
		if !any {
			continue
		}
		if len(cm.Targets) >= 2 {
			a, b := cm.Targets[0].Median, cm.Targets[1].Median
			if !math.IsNaN(a) && !math.IsNaN(b) && b != 0 {
				ratio := a / b
				cm.RatioAB = &ratio
				cm.Verdict = verdict(m.Better, a, b)
			} else if a == 0 && b == 0 {
				cm.Verdict = "same"
			}
		}
		cf.Metrics = append(cf.Metrics, cm)
	}
	return cf
}

func verdict(better string, a, b float64) string {
	switch {
	case better == "":
		return ""
	case a == b:
		return "same"
	case (better == "higher") == (a > b):
		return "A better"
	}
	return "B better"
}

// MarshalJSON writes NaN (no value) as null.
func (s statRange) MarshalJSON() ([]byte, error) {
	num := func(v float64) any {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil
		}
		return v
	}
	return json.Marshal(map[string]any{"target": s.Target, "n": s.N, "min": num(s.Min), "median": num(s.Median), "max": num(s.Max)})
}

// printCompare prints the comparison tables.
func printCompare(w io.Writer, targets []*target, letters []string, cfs []compareFigure) {
	for ti, t := range targets {
		fmt.Fprintf(w, "%s = %s (%s, %s)\n", letters[ti], t.Label, t.Kind, t.Addr)
	}
	fmt.Fprintf(w, "Each cell: min / median / max over the rounds. A/B is median(A) / median(B),\n")
	fmt.Fprintf(w, "the factor from B to A; \"better\" says which direction is good for that row.\n")
	for _, cf := range cfs {
		fmt.Fprintf(w, "\n== %s   (%s; %d rounds, order %s)\n", cf.Figure, cf.Params.limits(), cf.Rounds, cf.Order)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprint(tw, "metric\tbetter")
		for ti := range targets {
			fmt.Fprintf(tw, "\t%s min / median / max", letters[ti])
		}
		if len(targets) >= 2 {
			fmt.Fprint(tw, "\tA/B\t")
		}
		fmt.Fprintln(tw)
		for _, m := range cf.Metrics {
			better := m.Better
			if better == "" {
				better = "-"
			}
			fmt.Fprintf(tw, "%s\t%s", m.Name, better)
			for _, s := range m.Targets {
				if s.N == 0 {
					fmt.Fprint(tw, "\tn/a")
					continue
				}
				fmt.Fprintf(tw, "\t%s / %s / %s", fmtNum(s.Min), fmtNum(s.Median), fmtNum(s.Max))
			}
			if len(targets) >= 2 {
				ratio := "-"
				if m.RatioAB != nil {
					ratio = fmt.Sprintf("%.2f", *m.RatioAB)
				}
				fmt.Fprintf(tw, "\t%s\t%s", ratio, m.Verdict)
			}
			fmt.Fprintln(tw)
		}
		tw.Flush()
		for _, n := range cf.Notes {
			fmt.Fprintf(w, "  note: %s\n", n)
		}
	}
}
