package main

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/gopmd/gopmd/epmd/client"
)

// defaultSweep is the registered-node counts of the -plot sweep.
var defaultSweep = []int{10, 100, 1000, 5000, 10000, 19000}

// sweepPoint is the measurement at one registered-node count.
type sweepPoint struct {
	Nodes        int     `json:"nodes"`
	LookupOps    int64   `json:"lookup_ops"`
	LookupErrors int64   `json:"lookup_errors"`
	LookupP50us  float64 `json:"lookup_p50_us"`
	LookupP99us  float64 `json:"lookup_p99_us"`
	NamesOps     int64   `json:"names_ops"`
	NamesErrors  int64   `json:"names_errors"`
	NamesP50us   float64 `json:"names_p50_us"`
	NamesMaxUs   float64 `json:"names_max_us"`
	RSSKiB       int64   `json:"rss_kib,omitempty"`
	FDs          int     `json:"fds,omitempty"`
}

// sweepSeries is one target's sweep. It ends at the first count the
// daemon could not hold; FailedAt then says how many registrations it held.
type sweepSeries struct {
	Target   string       `json:"target"`
	Points   []sweepPoint `json:"points"`
	FailedAt int          `json:"failed_at,omitempty"`
	Failure  string       `json:"failure,omitempty"`
	Skipped  string       `json:"skipped,omitempty"`
}

// sweepConfig sets the measurements at each point.
type sweepConfig struct {
	counts  []int
	conc    int           // concurrent look-up clients
	lookups int64         // look-ups per point
	names   int64         // NAMES requests per point (one at a time)
	dur     time.Duration // bound on each of the two measurements
	timeout time.Duration
}

// sweep registers nodes on t in steps up to each count of cfg.counts,
// keeping the earlier ones, and at each step measures look-ups and NAMES.
func (r *runner) sweep(ctx context.Context, t *target, cfg sweepConfig) sweepSeries {
	s := sweepSeries{Target: t.Label}
	if !t.canRegister() {
		s.Skipped = "the null server cannot hold registrations"
		return s
	}
	if _, err := t.ensureRunning(ctx); err != nil {
		s.Skipped = err.Error()
		return s
	}
	if err := r.settle(ctx, t); err != nil {
		s.Skipped = "settle: " + err.Error()
		return s
	}
	prefix := namePrefix + strconv.FormatInt(r.seq.Add(1), 10) + "_"
	cl := t.client(cfg.timeout)
	var regs []*client.Registration
	defer func() { closeAll(regs) }()
	for _, count := range cfg.counts {
		if ctx.Err() != nil {
			break
		}
		if need := count + cfg.conc + fdReserve; need > fileLimit() {
			s.Failure = fmt.Sprintf("the tool's file limit %d is too low for %d registrations", fileLimit(), count)
			break
		}
		have := len(regs)
		if count > have {
			more, lr := registerNodes(ctx, r.holder(cl), prefix, have, count, loadSpec{conc: r.regConc, n: int64(count - have), dur: r.setupTimeout, stopOnError: true})
			regs = append(regs, more...)
			if lr.stopped != nil || len(regs) < count {
				s.FailedAt = len(regs)
				s.Failure = fmt.Sprintf("registration %d failed: %v", len(regs)+1, lr.stopped)
				r.logf("  %s: held %d, then %s", t.Label, len(regs), s.Failure)
				break
			}
		}
		p := sweepPoint{Nodes: count}
		f := figure{Workload: wLookup, Conc: cfg.conc, N: cfg.lookups, Duration: cfg.dur, Timeout: cfg.timeout}
		lr := lookupLoad(ctx, cl, f, prefix, count)
		ls := summarize(lr.lat)
		p.LookupOps, p.LookupErrors = lr.ops, lr.errs.total()
		p.LookupP50us, p.LookupP99us = us(ls.P50), us(ls.P99)
		f.Conc, f.N = 1, cfg.names
		nr := namesLoad(ctx, cl, f, prefix, count, t.daemonPort())
		ns := summarize(nr.lat)
		p.NamesOps, p.NamesErrors = nr.ops, nr.errs.total()
		p.NamesP50us, p.NamesMaxUs = us(ns.P50), us(ns.Max)
		if t.Pid > 0 {
			if ps, err := readProcStats(t.Pid); err == nil {
				p.RSSKiB, p.FDs = ps.RSSKiB, ps.FDs
			}
		}
		r.logf("  %s: %d nodes: lookup p50 %.0f µs p99 %.0f µs (%d errors), NAMES %.0f µs (%d errors)",
			t.Label, count, p.LookupP50us, p.LookupP99us, p.LookupErrors, p.NamesP50us, p.NamesErrors)
		s.Points = append(s.Points, p)
	}
	return s
}

// plotStyle is how one measured quantity is drawn.
type plotStyle struct {
	name   string
	dash   string
	marker string // "dot", "ring", "square"
	get    func(p sweepPoint) float64
}

var plotStyles = []plotStyle{
	{"look-up p50", "", "dot", func(p sweepPoint) float64 { return p.LookupP50us }},
	{"look-up p99", "7,4", "ring", func(p sweepPoint) float64 { return p.LookupP99us }},
	{"NAMES (median)", "2,3", "square", func(p sweepPoint) float64 { return p.NamesP50us }},
}

var plotColors = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"}

// svgWriter accumulates SVG text.
type svgWriter struct {
	b strings.Builder
}

func (w *svgWriter) f(format string, args ...any) { fmt.Fprintf(&w.b, format, args...) }

func esc(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

// renderPlot writes the sweep as an SVG line chart: registered nodes on a
// log x axis, latency on a log y axis, one colour per daemon and one line
// style per quantity, and a marker where a daemon could hold no more.
func renderPlot(out io.Writer, title string, subtitle []string, counts []int, series []sweepSeries) error {
	const (
		width, height = 980, 600
		left, right   = 80, 720
		top           = 60
	)
	bottom := height - 70 - 14*len(subtitle)
	// Domains.
	xmin, xmax := math.Inf(1), math.Inf(-1)
	for _, c := range counts {
		xmin, xmax = math.Min(xmin, float64(c)), math.Max(xmax, float64(c))
	}
	ymin, ymax := math.Inf(1), math.Inf(-1)
	for _, s := range series {
		for _, p := range s.Points {
			for _, st := range plotStyles {
				if v := st.get(p); v > 0 {
					ymin, ymax = math.Min(ymin, v), math.Max(ymax, v)
				}
			}
		}
		if s.FailedAt > 0 {
			xmin, xmax = math.Min(xmin, float64(s.FailedAt)), math.Max(xmax, float64(s.FailedAt))
		}
	}
	if math.IsInf(xmin, 0) {
		xmin, xmax = 10, 10000
	}
	if math.IsInf(ymin, 0) {
		ymin, ymax = 10, 1000
	}
	lx0, lx1 := math.Log10(xmin)-0.08, math.Log10(xmax)+0.08
	ly0, ly1 := math.Floor(math.Log10(ymin)), math.Ceil(math.Log10(ymax))
	if ly1 <= ly0 {
		ly1 = ly0 + 1
	}
	px := func(v float64) float64 { return left + (math.Log10(v)-lx0)/(lx1-lx0)*(right-left) }
	py := func(v float64) float64 {
		return float64(bottom) - (math.Log10(v)-ly0)/(ly1-ly0)*float64(bottom-top)
	}

	var w svgWriter
	w.f(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	w.f(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	w.f(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	w.f(`<text x="%d" y="28" font-size="16" font-weight="bold">%s</text>`+"\n", left, esc(title))

	// Grid and ticks.
	w.f(`<g stroke="#e4e4e4" stroke-width="1">` + "\n")
	for d := math.Floor(lx0); d <= math.Ceil(lx1); d++ {
		for m := 1; m <= 9; m++ {
			v := float64(m) * math.Pow(10, d)
			if math.Log10(v) < lx0 || math.Log10(v) > lx1 {
				continue
			}
			w.f(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d"/>`+"\n", px(v), top, px(v), bottom)
		}
	}
	for d := ly0; d <= ly1; d++ {
		for m := 1; m <= 9; m++ {
			v := float64(m) * math.Pow(10, d)
			if math.Log10(v) > ly1+1e-9 {
				continue
			}
			w.f(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f"/>`+"\n", left, py(v), right, py(v))
		}
	}
	w.f("</g>\n")
	w.f(`<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#333"/>`+"\n", left, top, right-left, bottom-top)
	for d := math.Ceil(lx0); d <= math.Floor(lx1); d++ {
		v := math.Pow(10, d)
		w.f(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#333"/>`+"\n", px(v), bottom, px(v), bottom+5)
		w.f(`<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", px(v), bottom+18, esc(countLabel(v)))
	}
	for d := ly0; d <= ly1; d++ {
		v := math.Pow(10, d)
		w.f(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#333"/>`+"\n", left-5, py(v), left, py(v))
		w.f(`<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-8, py(v)+4, esc(usLabel(v)))
	}
	w.f(`<text x="%d" y="%d" text-anchor="middle">registered nodes (log scale)</text>`+"\n", (left+right)/2, bottom+38)
	w.f(`<text transform="translate(20 %d) rotate(-90)" text-anchor="middle">latency per request (log scale)</text>`+"\n", (top+bottom)/2)

	// Series.
	for si, s := range series {
		color := plotColors[si%len(plotColors)]
		for _, st := range plotStyles {
			var pts []string
			for _, p := range s.Points {
				if v := st.get(p); v > 0 {
					pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(float64(p.Nodes)), py(v)))
				}
			}
			if len(pts) == 0 {
				continue
			}
			dash := ""
			if st.dash != "" {
				dash = fmt.Sprintf(` stroke-dasharray="%s"`, st.dash)
			}
			w.f(`<polyline fill="none" stroke="%s" stroke-width="2"%s points="%s"/>`+"\n", color, dash, strings.Join(pts, " "))
			for _, pt := range pts {
				x, y, _ := strings.Cut(pt, ",")
				w.f("%s\n", marker(st.marker, x, y, color))
			}
		}
		if s.FailedAt > 0 {
			x := px(float64(s.FailedAt))
			w.f(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="1.5" stroke-dasharray="4,4"/>`+"\n", x, top, x, bottom, color)
			y := top + 16 + 16*si
			anchor, tx := "start", x+6
			if x > (left+right)/2 {
				anchor, tx = "end", x-6
			}
			w.f(`<text x="%.1f" y="%d" fill="%s" text-anchor="%s">%s</text>`+"\n", tx, y, color, anchor,
				esc(fmt.Sprintf("%s: registration failed after %d held", shorten(s.Target, 40), s.FailedAt)))
		}
	}

	// Legend.
	lx, ly := right+20, top+10
	w.f(`<text x="%d" y="%d" font-weight="bold">daemon</text>`+"\n", lx, ly)
	for si, s := range series {
		ly += 20
		color := plotColors[si%len(plotColors)]
		w.f(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="3"/>`+"\n", lx, ly-4, lx+28, ly-4, color)
		label := shorten(s.Target, 26)
		if s.FailedAt > 0 {
			label += fmt.Sprintf(" (max %d)", s.FailedAt)
		}
		w.f(`<text x="%d" y="%d">%s</text>`+"\n", lx+40, ly, esc(label))
	}
	ly += 32
	w.f(`<text x="%d" y="%d" font-weight="bold">quantity</text>`+"\n", lx, ly)
	for _, st := range plotStyles {
		ly += 20
		dash := ""
		if st.dash != "" {
			dash = fmt.Sprintf(` stroke-dasharray="%s"`, st.dash)
		}
		w.f(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#555" stroke-width="2"%s/>`+"\n", lx, ly-4, lx+28, ly-4, dash)
		w.f("%s\n", marker(st.marker, strconv.Itoa(lx+14), strconv.Itoa(ly-4), "#555"))
		w.f(`<text x="%d" y="%d">%s</text>`+"\n", lx+40, ly, esc(st.name))
	}
	for i, line := range subtitle {
		w.f(`<text x="%d" y="%d" fill="#555" font-size="11">%s</text>`+"\n", 20, bottom+60+14*i, esc(line))
	}
	w.f("</svg>\n")
	_, err := io.WriteString(out, w.b.String())
	return err
}

func marker(kind, x, y, color string) string {
	switch kind {
	case "ring":
		return fmt.Sprintf(`<circle cx="%s" cy="%s" r="3.5" fill="white" stroke="%s" stroke-width="1.5"/>`, x, y, color)
	case "square":
		fx, _ := strconv.ParseFloat(x, 64)
		fy, _ := strconv.ParseFloat(y, 64)
		return fmt.Sprintf(`<rect x="%.1f" y="%.1f" width="6" height="6" fill="%s"/>`, fx-3, fy-3, color)
	}
	return fmt.Sprintf(`<circle cx="%s" cy="%s" r="3" fill="%s"/>`, x, y, color)
}

func countLabel(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', -1, 64) + "M"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'f', -1, 64) + "k"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

func usLabel(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', -1, 64) + " s"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'f', -1, 64) + " ms"
	case v >= 1:
		return strconv.FormatFloat(v, 'f', -1, 64) + " µs"
	}
	return strconv.FormatFloat(v*1e3, 'f', -1, 64) + " ns"
}

func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return "…" + string(r[len(r)-n+1:])
}
