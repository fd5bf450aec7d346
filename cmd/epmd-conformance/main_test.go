package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func stock(t *testing.T) string {
	t.Helper()
	p := os.Getenv("GOPMD_STOCK_EPMD")
	if p == "" {
		var err error
		if p, err = exec.LookPath("epmd"); err != nil {
			if os.Getenv("GOPMD_REQUIRE_ERLANG") == "1" {
				t.Fatal("stock epmd not found [GOPMD_REQUIRE_ERLANG=1]")
			}
			t.Skip("stock epmd not found; install erlang-base to run this test")
		}
	}
	return p
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"-epmd"},
		{"-bogus"},
		{"-epmd", "/nonexistent/epmd"},
		{"-epmd", os.TempDir()},
		{"-epmd", "/bin/true", "extra"},
		{"-epmd", "/bin/true", "-run", "("},
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 2 {
			t.Errorf("run(%q) = %d, want 2; stderr %q", args, code, errb.String())
		}
		if out.Len() != 0 {
			t.Errorf("run(%q) wrote to stdout: %q", args, out.String())
		}
	}
}

var summaryRE = regexp.MustCompile(`(?m)^(\d+) passed, (\d+) failed, (\d+) skipped\n\z`)

func TestStockPassesSelectedCases(t *testing.T) {
	epmd := stock(t)
	var out, errb bytes.Buffer
	code := run([]string{"-epmd", epmd, "-run", `^(transcript|names/.*|port_please/lookup_255_chars)$`}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if lines[0] != "PASS names/empty" {
		t.Errorf("first line %q, want PASS names/empty (cases run in file order)", lines[0])
	}
	// Against stock itself a difference case is a plain PASS.
	if !strings.Contains(out.String(), "PASS port_please/lookup_255_chars\n") {
		t.Errorf("no PASS line for the difference case:\n%s", out.String())
	}
	m := summaryRE.FindStringSubmatch(out.String())
	if m == nil || m[2] != "0" || m[3] != "0" || m[1] != strconv.Itoa(len(lines)-1) {
		t.Errorf("bad summary:\n%s", out.String())
	}
}

func TestDifferentialAgainstStockItself(t *testing.T) {
	epmd := stock(t)
	var out, errb bytes.Buffer
	code := run([]string{"-epmd", epmd, "-reference", epmd, "-run", `^kill/`, "-v"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "PASS kill/empty_daemon\n    ") {
		t.Errorf("-v printed no transcript:\n%s", out.String())
	}
}

// A binary that exits at once is no epmd: every case fails, exit status 1.
func TestFailuresExitOne(t *testing.T) {
	truePath, err := exec.LookPath("true")
	if err != nil {
		t.Skip("no true(1)")
	}
	var out, errb bytes.Buffer
	code := run([]string{"-epmd", truePath, "-run", `^names/empty$`}, &out, &errb)
	if code != 1 {
		t.Fatalf("exit %d, want 1\nstdout:\n%s", code, out.String())
	}
	if !strings.HasPrefix(out.String(), "FAIL names/empty: ") || !strings.HasSuffix(out.String(), "\n0 passed, 1 failed, 0 skipped\n") {
		t.Errorf("output:\n%s", out.String())
	}
}

func TestReferenceMustBeStock(t *testing.T) {
	epmd := stock(t)
	dir := t.TempDir()
	fake := dir + "/epmd"
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho gopmd fake\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"-epmd", epmd, "-reference", fake}, &out, &errb); code != 2 {
		t.Errorf("exit %d, want 2; stderr %q", code, errb.String())
	}
}

func TestHelpExitsZero(t *testing.T) {
	for _, a := range []string{"-h", "-help", "--help"} {
		var out, errb bytes.Buffer
		if code := run([]string{a}, &out, &errb); code != 0 {
			t.Errorf("%s: exit %d, want 0", a, code)
		}
		if !strings.Contains(out.String(), "-daemon-cmd") {
			t.Errorf("%s: no flag list on stdout:\n%s", a, out.String())
		}
	}
}

func TestList(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"-list", "-run", "^names/", "-skip", "empty"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) < 3 || lines[0] == "names/empty" {
		t.Errorf("-list:\n%s", out.String())
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "names/") || strings.Contains(l, "empty") {
			t.Errorf("-list printed %q", l)
		}
	}
}

func TestRunMatchingNothingIsAnError(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"-epmd", "/bin/true", "-run", "^no such case$"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "select no case") {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-epmd", "/bin/true", "-ports", "5-"},
		{"-epmd", "/bin/true", "-ports", "9-5"},
		{"-epmd", "/bin/true", "-without", "teleport"},
		{"-epmd", "/bin/true", "-daemon-cmd", "'x"},
		{"-epmd", "/bin/true", "-probe", "ping"},
		{"-epmd", "/bin/true", "-flavour", "beam"},
		{"-epmd", "/bin/true", "-expect", "/nonexistent"},
		{"-epmd", "/bin/true", "-scripts", "/nonexistent"},
		{"-addr", "localhost"},
		{"-epmd", "/bin/true", "-parallel", "0"},
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 2 {
			t.Errorf("%q: exit %d, want 2; stderr %q", args, code, errb.String())
		}
	}
}

// -json writes one object per case and a summary; -junit a JUnit report;
// an expected-differences file turns the listed failures into DIFF.
func TestMachineOutput(t *testing.T) {
	truePath, err := exec.LookPath("true")
	if err != nil {
		t.Skip("no true(1)")
	}
	dir := t.TempDir()
	expect := filepath.Join(dir, "expected")
	os.WriteFile(expect, []byte("# ours\nnames/newest_first   our daemon is not an epmd\n"), 0o644)
	junit := filepath.Join(dir, "report.xml")
	var out, errb bytes.Buffer
	code := run([]string{"-epmd", truePath, "-run", `^names/(empty|newest_first)$`, "-json", "-junit", junit, "-expect", expect, "-start-timeout", "2s"}, &out, &errb)
	if code != 1 {
		t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
	var objs []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not JSON: %q: %v", l, err)
		}
		objs = append(objs, m)
	}
	if len(objs) != 3 {
		t.Fatalf("%d objects, want 2 cases and a summary:\n%s", len(objs), out.String())
	}
	if objs[0]["case"] != "names/empty" || objs[0]["status"] != "fail" || !strings.HasPrefix(objs[0]["file"].(string), "names.txt:") || objs[0]["step"] == nil {
		t.Errorf("first case: %v", objs[0])
	}
	if objs[1]["case"] != "names/newest_first" || objs[1]["status"] != "diff" || objs[1]["reason"] != "expected: our daemon is not an epmd" {
		t.Errorf("second case: %v", objs[1])
	}
	if objs[2]["summary"] != true || objs[2]["failed"] != 1.0 || objs[2]["diff"] != 1.0 || objs[2]["ok"] != false {
		t.Errorf("summary: %v", objs[2])
	}
	b, err := os.ReadFile(junit)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Suites   []struct {
			Name  string `xml:"name,attr"`
			Cases []struct {
				Name    string    `xml:"name,attr"`
				Failure *struct{} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(b, &rep); err != nil {
		t.Fatalf("JUnit report does not parse: %v\n%s", err, b)
	}
	if rep.Tests != 2 || rep.Failures != 1 || len(rep.Suites) != 1 || rep.Suites[0].Name != "names" || rep.Suites[0].Cases[0].Failure == nil || rep.Suites[0].Cases[1].Failure != nil {
		t.Errorf("JUnit report:\n%s", b)
	}
}

// Extra script directories run with the built-in ones; their golden files
// are found.
func TestExtraScripts(t *testing.T) {
	epmd := stock(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "mine.txt"), []byte("case usage\ndaemon\nrun -bogus\nexpect stderr file usage.golden\nexpect status 1\n"), 0o644)
	var out, errb bytes.Buffer
	if code := run([]string{"-epmd", epmd, "-scripts", dir, "-run", "^mine/"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errb.String())
	}
	if !strings.HasPrefix(out.String(), "PASS mine/usage\n") {
		t.Errorf("output:\n%s", out.String())
	}
	os.WriteFile(filepath.Join(dir, "names.txt"), []byte("daemon\n"), 0o644)
	if code := run([]string{"-epmd", epmd, "-scripts", dir}, &out, &errb); code != 2 {
		t.Errorf("a script named like a built-in one: exit %d, want 2", code)
	}
}

// The human output gives a breakdown by script and by blocking
// capability when not everything passed.
func TestBreakdown(t *testing.T) {
	truePath, err := exec.LookPath("true")
	if err != nil {
		t.Skip("no true(1)")
	}
	var out, errb bytes.Buffer
	run([]string{"-epmd", truePath, "-run", `^names/empty$`, "-start-timeout", "2s"}, &out, &errb)
	if !strings.Contains(out.String(), "passed by script: names 0/1\n") {
		t.Errorf("output:\n%s", out.String())
	}
}

// Daemons run in a directory of their own: relative paths still work.
func TestRelativePaths(t *testing.T) {
	epmd := stock(t)
	dir := t.TempDir()
	if err := os.Symlink(epmd, filepath.Join(dir, "epmd")); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	for _, args := range [][]string{
		{"-epmd", "./epmd"},
		{"-daemon-cmd", "./epmd {args}", "-cli-cmd", "./epmd {args}"},
	} {
		var out, errb bytes.Buffer
		if code := run(append(args, "-run", `^(names/empty|cli/names_empty)$`), &out, &errb); code != 0 {
			t.Errorf("%q: exit %d\n%s%s", args, code, out.String(), errb.String())
		}
	}
}

// Against a daemon at -addr that does not answer, the run stops at once,
// says so, and fails.
func TestAddrGoneStopsTheRun(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"-addr", "127.0.0.1:1", "-start-timeout", "300ms", "-run", "^port_please/"}, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "stopped: the daemon at 127.0.0.1:1 does not answer") {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
	if strings.Contains(out.String(), "PASS") || !strings.Contains(out.String(), "SKIP port_please/") {
		t.Errorf("output:\n%s", out.String())
	}
}

// The run's time limit ends the cases still running and those not yet
// started as TIMEOUT, and the run fails.
func TestRunTimeLimit(t *testing.T) {
	epmd := stock(t)
	var out, errb bytes.Buffer
	code := run([]string{"-epmd", epmd, "-timeout", "1s", "-parallel", "1", "-run", "^timeout/"}, &out, &errb)
	if code != 1 || !strings.Contains(out.String(), "TIMEOUT timeout/") || !strings.Contains(out.String(), "not run: the run's time limit ran out") {
		t.Errorf("exit %d\n%s%s", code, out.String(), errb.String())
	}
}
