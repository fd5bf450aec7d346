// Package oracle finds the stock epmd of the newer OTP releases that
// scripts/otp-oracles fetches (OTP 27 and 29; the OTP 25 epmd is the
// installed one), for tests that compare gopmd with each release.
//
// Under plain `go test` a release that is not in the cache skips the test
// with the reason. Under GOPMD_REQUIRE_ERLANG=1 (make test, CI) the
// script is run to fetch it, and the test fails if that fails.
package oracle

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Releases are the OTP releases scripts/otp-oracles fetches.
var Releases = []int{27, 29}

// Dir is where scripts/otp-oracles keeps the releases: $GOPMD_ORACLES, or
// gopmd/otp-oracles in the user's cache directory ($XDG_CACHE_HOME, else
// ~/.cache), as the script decides it.
func Dir() string {
	if d := os.Getenv("GOPMD_ORACLES"); d != "" {
		return d
	}
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, _ := os.UserHomeDir()
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "gopmd", "otp-oracles")
}

// Cached returns the wrapper that runs release's stock epmd, if the
// release is in the cache.
func Cached(release int) (string, bool) {
	p := filepath.Join(Dir(), "otp"+strconv.Itoa(release), "epmd")
	if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
		return p, true
	}
	return "", false
}

// Epmd returns the wrapper that runs release's stock epmd (see the package
// comment for what happens when it is not cached).
func Epmd(tb testing.TB, release int) string {
	tb.Helper()
	if p, ok := Cached(release); ok {
		return p
	}
	if os.Getenv("GOPMD_REQUIRE_ERLANG") != "1" {
		tb.Skipf("OTP %d's stock epmd is not in %s: run scripts/otp-oracles (make oracles) to fetch it", release, Dir())
	}
	p, err := fetch(release)
	if err != nil {
		tb.Fatalf("OTP %d's stock epmd: %v [GOPMD_REQUIRE_ERLANG=1]", release, err)
	}
	return p
}

// Fetch returns the wrapper that runs release's stock epmd, running
// scripts/otp-oracles to fetch it when it is not cached.
func Fetch(release int) (string, error) {
	if p, ok := Cached(release); ok {
		return p, nil
	}
	return fetch(release)
}

// fetch runs scripts/otp-oracles RELEASE from the module's root.
func fetch(release int) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.Command(filepath.Join(root, "scripts", "otp-oracles"), strconv.Itoa(release))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("scripts/otp-oracles %d: %v: %s", release, err, strings.TrimSpace(stderr.String()))
	}
	p := strings.TrimSpace(string(out))
	if _, ok := Cached(release); !ok || p == "" {
		return "", fmt.Errorf("scripts/otp-oracles %d printed %q, but there is no epmd in %s", release, p, Dir())
	}
	return p, nil
}

// moduleRoot is the directory holding go.mod, from the working directory
// up (tests run in their package's directory).
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}
