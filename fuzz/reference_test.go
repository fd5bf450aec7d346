package fuzz_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gopmd/gopmd/internal/oracle"
)

// referenceEnv selects the stock epmd FuzzDifferential compares gopmd
// with (make fuzz-ci runs it once per reference):
//
//   - unset: the installed stock epmd ($GOPMD_STOCK_EPMD, else epmd on
//     PATH), whatever its release;
//   - otp25, otp27, otp29: that OTP release's stock epmd. otp25 is the
//     installed one, and must be OTP 25; the others are the ones
//     scripts/otp-oracles fetches (it is run to get the path; it
//     downloads what is not cached yet, or fails under
//     GOPMD_ORACLES_OFFLINE=1);
//   - a path: that epmd.
//
// A reference that is asked for and cannot be had is a failure, never a
// skip.
const referenceEnv = "GOPMD_FUZZ_REFERENCE"

// referenceEpmd returns the stock epmd that ref (the value of
// GOPMD_FUZZ_REFERENCE) names.
func referenceEpmd(tb testing.TB, ref string) string {
	tb.Helper()
	rel, ok := strings.CutPrefix(ref, "otp")
	if !ok || rel == "" || strings.ContainsAny(rel, "/.") {
		if _, err := exec.LookPath(ref); err != nil {
			tb.Fatalf("%s=%s: %v", referenceEnv, ref, err)
		}
		return ref
	}
	var p string
	if rel == "25" {
		p = os.Getenv("GOPMD_STOCK_EPMD")
		if p == "" {
			var err error
			if p, err = exec.LookPath("epmd"); err != nil {
				tb.Fatalf("%s=%s: the installed stock epmd: %v (install erlang-base)", referenceEnv, ref, err)
			}
		}
	} else {
		n, err := strconv.Atoi(rel)
		if err != nil || !slices.Contains(oracle.Releases, n) {
			tb.Fatalf("%s=%s: not a release scripts/otp-oracles fetches (otp25, or otp followed by one of %v)", referenceEnv, ref, oracle.Releases)
		}
		if p, err = oracle.Fetch(n); err != nil {
			tb.Fatalf("%s=%s: %v", referenceEnv, ref, err)
		}
	}
	if got := otpRelease(p); got != rel {
		tb.Fatalf("%s=%s: %s is the epmd of OTP release %q, not %s", referenceEnv, ref, p, got, rel)
	}
	return p
}

// otpRelease returns the OTP release ("25") an epmd belongs to, from the
// releases/NN directory of its installation: the installed layout
// (ROOT/erts-*/bin/epmd, often through a symlink) or the one
// scripts/otp-oracles writes (a wrapper next to usr/lib/erlang). "" when
// neither is found.
func otpRelease(epmd string) string {
	var roots []string
	if real, err := filepath.EvalSymlinks(epmd); err == nil {
		roots = append(roots, filepath.Join(filepath.Dir(real), "..", ".."))
	}
	roots = append(roots, filepath.Join(filepath.Dir(epmd), "usr", "lib", "erlang"))
	for _, root := range roots {
		vs, _ := filepath.Glob(filepath.Join(root, "releases", "*", "OTP_VERSION"))
		if len(vs) == 1 {
			return filepath.Base(filepath.Dir(vs[0]))
		}
	}
	return ""
}

// TestOTPRelease checks otpRelease on both layouts, made up in a
// temporary directory.
func TestOTPRelease(t *testing.T) {
	dir := t.TempDir()
	write := func(path string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("x\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Installed: ROOT/erts-13.1.5/bin/epmd, linked from a bin directory.
	root := filepath.Join(dir, "lib", "erlang")
	write(filepath.Join(root, "erts-13.1.5", "bin", "epmd"))
	write(filepath.Join(root, "releases", "25", "OTP_VERSION"))
	link := filepath.Join(dir, "bin", "epmd")
	os.MkdirAll(filepath.Dir(link), 0o755)
	if err := os.Symlink(filepath.Join(root, "erts-13.1.5", "bin", "epmd"), link); err != nil {
		t.Fatal(err)
	}
	// scripts/otp-oracles: DIR/otp29/epmd next to DIR/otp29/usr/lib/erlang.
	wrapper := filepath.Join(dir, "otp29", "epmd")
	write(wrapper)
	write(filepath.Join(dir, "otp29", "usr", "lib", "erlang", "releases", "29", "OTP_VERSION"))
	for path, want := range map[string]string{link: "25", wrapper: "29", filepath.Join(dir, "none"): ""} {
		if got := otpRelease(path); got != want {
			t.Errorf("otpRelease(%s) = %q, want %q", path, got, want)
		}
	}
}
