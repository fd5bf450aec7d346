package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gopmd/gopmd/internal/oracle"
)

// Tests of behaviour that stock epmd changed between OTP releases: each
// runs against gopmd and against the stock epmd of OTP 25 (installed), 27
// and 29 (scripts/otp-oracles; see internal/oracle for when they skip).

// releaseImpl is gopmd (release 0) or the stock epmd of one OTP release.
type releaseImpl struct {
	name    string
	release int
}

var releaseImpls = []releaseImpl{{"ours", 0}, {"otp25", 25}, {"otp27", 27}, {"otp29", 29}}

// bin returns the binary of r, or skips (fails under make test) when it is
// not available.
func (r releaseImpl) bin(t *testing.T) string {
	t.Helper()
	switch r.release {
	case 0:
		return ourBin
	case 25:
		needStock(t)
		return stockBin
	}
	return oracle.Epmd(t, r.release)
}

// listening returns the local addresses listening on TCP port, as ss
// prints them ("0.0.0.0", "[::1]").
func listening(t *testing.T, port int) []string {
	t.Helper()
	out, err := exec.Command("ss", "-Htln", "( sport = :"+strconv.Itoa(port)+" )").Output()
	if err != nil {
		t.Fatalf("ss: %v", err)
	}
	var addrs []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		addr := f[3][:strings.LastIndexByte(f[3], ':')]
		if addr == "*" {
			addr = "0.0.0.0"
		}
		addrs = append(addrs, addr)
	}
	slices.Sort(addrs)
	return addrs
}

// TestWildcardAddressPerRelease: -address 0.0.0.0 and -address ::. OTP 25
// and 27 bind both loopback addresses first, so the wildcard then fails
// with EADDRINUSE and the daemon, taking that for another epmd, exits 0.
// OTP 29 binds the list, then only the loopback address of the family the
// list does not cover; gopmd does as OTP 29. Only loopback is dialled.
func TestWildcardAddressPerRelease(t *testing.T) {
	if !hasIPv6() {
		t.Skip("no IPv6 loopback: the cases need both families")
	}
	for _, tc := range []struct {
		list string
		want []string // OTP 29's sockets, sorted as listening returns them
	}{
		{"0.0.0.0", []string{"0.0.0.0", "[::1]"}},
		{"::", []string{"127.0.0.1", "[::]"}},
	} {
		for _, im := range releaseImpls {
			t.Run(tc.list+"/"+im.name, func(t *testing.T) {
				t.Parallel()
				bin := im.bin(t)
				if im.release == 25 || im.release == 27 {
					port := freePort(t)
					got := runBin(t, bin, nil, append(portArgs(port), "-d", "-address", tc.list)...).masked()
					want(t, "-address "+tc.list, got, result{stderr: "epmd: TIME: epmd running - daemon = 0\r\n" +
						"epmd: TIME: there is already a epmd running at port " + strconv.Itoa(port) + " on ipaddr " + tc.list + "\r\n"})
					return
				}
				d, port := spawnDaemon(t, func(port int) (*exec.Cmd, error) {
					return exec.Command(bin, append(portArgs(port), "-address", tc.list)...), nil
				}, nil)
				if got := listening(t, port); !slices.Equal(got, tc.want) {
					t.Errorf("listening on %v, want %v", got, tc.want)
				}
				for _, lo := range []string{"127.0.0.1", "::1"} {
					c, err := net.DialTimeout("tcp", net.JoinHostPort(lo, strconv.Itoa(port)), 2*time.Second)
					if err != nil {
						t.Errorf("dial %s: %v", lo, err)
						continue
					}
					c.Close()
				}
				d.cmd.Process.Kill()
			})
		}
	}
}

// TestFileLimitPerRelease runs each daemon with a limit of 16 descriptors
// and opens 28 connections to it (docs/differences.md #5, per release).
// OTP 25 logs "error in accept: Too many open files" and exits 1. OTP 27
// and 29 keep running and retry accept at once, logging each failure.
// gopmd keeps running and backs off. Every daemon that survives answers
// NAMES once the connections are closed. The log line rates are logged
// (go test -v) for docs/differences.md.
func TestFileLimitPerRelease(t *testing.T) {
	const conns = 28
	for _, im := range releaseImpls {
		t.Run(im.name, func(t *testing.T) {
			// Not parallel: OTP 27 and 29 spin at full speed meanwhile.
			bin := im.bin(t)
			logf := filepath.Join(t.TempDir(), "stderr")
			d, port := spawnDaemon(t, func(port int) (*exec.Cmd, error) {
				args := append([]string{"-c", `ulimit -n 16 && exec "$0" "$@" 2>"$EPMD_TEST_LOG"`, bin},
					append(portArgs(port), "-address", "127.0.0.1")...)
				return exec.Command("sh", args...), nil
			}, []string{"EPMD_TEST_LOG=" + logf})
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
			var cs []net.Conn
			for range conns {
				c, err := net.DialTimeout("tcp", addr, time.Second)
				if err != nil {
					break // the daemon is gone (OTP 25)
				}
				cs = append(cs, c)
			}
			start := time.Now()
			time.Sleep(time.Second)
			exited := false
			select {
			case <-d.exited:
				exited = true
			default:
			}
			raw, _ := os.ReadFile(logf)
			elapsed := time.Since(start)
			lines := strings.Count(string(raw), "error in accept")
			for _, c := range cs {
				c.Close()
			}
			t.Logf("%s: %d connections, %d 'error in accept' lines in %v (%.0f a second), exited %v",
				im.name, len(cs), lines, elapsed.Round(10*time.Millisecond), float64(lines)/elapsed.Seconds(), exited)
			switch im.release {
			case 25:
				if !exited || d.wait(t) != 1 || !strings.Contains(string(raw), "error in accept: Too many open files") {
					t.Fatalf("OTP 25: want exit 1 after 'error in accept: Too many open files'; exited %v, log %q", exited, raw)
				}
				return
			case 27, 29:
				if exited || lines < 100 {
					t.Fatalf("OTP %d: want it running and retrying accept; exited %v, %d lines", im.release, exited, lines)
				}
			default:
				if exited || lines == 0 || lines > 50 {
					t.Fatalf("gopmd: want it running and backing off (1 to 50 lines); exited %v, %d lines", exited, lines)
				}
			}
			if !waitUp(t, port, d.exited) {
				t.Fatalf("no NAMES reply once the connections are closed; log %q", lastLines(raw, 5))
			}
		})
	}
}

// lastLines is the last n lines of b.
func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
