package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// A run of go1.26.8's go test -fuzz=^FuzzDecodeRequest$
// -fuzztime=150000x -parallel=2 ./fuzz, and a failing one.
const passingRun = `fuzz: elapsed: 0s, gathering baseline coverage: 0/41 completed
fuzz: elapsed: 3s, gathering baseline coverage: 41/41 completed, now fuzzing with 2 workers
fuzz: elapsed: 12s, execs: 40187 (0/sec), new interesting: 2 (total: 43)
fuzz: elapsed: 18s, execs: 52502 (4131/sec), new interesting: 3 (total: 44)
fuzz: elapsed: 1m23s, execs: 150000 (22313/sec), new interesting: 3 (total: 44)
PASS
ok  	github.com/gopmd/gopmd/fuzz	23.716s
`

const failingRun = `fuzz: elapsed: 0s, gathering baseline coverage: 0/6 completed
fuzz: elapsed: 0s, gathering baseline coverage: 6/6 completed, now fuzzing with 2 workers
fuzz: minimizing 52-byte failing input file
fuzz: elapsed: 2s, minimizing
--- FAIL: FuzzDecodeRequest (2.31s)
    --- FAIL: FuzzDecodeRequest (0.00s)
        request_test.go:40: boom

    Failing input written to testdata/fuzz/FuzzDecodeRequest/582528ddfad69eb5
    To re-run:
    go test -run=FuzzDecodeRequest/582528ddfad69eb5
FAIL
exit status 1
FAIL	github.com/gopmd/gopmd/fuzz	2.330s
`

func parse(out string) (fuzzStats, int) {
	var s fuzzStats
	starts := 0
	for _, l := range strings.Split(out, "\n") {
		if s.line(l) {
			starts++
		}
	}
	return s, starts
}

func TestParseOutput(t *testing.T) {
	got, starts := parse(passingRun)
	want := fuzzStats{Workers: 2, Baseline: 41, Elapsed: 83 * time.Second, Execs: 150000,
		NewInputs: 3, CorpusTotal: 44, SawFuzzing: true}
	if diff := cmp.Diff(want, got); diff != "" || starts != 1 {
		t.Errorf("passing run: starts %d, (-want +got):\n%s", starts, diff)
	}
	got, _ = parse(failingRun)
	want = fuzzStats{Workers: 2, Baseline: 6, SawFuzzing: true,
		Reproducer: "testdata/fuzz/FuzzDecodeRequest/582528ddfad69eb5"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("failing run (-want +got):\n%s", diff)
	}
	got, _ = parse("testing: warning: no fuzz tests to fuzz\nPASS\n")
	if !got.NoTarget || got.SawFuzzing {
		t.Errorf("no target: %+v", got)
	}
	// An empty corpus: no baseline run, the first status line starts.
	got, starts = parse("warning: starting with empty corpus\nfuzz: elapsed: 0s, execs: 0 (0/sec), new interesting: 0 (total: 0)\nfuzz: elapsed: 1s, execs: 20000 (14918/sec), new interesting: 1 (total: 1)\nPASS\n")
	if got.Execs != 20000 || !got.SawFuzzing || starts != 1 || got.NewInputs != 1 {
		t.Errorf("empty corpus: starts %d, %+v", starts, got)
	}
	// Without coverage instrumentation the counts of new inputs are not
	// printed; the executions still are.
	got, _ = parse("fuzz: elapsed: 0s, testing seed corpus: 3/3 completed, now fuzzing with 1 workers\nfuzz: elapsed: 3s, execs: 900 (300/sec)\n")
	if got.Execs != 900 || !got.SawFuzzing || got.Workers != 1 {
		t.Errorf("no coverage: %+v", got)
	}
}

func TestParseBudgets(t *testing.T) {
	in := `# comment
./fuzz FuzzA 1_000_000   # a minute
./fuzz FuzzB 300 GOPMD_X=otp25 Y=1

./epmd/wire/ FuzzC 5
`
	got, err := parseBudgets(strings.NewReader(in), "b")
	if err != nil {
		t.Fatal(err)
	}
	want := []budget{
		{Pkg: "./fuzz", Name: "FuzzA", Execs: 1000000, Line: 2},
		{Pkg: "./fuzz", Name: "FuzzB", Execs: 300, Env: []string{"GOPMD_X=otp25", "Y=1"}, Line: 3},
		{Pkg: "./epmd/wire", Name: "FuzzC", Execs: 5, Line: 5},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, bad := range []string{
		"./fuzz FuzzA", "fuzz FuzzA 1", "./fuzz Fuzzy 1", "./fuzz FuzzA 0",
		"./fuzz FuzzA -3", "./fuzz FuzzA 1m", "./fuzz FuzzA 1 lower=1", "./fuzz FuzzA 1 X",
	} {
		if _, err := parseBudgets(strings.NewReader(bad), "b"); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestHasTestName(t *testing.T) {
	for name, want := range map[string]bool{
		"Fuzz": true, "FuzzX": true, "Fuzz_x": true, "Fuzz2": true,
		"Fuzzy": false, "fuzzX": false, "Fuz": false,
	} {
		if got := hasTestName(name, "Fuzz"); got != want {
			t.Errorf("hasTestName(%q) = %v", name, got)
		}
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFindTargetsAndProps(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a_test.go")
	writeFile(t, a, `package p

import (
	tt "testing"

	"pgregory.net/rapid"
)

func FuzzOne(f *tt.F)            {}
func FuzzTwo(f *tt.F, extra int) {}
func Fuzzy(f *tt.F)              {}
func FuzzT(t *tt.T)              {}
func FuzzRet(f *tt.F) error      { return nil }

type x struct{}

func (x) FuzzMethod(f *tt.F) {}

func TestProp(t *tt.T) {
	t.Run("sub", func(t *tt.T) { rapid.Check(t, func(*rapid.T) {}) })
}
func TestPlain(t *tt.T) { rapid.IntRange(0, 1) }
`)
	b := filepath.Join(dir, "b_test.go")
	writeFile(t, b, `package p_test

import (
	"testing"

	r "pgregory.net/rapid"
)

func FuzzThree(f *testing.F) {}
func TestMake(t *testing.T)  { _ = r.MakeCheck(func(*r.T) {}) }
`)
	p := &pkgInfo{Rel: "./p", TestFiles: []string{a, b}, TestImport: []string{"testing", rapidPath}}
	ts, err := findTargets([]*pkgInfo{p})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tg := range ts {
		names = append(names, tg.Name)
	}
	if diff := cmp.Diff([]string{"FuzzOne", "FuzzThree"}, names); diff != "" {
		t.Errorf("targets (-want +got):\n%s", diff)
	}
	props, err := propTests(p)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"TestMake", "TestProp"}, props); diff != "" {
		t.Errorf("property tests (-want +got):\n%s", diff)
	}
}

func TestPlan(t *testing.T) {
	p := &pkgInfo{Rel: "./fuzz"}
	ts := []target{{Pkg: p, Name: "FuzzA"}, {Pkg: p, Name: "FuzzB"}}
	bs := []budget{
		{Pkg: "./fuzz", Name: "FuzzA", Execs: 10, Env: []string{"R=1"}, Line: 1},
		{Pkg: "./fuzz", Name: "FuzzA", Execs: 20, Env: []string{"R=2"}, Line: 2},
	}
	jobs, err := plan(ts, bs, nil, "b")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, j := range jobs {
		got = append(got, j.label())
	}
	want := []string{"FuzzA (./fuzz) [R=1]", "FuzzA (./fuzz) [R=2]", "FuzzB (./fuzz)"}
	if diff := cmp.Diff(want, got); diff != "" || jobs[2].execs != 0 {
		t.Errorf("jobs (-want +got):\n%s", diff)
	}
	// A budget line for a target that is gone is an error, unless a
	// filter left it out.
	bs = append(bs, budget{Pkg: "./fuzz", Name: "FuzzGone", Execs: 1, Line: 3})
	if _, err := plan(ts, bs, nil, "b"); err == nil || !strings.Contains(err.Error(), "b:3") {
		t.Errorf("stale line: %v", err)
	}
	if _, err := plan(ts[:1], bs, regexp.MustCompile("FuzzA"), "b"); err != nil {
		t.Errorf("filtered: %v", err)
	}
}

func TestPromotion(t *testing.T) {
	dir := t.TempDir()
	from, to := filepath.Join(dir, "cache"), filepath.Join(dir, "corpus")
	in := func(s string) string { return "go test fuzz v1\n[]byte(" + s + ")\n" }
	writeFile(t, filepath.Join(from, "aaaa"), in(`"a"`))      // new
	writeFile(t, filepath.Join(from, "bbbb"), in(`"b"`))      // in the corpus under another name
	writeFile(t, filepath.Join(from, "cccc"), "not a corpus") // left out
	writeFile(t, filepath.Join(from, "dddd"), in(`"d"`))      // name taken by other content
	writeFile(t, filepath.Join(from, "eeee"), in(`"a"`))      // same as aaaa
	writeFile(t, filepath.Join(to, "gen-b"), in(`"b"`))
	writeFile(t, filepath.Join(to, "dddd"), in(`"other"`))
	p, err := planPromotion(from, to)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"aaaa"}, p.copy); diff != "" || p.cached != 5 {
		t.Errorf("cached %d, copy (-want +got):\n%s", p.cached, diff)
	}
	if diff := cmp.Diff([]string{"cccc", "dddd"}, p.skipped); diff != "" {
		t.Errorf("skipped (-want +got):\n%s", diff)
	}
	if err := p.apply(); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(to, "aaaa")); err != nil || string(b) != in(`"a"`) {
		t.Errorf("copied file: %q, %v", b, err)
	}
	// Again: nothing left to copy.
	if p, err = planPromotion(from, to); err != nil || len(p.copy) != 0 {
		t.Errorf("second promotion: %v, %v", p.copy, err)
	}
	// No cache directory yet: nothing to do.
	if p, err = planPromotion(filepath.Join(dir, "none"), to); err != nil || p.cached != 0 {
		t.Errorf("no cache: %+v, %v", p, err)
	}
}
