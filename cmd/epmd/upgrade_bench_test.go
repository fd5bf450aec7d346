//go:build linux

package main

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/gopmd/gopmd/epmd/client"
)

// BenchmarkRestartLookups measures what a restart of the daemon costs the
// look-ups of a registered erl node: an erl node registers, a client looks
// it up every 10 ms (1 s timeout each), and the daemon restarts: stock is
// stopped and started again (the node's registration socket closes and
// erl_epmd registers again on its 2-second timer); gopmd upgrades in place
// (SIGUSR2, the same build). Each iteration watches the 4 seconds from the
// restart. Metrics per restart: failed look-ups, all look-ups, and the
// time from the first failure to the last; and the slowest look-up of the
// whole run, failed or not.
//
//	go test ./cmd/epmd -run '^$' -bench RestartLookups -benchtime 5x
func BenchmarkRestartLookups(b *testing.B) {
	erl, err := exec.LookPath("erl")
	if err != nil {
		b.Skip("erl not found: no node to look up")
	}
	for _, im := range []impl{{"stock", stockBin}, {"gopmd", ourBin}} {
		b.Run(im.name, func(b *testing.B) {
			if im.bin == "" {
				b.Skip("stock epmd not installed")
			}
			benchRestart(b, im, erl)
		})
	}
}

func benchRestart(b *testing.B, im impl, erl string) {
	port := 0
	var d *exec.Cmd
	log := &lineLog{grew: make(chan struct{})}
	start := func() {
		d = exec.Command(im.bin, "-port", strconv.Itoa(port), "-address", "127.0.0.1")
		d.Env = append(baseEnv(), "GOPMD_BACKEND=epoll")
		pr, pw, err := os.Pipe()
		if err != nil {
			b.Fatal(err)
		}
		d.Stderr = pw
		if err := d.Start(); err != nil {
			b.Fatal(err)
		}
		pw.Close()
		go func() {
			sc := bufio.NewScanner(pr)
			for sc.Scan() {
				log.add(sc.Text())
			}
			pr.Close()
		}()
	}
	for range startAttempts {
		port = benchPort(b)
		start()
		if benchUp(port) {
			break
		}
		d.Process.Kill()
		d.Wait()
		d = nil
	}
	if d == nil {
		b.Fatal("no daemon")
	}
	serving := d.Process.Pid
	b.Cleanup(func() {
		syscall.Kill(serving, syscall.SIGKILL) // the generation serving, started here
		d.Process.Kill()
		d.Wait()
	})
	node := exec.Command(erl, "-sname", "benchnode", "-noshell", "-start_epmd", "false", "-setcookie", "gopmdbench",
		"-kernel", "logger_level", "emergency", "-eval", "receive after infinity -> ok end")
	node.Env = append(baseEnv(), "ERL_EPMD_PORT="+strconv.Itoa(port))
	if err := node.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { node.Process.Kill(); node.Wait() })
	c := &client.Client{Addr: "127.0.0.1:" + strconv.Itoa(port), Timeout: time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := c.Lookup(context.Background(), "benchnode"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("the node did not register")
		}
		time.Sleep(50 * time.Millisecond)
	}
	var failed, total, from int
	var window, slowest time.Duration
	b.ResetTimer()
	for range b.N {
		done := make(chan struct{})
		res := make(chan [4]int64, 1)
		go func() {
			var f, n int64
			var first, last time.Time
			var slowest time.Duration
			for {
				select {
				case <-done:
					res <- [4]int64{f, n, int64(last.Sub(first)), int64(slowest)}
					return
				default:
				}
				at := time.Now()
				_, err := c.Lookup(context.Background(), "benchnode")
				slowest = max(slowest, time.Since(at))
				if err != nil {
					f++
					if first.IsZero() {
						first = at
					}
					last = time.Now()
				}
				n++
				time.Sleep(10 * time.Millisecond)
			}
		}()
		if im.name == "stock" {
			d.Process.Signal(syscall.SIGTERM)
			d.Wait()
			start()
			serving = d.Process.Pid
		} else {
			old := serving
			syscall.Kill(old, syscall.SIGUSR2)
			if old == d.Process.Pid {
				d.Wait()
			}
			m, next := log.waitMatch(b, from, tookOverLine, 30*time.Second)
			from = next
			serving, _ = strconv.Atoi(m[1])
		}
		time.Sleep(4 * time.Second)
		close(done)
		r := <-res
		failed += int(r[0])
		total += int(r[1])
		window += time.Duration(r[2])
		slowest = max(slowest, time.Duration(r[3]))
	}
	b.StopTimer()
	b.ReportMetric(float64(failed)/float64(b.N), "failed/restart")
	b.ReportMetric(float64(total)/float64(b.N), "lookups/restart")
	b.ReportMetric(float64(window.Milliseconds())/float64(b.N), "failing-ms/restart")
	b.ReportMetric(float64(slowest.Microseconds())/1000, "slowest-lookup-ms")
}

func benchPort(b *testing.B) int {
	b.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func benchUp(port int) bool {
	c := &client.Client{Addr: "127.0.0.1:" + strconv.Itoa(port), Timeout: time.Second}
	for range 200 {
		if _, err := c.NamesRaw(context.Background()); err == nil {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}
