package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The tests check the tool's accounting with small runs. None asserts a
// speed: the machines they run on are shared and noisy.

func TestMain(m *testing.M) {
	// The null target runs as a subprocess of the tool's own binary, which
	// under go test is the test binary.
	if os.Getenv(nullEnv) == "1" {
		os.Exit(serveNull())
	}
	os.Exit(m.Run())
}

// stockEpmd returns the stock epmd, or skips (fails under
// GOPMD_REQUIRE_ERLANG=1, as the rest of the repository's tests do).
func stockEpmd(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("GOPMD_STOCK_EPMD"); p != "" {
		return p
	}
	p, err := exec.LookPath("epmd")
	if err != nil {
		msg := "stock epmd not found; install erlang-base to run this test"
		if os.Getenv("GOPMD_REQUIRE_ERLANG") == "1" {
			t.Fatal(msg + " [GOPMD_REQUIRE_ERLANG=1]")
		}
		t.Skip(msg)
	}
	return p
}

// runTool runs the tool's main with args and decodes its -json output.
func runTool(t *testing.T, args ...string) (*decodedReport, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "out.json")
	var stdout, stderr bytes.Buffer
	args = append([]string{"-q", "-json", path}, args...)
	if code := run(args, &stdout, &stderr); code != 0 {
		t.Fatalf("epmd-bench %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, stdout.String(), stderr.String())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rep decodedReport
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("decoding the JSON: %v\n%s", err, b)
	}
	return &rep, stdout.String()
}

// decodedReport mirrors report for decoding (statRange writes null for
// missing values, which the plain float64 fields would reject).
type decodedReport struct {
	Tool     string        `json:"tool"`
	Command  []string      `json:"command"`
	Started  time.Time     `json:"started"`
	Finished time.Time     `json:"finished"`
	Machine  machine       `json:"machine"`
	LoadAvg  [2]string     `json:"load_average"`
	Targets  []targetInfo  `json:"targets"`
	Runs     []runResult   `json:"runs"`
	Compare  []decodedCmp  `json:"compare"`
	Sweep    []sweepSeries `json:"sweep"`
	Plot     string        `json:"plot"`
	Notes    []string      `json:"notes"`
	Figures  []figure      `json:"figures"`
	Rounds   int           `json:"rounds"`
}

type decodedCmp struct {
	Figure  string   `json:"figure"`
	Params  figure   `json:"params"`
	Rounds  int      `json:"rounds"`
	Order   string   `json:"order"`
	Notes   []string `json:"notes"`
	Metrics []struct {
		Name    string `json:"name"`
		Better  string `json:"better"`
		Targets []struct {
			Target string   `json:"target"`
			N      int      `json:"n"`
			Min    *float64 `json:"min"`
			Median *float64 `json:"median"`
			Max    *float64 `json:"max"`
		} `json:"targets"`
		RatioAB *float64 `json:"ratio_a_over_b"`
		Verdict string   `json:"verdict"`
	} `json:"metrics"`
}

// checkRun checks the accounting of a run that should have done exactly
// ops operations without an error.
func checkRun(t *testing.T, r runResult, ops int64) {
	t.Helper()
	if r.Skipped != "" {
		t.Fatalf("%s on %s skipped: %s", r.Figure, r.Target, r.Skipped)
	}
	if r.Ops != ops || r.Errors != 0 {
		t.Errorf("%s on %s: %d ops, %d errors %v; want %d ops, no error", r.Figure, r.Target, r.Ops, r.Errors, r.ErrorExamples, ops)
	}
	if r.Ops > 0 && (r.P50us <= 0 || r.P50us > r.P99us || r.P99us > r.MaxUs || r.OpsPerSec <= 0) {
		t.Errorf("%s: inconsistent latencies p50 %v p99 %v max %v, %v ops/s", r.Figure, r.P50us, r.P99us, r.MaxUs, r.OpsPerSec)
	}
}

func TestNullServer(t *testing.T) {
	rep, out := runTool(t, "-null", "-n", "200", "lookup:c=4")
	if len(rep.Runs) != 1 {
		t.Fatalf("%d runs, want 1", len(rep.Runs))
	}
	r := rep.Runs[0]
	checkRun(t, r, 200)
	if r.Daemon == nil || r.Daemon.Pid <= 0 || r.Daemon.Pid == os.Getpid() {
		t.Fatalf("no /proc figures for the null server subprocess: %+v", r.Daemon)
	}
	if r.Daemon.RSSKiB <= 0 || r.Daemon.FDs < 3 {
		t.Errorf("implausible null server figures %+v", r.Daemon)
	}
	if !strings.Contains(out, "lookup nodes=10 c=4") {
		t.Errorf("table lacks the figure:\n%s", out)
	}
	waitGone(t, r.Daemon.Pid)
}

// waitGone checks that a process the tool started is no longer running.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	for i := 0; i < 100; i++ {
		if processGone(pid) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Errorf("process %d the tool started is still running", pid)
}

func TestNullServerDirect(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- runNullServer(ln) }()
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte{0, 4, 'z', 'a', 'b', 'c'})
	b, err := io.ReadAll(c)
	c.Close()
	if err != nil || string(b) != "w\x01" {
		t.Errorf("null server replied %q, %v; want \"w\\x01\" then EOF", b, err)
	}
	ln.Close()
	if err := <-done; err != nil {
		t.Errorf("runNullServer: %v", err)
	}
}

func TestStockWorkloads(t *testing.T) {
	epmd := stockEpmd(t)
	rep, _ := runTool(t, "-epmd", epmd, "-duration", "20s",
		"lookup:nodes=10,c=4,n=200",
		"lookup:nodes=0,c=2,n=100",
		"names:nodes=50,c=2,n=40",
		"churn:nodes=10,c=4,n=200",
		"hold:nodes=100,c=4",
		"slow:nodes=20,c=2,n=100,slow=2,hold=50ms,dribble=5ms",
	)
	if len(rep.Runs) != 6 {
		t.Fatalf("%d runs, want 6", len(rep.Runs))
	}
	want := []int64{200, 100, 40, 200, 100, 100}
	for i, r := range rep.Runs {
		checkRun(t, r, want[i])
		if r.Daemon == nil {
			t.Fatalf("%s: no daemon figures", r.Figure)
		}
		if r.Daemon.RSSKiB <= 0 {
			t.Errorf("%s: RSS %d", r.Figure, r.Daemon.RSSKiB)
		}
		if r.Daemon.CPUPerOpUs < 0 || float64(r.Daemon.CPUTicks)/clockTicks != r.Daemon.CPUSeconds {
			t.Errorf("%s: inconsistent CPU figures %+v", r.Figure, r.Daemon)
		}
	}
	// The registrations are open at the end of the run, when fds are counted.
	if r := rep.Runs[2]; r.Daemon.FDs < 50 {
		t.Errorf("names with 50 nodes: daemon has %d fds, want at least 50", r.Daemon.FDs)
	}
	if r := rep.Runs[4]; r.Held != 100 || r.StoppedBy != "" || r.Daemon.FDs < 100 {
		t.Errorf("hold: held %d (stopped by %q), daemon fds %d; want 100 held", r.Held, r.StoppedBy, r.Daemon.FDs)
	}
	if r := rep.Runs[5]; r.SlowRequests < 1 {
		t.Errorf("slow: %d slow requests completed, want some", r.SlowRequests)
	}
	if len(rep.Targets) != 1 || rep.Targets[0].Pid <= 0 {
		t.Fatalf("targets %+v", rep.Targets)
	}
	waitGone(t, rep.Targets[0].Pid)
}

func TestExternalDaemon(t *testing.T) {
	epmd := stockEpmd(t)
	tg := &target{Label: epmd, Kind: kindStarted, Path: epmd}
	if err := tg.start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer tg.stop()
	rep, _ := runTool(t, "-addr", tg.Addr, "-pid", strconv.Itoa(tg.Pid), "lookup:nodes=5,c=2,n=50")
	checkRun(t, rep.Runs[0], 50)
	if d := rep.Runs[0].Daemon; d == nil || d.Pid != tg.Pid {
		t.Errorf("daemon figures %+v, want those of pid %d", d, tg.Pid)
	}
	// Without -pid: no /proc figures, and the tool leaves the daemon alone.
	rep, _ = runTool(t, "-addr", tg.Addr, "names:nodes=3,n=5,c=1")
	checkRun(t, rep.Runs[0], 5)
	if rep.Runs[0].Daemon != nil {
		t.Errorf("daemon figures without a pid: %+v", rep.Runs[0].Daemon)
	}
	if !tg.alive() {
		t.Error("the tool stopped a daemon it did not start")
	}
}

func TestCompare(t *testing.T) {
	epmd := stockEpmd(t)
	rep, out := runTool(t, "-compare", epmd+",null", "-rounds", "2", "-n", "100", "-c", "2", "lookup:nodes=5", "names:nodes=5,n=10")
	if len(rep.Runs) != 8 {
		t.Fatalf("%d runs, want 2 figures x 2 rounds x 2 targets", len(rep.Runs))
	}
	// Alternation: A B A B.
	for i, r := range rep.Runs {
		wantTarget := []string{epmd, "null"}[i%2]
		if r.Target != wantTarget || r.Round != (i%4)/2+1 {
			t.Errorf("run %d: target %s round %d", i, r.Target, r.Round)
		}
	}
	if len(rep.Compare) != 2 {
		t.Fatalf("%d compare figures, want 2", len(rep.Compare))
	}
	c := rep.Compare[0]
	if c.Order != "A B A B" {
		t.Errorf("order %q", c.Order)
	}
	found := false
	for _, m := range c.Metrics {
		if m.Name != "ops/s" {
			continue
		}
		found = true
		if len(m.Targets) != 2 || m.Targets[0].N != 2 || m.Targets[1].N != 2 || m.RatioAB == nil {
			t.Errorf("ops/s metric: %+v", m)
		}
		a, b := m.Targets[0], m.Targets[1]
		if *a.Min > *a.Median || *a.Median > *a.Max || *m.RatioAB != *a.Median / *b.Median {
			t.Errorf("ops/s: min/median/max or ratio wrong: %+v %+v ratio %v", a, b, *m.RatioAB)
		}
		if m.Better != "higher" || (m.Verdict != "A better" && m.Verdict != "B better" && m.Verdict != "same") {
			t.Errorf("ops/s: better %q verdict %q", m.Better, m.Verdict)
		}
	}
	if !found {
		t.Error("no ops/s metric")
	}
	// The null server cannot answer NAMES: B is n/a there.
	for _, m := range rep.Compare[1].Metrics {
		if m.Name == "ops/s" && (m.Targets[0].N != 2 || m.Targets[1].N != 0 || m.Targets[1].Median != nil) {
			t.Errorf("names ops/s: %+v", m)
		}
	}
	for _, s := range []string{"A = " + epmd, "B = null", "A/B", "n/a", "== lookup nodes=5 c=2"} {
		if !strings.Contains(out, s) {
			t.Errorf("table lacks %q:\n%s", s, out)
		}
	}
}

func TestPlot(t *testing.T) {
	epmd := stockEpmd(t)
	svg := filepath.Join(t.TempDir(), "p.svg")
	sweep := "5,20"
	failing := fileLimit() > 1300
	if failing {
		sweep = "5,20,1100" // more than stock epmd can hold
	}
	rep, _ := runTool(t, "-epmd", epmd, "-plot", svg, "-sweep", sweep, "-sweep-n", "50", "-sweep-names", "3", "-c", "2")
	if len(rep.Runs) != 0 {
		t.Errorf("-plot alone ran %d figures", len(rep.Runs))
	}
	if len(rep.Sweep) != 1 {
		t.Fatalf("%d sweep series", len(rep.Sweep))
	}
	s := rep.Sweep[0]
	if len(s.Points) != 2 {
		t.Fatalf("points %+v, want 5 and 20", s.Points)
	}
	for i, p := range s.Points {
		if p.Nodes != []int{5, 20}[i] || p.LookupOps != 50 || p.LookupErrors != 0 || p.NamesOps != 3 || p.NamesErrors != 0 {
			t.Errorf("point %+v", p)
		}
	}
	if failing && (s.FailedAt < 1000 || s.FailedAt >= 1100 || s.Failure == "") {
		t.Errorf("stock epmd held %d (%s); want the sweep to stop between 1000 and 1100", s.FailedAt, s.Failure)
	}
	b, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	checkSVG(t, b, 3)
}

// checkSVG checks that b is well-formed XML with an svg root and at least
// lines polylines.
func checkSVG(t *testing.T, b []byte, lines int) {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(b))
	root, polylines := "", 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v\n%s", err, b)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if root == "" {
				root = se.Name.Local
				if se.Name.Space != "http://www.w3.org/2000/svg" {
					t.Errorf("root namespace %q", se.Name.Space)
				}
			}
			if se.Name.Local == "polyline" {
				polylines++
			}
		}
	}
	if root != "svg" || polylines < lines {
		t.Errorf("root %q, %d polylines; want svg and at least %d", root, polylines, lines)
	}
}

func TestRenderPlot(t *testing.T) {
	series := []sweepSeries{
		{Target: "bin/<ours>&co", Points: []sweepPoint{
			{Nodes: 10, LookupP50us: 40, LookupP99us: 300, NamesP50us: 60},
			{Nodes: 19000, LookupP50us: 45, LookupP99us: 900, NamesP50us: 20000},
		}},
		{Target: "/usr/bin/epmd", FailedAt: 1019, Failure: "closed", Points: []sweepPoint{
			{Nodes: 10, LookupP50us: 30, LookupP99us: 200, NamesP50us: 50},
			{Nodes: 1000, LookupP50us: 90, LookupP99us: 2000, NamesP50us: 3000},
		}},
		{Target: "empty"},
	}
	var b bytes.Buffer
	if err := renderPlot(&b, "title & <more>", []string{"a \"quoted\" line"}, defaultSweep, series); err != nil {
		t.Fatal(err)
	}
	checkSVG(t, b.Bytes(), 6)
	for _, s := range []string{"registration failed after 1019 held", "bin/&lt;ours&gt;&amp;co", "10k", "1 ms"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("SVG lacks %q", s)
		}
	}
	// No data at all still gives a valid chart.
	b.Reset()
	if err := renderPlot(&b, "empty", nil, defaultSweep, nil); err != nil {
		t.Fatal(err)
	}
	checkSVG(t, b.Bytes(), 0)
}

func TestProcStatsSelf(t *testing.T) {
	pid := os.Getpid()
	before, err := readProcStats(pid)
	if err != nil {
		t.Fatal(err)
	}
	if before.RSSKiB <= 0 || before.FDs < 3 {
		t.Fatalf("own stats %+v", before)
	}
	var files []*os.File
	for range 5 {
		f, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	mid, err := readProcStats(pid)
	for _, f := range files {
		f.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	if mid.FDs != before.FDs+5 {
		t.Errorf("fds %d after opening 5 files, %d before", mid.FDs, before.FDs)
	}
	// Burn CPU until the tick counter moves (at most 10 s of wall time).
	start := time.Now()
	x := 0
	for time.Since(start) < 10*time.Second {
		for i := range 1_000_000 {
			x += i
		}
		now, err := readProcStats(pid)
		if err != nil {
			t.Fatal(err)
		}
		if now.CPUTicks > before.CPUTicks {
			return
		}
	}
	t.Errorf("CPU ticks did not move from %d (x=%d)", before.CPUTicks, x)
}

func TestParseProc(t *testing.T) {
	// A command name with spaces and parentheses; utime 1234, stime 56.
	stat := "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1234 56 0 0 20 0 3 0 555 12345678 321 18446744073709551615\n"
	got, err := parseStatCPU([]byte(stat))
	if err != nil || got != 1290 {
		t.Errorf("parseStatCPU = %d, %v; want 1290", got, err)
	}
	if _, err := parseStatCPU([]byte("4242 (x) S 1 2")); err == nil {
		t.Error("parseStatCPU accepted a short line")
	}
	status := "Name:\tepmd\nVmPeak:\t   5000 kB\nVmRSS:\t    2948 kB\nThreads:\t1\n"
	rss, err := parseStatusRSS([]byte(status))
	if err != nil || rss != 2948 {
		t.Errorf("parseStatusRSS = %d, %v; want 2948", rss, err)
	}
	if _, err := parseStatusRSS([]byte("Name:\tkthreadd\n")); err == nil {
		t.Error("parseStatusRSS accepted a status without VmRSS")
	}
}

func TestSummarize(t *testing.T) {
	var lat []time.Duration
	for i := 100; i >= 1; i-- {
		lat = append(lat, time.Duration(i)*time.Microsecond)
	}
	s := summarize(lat)
	if s.Count != 100 || s.P50 != 50*time.Microsecond || s.P99 != 99*time.Microsecond || s.Max != 100*time.Microsecond {
		t.Errorf("summarize 1..100 µs = %+v", s)
	}
	if s := summarize([]time.Duration{7}); s.P50 != 7 || s.P99 != 7 || s.Max != 7 {
		t.Errorf("summarize one value = %+v", s)
	}
	if s := summarize(nil); s.Count != 0 {
		t.Errorf("summarize nothing = %+v", s)
	}
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median = %v", m)
	}
	if m := median([]float64{4, 1, 2, 3}); m != 2.5 {
		t.Errorf("median = %v", m)
	}
}

func TestRunLoadBounds(t *testing.T) {
	// The count bounds the operations exactly.
	lr := runLoad(t.Context(), loadSpec{conc: 8, n: 1000, dur: time.Minute}, func(_ context.Context, _ int, _ int64) (int, error) {
		return 1, nil
	})
	if lr.ops != 1000 || len(lr.lat) != 1000 || lr.retries != 1000 || lr.errs.total() != 0 {
		t.Errorf("count bound: %d ops, %d latencies, %d retries, %d errors", lr.ops, len(lr.lat), lr.retries, lr.errs.total())
	}
	// The duration bounds them too.
	lr = runLoad(t.Context(), loadSpec{conc: 2, n: 1 << 60, dur: 50 * time.Millisecond}, func(_ context.Context, _ int, _ int64) (int, error) {
		time.Sleep(time.Millisecond)
		return 0, nil
	})
	if lr.ops == 0 || lr.ops >= 1<<60 {
		t.Errorf("duration bound: %d ops", lr.ops)
	}
	// Errors are counted by kind, and stopOnError stops at the first.
	boom := errors.New("boom: detail")
	lr = runLoad(t.Context(), loadSpec{conc: 1, n: 100, dur: time.Minute, stopOnError: true}, func(_ context.Context, _ int, seq int64) (int, error) {
		if seq == 10 {
			return 0, boom
		}
		return 0, nil
	})
	counts, examples := lr.errs.snapshot()
	if lr.ops != 10 || lr.stopped != boom || counts["boom"] != 1 || examples["boom"] != "boom: detail" {
		t.Errorf("stopOnError: %d ops, stopped by %v, counts %v", lr.ops, lr.stopped, counts)
	}
}

func TestParseFigure(t *testing.T) {
	base := figure{Workload: wLookup, Nodes: 10, Conc: 16, N: 100, Duration: time.Second, Timeout: time.Second,
		Slow: 4, SlowHold: time.Second, Dribble: time.Millisecond}
	f, err := parseFigure("lookup:nodes=1000,c=8,n=5,d=2s,timeout=3s", base)
	if err != nil {
		t.Fatal(err)
	}
	if f.Nodes != 1000 || f.Conc != 8 || f.N != 5 || f.Duration != 2*time.Second || f.Timeout != 3*time.Second || f.Slow != 0 {
		t.Errorf("parsed %+v", f)
	}
	if f.String() != "lookup nodes=1000 c=8" {
		t.Errorf("String() = %q", f.String())
	}
	f, err = parseFigure("slow:slow=2,hold=5ms,dribble=1ms", base)
	if err != nil || f.Slow != 2 || f.SlowHold != 5*time.Millisecond || f.Dribble != time.Millisecond {
		t.Errorf("slow: %+v, %v", f, err)
	}
	f, err = parseFigure("hoard:nodes=5000,max=1,dump=100,nreaders=60,hold=15s,settle=3s", base)
	if err != nil || !f.Max || f.Dump != 100 || f.NamesReaders != 60 || f.SlowHold != 15*time.Second || f.Settle != 3*time.Second || f.Dribble != 0 {
		t.Errorf("hoard: %+v, %v", f, err)
	}
	if f.String() != "hoard nodes=5000 c=16 max dump=100 nreaders=60" {
		t.Errorf("String() = %q", f.String())
	}
	for _, bad := range []string{"names:max=1", "hoard:dump=-1", "hoard:hold=0s", "hoard:settle=2m", "dumploop:nreaders=x", "bogus", "lookup:nodes", "lookup:x=1", "lookup:c=0", "lookup:n=-1", "hold:nodes=0", "lookup:d=0s", "names:nodes=abc"} {
		if _, err := parseFigure(bad, base); err == nil {
			t.Errorf("parseFigure(%q) accepted", bad)
		}
	}
}

func TestArgs(t *testing.T) {
	var stderr bytes.Buffer
	for _, bad := range [][]string{
		{},                               // no target
		{"-null", "-epmd", "x"},          // two targets
		{"-compare", "a"},                // one target to compare
		{"-pid", "1", "-null"},           // -pid without -addr
		{"-null", "-sweep", "10,5"},      // decreasing sweep
		{"-null", "-bind-ports", "5-1"},  // bad range
		{"-null", "-rounds", "0", "x:y"}, // bad figure
	} {
		if _, err := parseArgs(bad, &stderr); err == nil {
			t.Errorf("parseArgs(%q) accepted", bad)
		}
	}
	o, err := parseArgs([]string{"-compare", "a,b", "-plot", "x.svg"}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if o.rounds != 3 || len(o.figures) != 0 {
		t.Errorf("-compare -plot: rounds %d, %d figures; want 3 and none", o.rounds, len(o.figures))
	}
	o, err = parseArgs([]string{"-null", "-w", "names", "-nodes", "7"}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if o.rounds != 1 || len(o.figures) != 1 || o.figures[0].Workload != wNames || o.figures[0].Nodes != 7 {
		t.Errorf("-w names: %+v", o.figures)
	}
	if code := run([]string{"-h"}, io.Discard, io.Discard); code != 0 {
		t.Errorf("-h: exit %d", code)
	}
	if code := run([]string{"-bogus"}, io.Discard, io.Discard); code != 2 {
		t.Errorf("bad flag: exit %d, want 2", code)
	}
}

func TestPortPool(t *testing.T) {
	p := newPortPool(4368, 4370)
	got := []int{p.take(), p.take(), p.take()}
	if got[0] != 4368 || got[1] != 4370 || got[2] != 4368 {
		t.Errorf("took %v; want 4368 4370 4368 (4369 is reserved)", got)
	}
	only := newPortPool(4369, 4369)
	if port := only.take(); port != 4369 {
		t.Errorf("a pool of only a reserved port gave %d", port)
	}
	if ip := loopbackOf("127.0.0.1:4369"); !ip.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("loopbackOf v4 = %v", ip)
	}
	if ip := loopbackOf("[::1]:4369"); !ip.Equal(net.IPv6loopback) {
		t.Errorf("loopbackOf v6 = %v", ip)
	}
	if ip := loopbackOf("192.0.2.1:4369"); ip != nil {
		t.Errorf("loopbackOf non-loopback = %v", ip)
	}
}
