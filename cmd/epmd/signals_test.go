package main

import (
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestIgnoredSignalsStayIgnored: started with SIGINT and SIGQUIT ignored
// (as a shell starts a background job) or SIGHUP ignored (nohup), both
// daemons keep serving, and keep their registrations, when those signals
// come; SIGTERM still ends ours in order. Stock and ours side by side.
func TestIgnoredSignalsStayIgnored(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh to start the daemon with signals ignored")
	}
	for _, tc := range []struct {
		name, trap string
		sigs       []syscall.Signal
	}{
		{"background_job", "INT QUIT", []syscall.Signal{syscall.SIGINT, syscall.SIGQUIT}},
		{"nohup", "HUP", []syscall.Signal{syscall.SIGHUP}},
	} {
		for _, im := range impls() {
			t.Run(tc.name+"/"+im.name, func(t *testing.T) {
				t.Parallel()
				d, port := spawnDaemon(t, func(port int) (*exec.Cmd, error) {
					// exec keeps the ignored dispositions trap sets.
					return exec.Command("sh", "-c", `trap "" `+tc.trap+`; exec "$0" "$@"`,
						im.bin, "-port", strconv.Itoa(port), "-address", "127.0.0.1"), nil
				}, nil)
				r := register(t, port, "alpha", 5555)
				for _, sig := range tc.sigs {
					if err := d.cmd.Process.Signal(sig); err != nil {
						t.Fatal(err)
					}
				}
				// Signals are delivered asynchronously: give a dying
				// daemon time to go before looking.
				time.Sleep(300 * time.Millisecond)
				select {
				case <-d.exited:
					t.Fatalf("%v ended the daemon: %v, stderr %q", tc.sigs, d.cmd.ProcessState, d.stderr.String())
				case <-r.Done():
					t.Fatal("the registration was closed")
				default:
				}
				p := strconv.Itoa(port)
				want(t, "-names", runBin(t, ourBin, nil, "-port", p, "-names"),
					result{stdout: "epmd: up and running on port " + p + " with data:\nname alpha at port 5555\n"})
				if im.bin != ourBin {
					return // stock dies of SIGTERM; the cleanup kills it
				}
				d.cmd.Process.Signal(syscall.SIGTERM)
				if code := d.wait(t); code != 0 {
					t.Errorf("exit status %d after SIGTERM, stderr %q", code, d.stderr.String())
				}
			})
		}
	}
}

// TestSignalsNotIgnored: without an inherited ignore, SIGQUIT, SIGHUP and
// the signals whose default action ends a process (SIGUSR1, ..., which
// the Go runtime alone would drop; SIGUSR2 but on Linux) end both daemons (ours by
// SIGQUIT through the Go runtime: a goroutine dump and status 2); SIGINT
// ends ours in order (TestSignal).
func TestSignalsNotIgnored(t *testing.T) {
	t.Parallel()
	sigs := []syscall.Signal{syscall.SIGQUIT, syscall.SIGHUP}
	for _, s := range fatalSignals {
		sigs = append(sigs, s.(syscall.Signal))
	}
	for _, sig := range sigs {
		for _, im := range impls() {
			t.Run(sig.String()+"/"+im.name, func(t *testing.T) {
				t.Parallel()
				d, _ := startDaemon(t, im.bin, nil)
				d.cmd.Process.Signal(sig)
				d.wait(t)
				ws := d.cmd.ProcessState.Sys().(syscall.WaitStatus)
				switch {
				case ws.Signaled() && ws.Signal() == sig:
				case im.bin == ourBin && sig == syscall.SIGQUIT && ws.Exited() && ws.ExitStatus() == 2:
				default:
					t.Errorf("after %v: %v", sig, d.cmd.ProcessState)
				}
			})
		}
	}
}
