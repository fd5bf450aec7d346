//go:build linux

package main

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopmd/gopmd/epmd/client"
)

// TestBlockedStderrKeepsServing: with stderr a pipe nobody reads, and -d
// -d -d logging several lines per request, our daemon answers every
// look-up, and registrations still come and go. Stock's daemon stops once
// the pipe is full; how far it gets is printed (as a FIGURE), not
// asserted.
func TestBlockedStderrKeepsServing(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh to redirect the daemon's stderr")
	}
	for _, im := range impls() {
		t.Run(im.name, func(t *testing.T) {
			t.Parallel()
			pr, pw, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer pr.Close() // never read, but open: writes block instead of failing
			// The smallest pipe the kernel gives, so that it fills fast.
			syscall.Syscall(syscall.SYS_FCNTL, pw.Fd(), syscall.F_SETPIPE_SZ, 4096)
			d, port := spawnDaemon(t, func(port int) (*exec.Cmd, error) {
				cmd := exec.Command("sh", "-c", `exec "$0" "$@" 2>&3 3>&-`,
					im.bin, "-d", "-d", "-d", "-port", strconv.Itoa(port), "-address", "127.0.0.1")
				cmd.ExtraFiles = []*os.File{pw}
				return cmd, nil
			}, nil)
			pw.Close()
			_ = d
			c := &client.Client{Addr: "127.0.0.1:" + strconv.Itoa(port), Timeout: 2 * time.Second}
			const lookups = 500
			served := 0
			for i := range lookups {
				if i%50 == 0 {
					r := register(t, port, "n"+strconv.Itoa(i), uint16(5000+i))
					r.Close()
				}
				_, err := c.Lookup(context.Background(), "nobody")
				if !errors.Is(err, client.ErrNotFound) {
					if im.bin == ourBin {
						t.Fatalf("look-up %d with a blocked stderr: %v", i, err)
					}
					break
				}
				served++
			}
			t.Logf("FIGURE blocked-stderr %s: %d of %d look-ups served", im.name, served, lookups)
		})
	}
}

var logLine = regexp.MustCompile(`^epmd: [A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}: (.*)$`)

// TestAbortedFloodLogBounded: a flood of connections that close without a
// request (each one a level-0 message in stock) writes a bounded log: the
// first messages in stock's words, then one a second, and the count of the
// rest; shown plus counted is every connection. Stock's line count is
// printed.
func TestAbortedFloodLogBounded(t *testing.T) {
	t.Parallel()
	for _, im := range impls() {
		t.Run(im.name, func(t *testing.T) {
			t.Parallel()
			d, port := startDaemon(t, im.bin, nil)
			const flood = 2000
			start := time.Now()
			for range flood {
				c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
				if err != nil {
					t.Fatal(err)
				}
				c.Close()
			}
			took := time.Since(start)
			// A last request, answered after every aborted connection
			// has been seen (the daemon serves its listener in order).
			waitUp(t, port, nil)
			time.Sleep(200 * time.Millisecond)
			if im.bin == ourBin {
				d.cmd.Process.Signal(syscall.SIGTERM)
			} else {
				d.cmd.Process.Kill()
			}
			d.wait(t)
			shown, counted, summaries := 0, 0, 0
			sc := bufio.NewScanner(strings.NewReader(d.stderr.String()))
			for sc.Scan() {
				m := logLine.FindStringSubmatch(sc.Text())
				if m == nil {
					t.Fatalf("not a log line: %q", sc.Text())
				}
				switch msg := m[1]; {
				case strings.HasPrefix(msg, "got partial packet only on file descriptor "):
					shown++
				case summaryLine.MatchString(msg):
					n, _ := strconv.Atoi(summaryLine.FindStringSubmatch(msg)[1])
					counted += n
					summaries++
				case msg == "terminating on SIGTERM":
				default:
					t.Errorf("unexpected line %q", msg)
				}
			}
			t.Logf("FIGURE aborted-flood %s: %d connections in %v: %d lines of %d bytes in all, %d counted in %d summaries",
				im.name, flood, took.Round(time.Millisecond), shown+summaries, d.stderr.Len(), counted, summaries)
			if im.bin != ourBin {
				return
			}
			if shown+counted != flood {
				t.Errorf("%d shown + %d counted, want %d", shown, counted, flood)
			}
			// The burst, one a second after it, one summary per 10 s.
			secs := int(time.Since(start)/time.Second) + 1
			if max := logBurst + secs; shown > max {
				t.Errorf("%d lines shown in %d s, want at most %d", shown, secs, max)
			}
			if max := secs/10 + 1; summaries > max {
				t.Errorf("%d summaries in %d s, want at most %d", summaries, secs, max)
			}
		})
	}
}
