// Package testenv finds the external programs some tests need (the stock
// epmd, erl, erl_call, elixir) and decides what happens when one is
// missing: under plain `go test` the test is skipped with the reason; when
// GOPMD_REQUIRE_ERLANG=1 (set by `make test` and CI) it fails instead, so
// a missing install can never pass silently.
package testenv

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// Required reports whether missing Erlang tools fail tests instead of
// skipping them.
func Required() bool { return os.Getenv("GOPMD_REQUIRE_ERLANG") == "1" }

// missing skips or fails t for a missing program.
func missing(t testing.TB, prog, why string) {
	t.Helper()
	msg := prog + " not found (" + why + "); install erlang-base to run this test"
	if Required() {
		t.Fatal(msg + " [GOPMD_REQUIRE_ERLANG=1]")
	}
	t.Skip(msg)
}

// StockEpmd returns the path of the stock (C) epmd: $GOPMD_STOCK_EPMD if
// set, else the first epmd on PATH.
func StockEpmd(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("GOPMD_STOCK_EPMD"); p != "" {
		return p
	}
	p, err := exec.LookPath("epmd")
	if err != nil {
		missing(t, "stock epmd", "the oracle these tests compare against")
	}
	return p
}

// Program returns the path of an Erlang tool such as erl or erl_call.
func Program(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	// erl_call lives inside the OTP tree rather than on PATH on some systems.
	if matches, _ := globFirst("/usr/lib/erlang/lib/erl_interface-*/bin/" + name); matches != "" {
		return matches
	}
	missing(t, name, "a real Erlang client")
	return ""
}

// Optional returns the path of a program that is nice to have (elixir), or
// skips the test whatever GOPMD_REQUIRE_ERLANG says.
func Optional(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skip(name + " not found; install it to run this test")
	}
	return p
}

// FreePort returns a TCP port that was free on 127.0.0.1, and on ::1 when
// the host has IPv6 loopback, a moment ago. There is a small race with
// other processes; tests that start daemons on it retry on "address in use".
func FreePort(t testing.TB) int {
	t.Helper()
	v6 := HasIPv6()
	for i := 0; i < 50; i++ {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if !v6 {
			return port
		}
		ln6, err := net.Listen("tcp6", "[::1]:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		ln6.Close()
		return port
	}
	t.Fatal("no free port found on loopback")
	return 0
}

// HasIPv6 reports whether the host has an IPv6 loopback to listen on.
func HasIPv6() bool {
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

func globFirst(pattern string) (string, error) {
	m, err := filepath.Glob(pattern)
	if err != nil || len(m) == 0 {
		return "", err
	}
	return m[len(m)-1], nil
}
