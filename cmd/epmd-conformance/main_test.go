package main

import (
	"bytes"
	"os"
	"os/exec"
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
