//go:build linux

package server_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopmd/gopmd/epmd/client"
	"github.com/gopmd/gopmd/epmd/internal/testenv"
	"github.com/gopmd/gopmd/epmd/server"
	"github.com/gopmd/gopmd/fsm"
)

// erlCycles is the Erlang side of TestErlFastRestartNeverRefused: up to N
// net_kernel:start/stop cycles of node "cyc", for at most MS milliseconds;
// it prints the counts, then starts distribution once more, prints
// "registered" and holds the name until its stdin closes.
const erlCycles = `
[NS, MS] = init:get_plain_arguments(),
N = list_to_integer(NS), Max = list_to_integer(MS),
T0 = erlang:monotonic_time(millisecond),
Loop = fun L(I, Ok, Err) ->
    case I >= N orelse erlang:monotonic_time(millisecond) - T0 > Max of
        true -> {I, Ok, Err};
        false ->
            case net_kernel:start([cyc, shortnames]) of
                {ok, _} -> ok = net_kernel:stop(), L(I + 1, Ok + 1, Err);
                _ -> L(I + 1, Ok, Err + 1)
            end
    end
end,
{Cycles, Ok, Err} = Loop(0, 0, 0),
io:format("cycles=~p ok=~p failed=~p ms=~p~n",
          [Cycles, Ok, Err, erlang:monotonic_time(millisecond) - T0]),
{ok, _} = net_kernel:start([cyc, shortnames]),
io:format("registered~n"),
io:get_line(""),
halt().
`

// erlCmd returns an erl command talking to the daemon on port, with a
// fixed cookie so that no ~/.erlang.cookie is read or written.
func erlCmd(ctx context.Context, erl string, port int, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, erl, append([]string{"-noshell", "-start_epmd", "false",
		"-setcookie", "gopmdtest", "-kernel", "logger_level", "emergency"}, args...)...)
	cmd.Env = append(cleanEnv(), "ERL_EPMD_PORT="+strconv.Itoa(port))
	return cmd
}

type cycleResult struct {
	cycles, ok, failed, ms int
	refused                int // duplicate-name refusals the daemon logged
}

var cycleLine = regexp.MustCompile(`cycles=(\d+) ok=(\d+) failed=(\d+) ms=(\d+)`)

// runErlCycles runs erlCycles against the daemon on port, then checks
// while the node holds its name that a second registration of it, from
// the Go client and from a second real node, is refused.
func runErlCycles(t *testing.T, erl string, port, cycles int, bound time.Duration, refusals func() int) cycleResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bound+60*time.Second)
	defer cancel()
	cmd := erlCmd(ctx, erl, port, "-eval", erlCycles, "-extra", strconv.Itoa(cycles), strconv.Itoa(int(bound.Milliseconds())))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	sc := bufio.NewScanner(stdout)
	var res cycleResult
	for sc.Scan() {
		line := sc.Text()
		if m := cycleLine.FindStringSubmatch(line); m != nil {
			res.cycles, _ = strconv.Atoi(m[1])
			res.ok, _ = strconv.Atoi(m[2])
			res.failed, _ = strconv.Atoi(m[3])
			res.ms, _ = strconv.Atoi(m[4])
			res.refused = refusals()
			continue
		}
		if line == "registered" {
			break
		}
	}
	if res.cycles == 0 {
		t.Fatalf("erl ended without a result: %v\n%s", sc.Err(), stderr.String())
	}
	// A live holder is still a duplicate, for the Go client...
	c := client.NewLocal(port)
	c.Timeout = 10 * time.Second
	if r, err := c.Register(context.Background(), node("cyc", 4242)); err == nil {
		r.Close()
		t.Errorf("port %d: a second registration of the live node cyc was accepted", port)
	} else if !errors.Is(err, client.ErrRefused) {
		t.Errorf("port %d: second registration of cyc: %v, want a refusal", port, err)
	}
	// ... and for a second real node.
	out, err := erlCmd(ctx, erl, port, "-sname", "cyc", "-eval", "halt().").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "in use") {
		t.Errorf("port %d: a second erl -sname cyc started (err %v): %s", port, err, out)
	}
	stdin.Close()
	io.Copy(io.Discard, stdout)
	return res
}

// TestErlFastRestartNeverRefused is the real-node version of
// TestFastRestartNeverRefused (erlang/otp#11083): an erl node stops and
// restarts distribution in a tight loop. Our daemon must never refuse it;
// the stock daemon's refusals, and those of our daemon with the grace
// period disabled (peek only), are figures.
func TestErlFastRestartNeverRefused(t *testing.T) {
	skipShort(t, "three runs of up to 2000 real-node restart cycles")
	erl := testenv.Program(t, "erl")
	stockBin := testenv.StockEpmd(t)
	const cycles, bound = 2000, 60 * time.Second

	run := func(name string, grace time.Duration) cycleResult {
		h := newCountHandler()
		_, port := startLoopbackServer(t, server.Config{ProbeGrace: grace, Logger: slog.New(h)})
		res := runErlCycles(t, erl, port, cycles, bound, func() int { return h.count(fsm.ReasonDuplicate) })
		figure(t, "restart/"+name, "%d of %d net_kernel restarts refused as duplicate_name (%d failed in all), %d ms",
			res.refused, res.cycles, res.failed, res.ms)
		// The live-duplicate checks at the end were refused: a counter
		// that saw none of them would count nothing above either.
		if h.count(fsm.ReasonDuplicate) <= res.refused {
			t.Errorf("%s: the refusal counter missed the live-duplicate refusals", name)
		}
		return res
	}
	ours := run("gopmd", 0)
	if ours.failed != 0 || ours.refused != 0 {
		t.Errorf("gopmd: %d of %d restarts failed, %d refused as duplicate_name; want none", ours.failed, ours.cycles, ours.refused)
	}
	run("gopmd-peek-only", -1)

	p := startDaemon(t, stock, stockBin, nil)
	res := runErlCycles(t, erl, p.port, cycles, bound, func() int {
		return strings.Count(p.out.String(), "node name already occupied cyc")
	})
	p.signal(syscall.SIGTERM)
	p.wait(5 * time.Second)
	// res.refused was counted before the live-duplicate checks, which
	// add refusals of their own to the log.
	figure(t, "restart/stock", "%d of %d net_kernel restarts refused as duplicate_name (%d failed in all), %d ms",
		res.refused, res.cycles, res.failed, res.ms)
}

// startDaemonOn runs bin on a given port (a restart), waiting up to 10 s
// for it to accept; it returns the process and how long that took.
func startDaemonOn(t *testing.T, kind daemonKind, bin string, port int, args ...string) (*proc, time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		p := startProc(t, string(kind), append([]string{bin, "-port", strconv.Itoa(port), "-address", "127.0.0.1"}, args...), nil)
		p.port = port
		if p.waitReady(10 * time.Second) {
			return p, time.Since(start)
		}
		if p.running() || time.Since(start) > 10*time.Second {
			t.Fatalf("%s restart on port %d not ready: %s\n%s", kind, port, p.status(), p.out.String())
		}
	}
}

// TestOrderlyShutdown stops a daemon process with SIGTERM, then with a
// (relaxed) KILL request, each time with Go-client registrations and a
// real erl node registered, and restarts it on the same port at once.
// Ours: every registration sees its connection closed, the listeners
// close, the exit status is 0, the restarted daemon is ready at once and
// the erl node re-registers by itself (erl_epmd retries every 2 s).
func TestOrderlyShutdown(t *testing.T) {
	erl := testenv.Program(t, "erl")
	for _, kind := range []daemonKind{gopmd, stock} {
		t.Run(string(kind), func(t *testing.T) { testOrderlyShutdown(t, kind, daemonPath(t, kind), erl) })
	}
}

func testOrderlyShutdown(t *testing.T, kind daemonKind, bin, erl string) {
	strict := kind == gopmd
	p := startDaemon(t, kind, bin, nil, "-relaxed_command_check")
	port := p.port
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// A real node, holding its name until its stdin closes.
	en := erlCmd(ctx, erl, port, "-sname", "shutnode", "-eval", `io:format("up~n"), io:get_line(""), halt().`)
	enIn, _ := en.StdinPipe()
	enOut, _ := en.StdoutPipe()
	if err := en.Start(); err != nil {
		t.Fatal(err)
	}
	defer en.Wait()
	defer enIn.Close()
	if sc := bufio.NewScanner(enOut); !sc.Scan() || sc.Text() != "up" {
		t.Fatalf("erl node did not start: %v", sc.Err())
	}
	go io.Copy(io.Discard, enOut)

	c := &client.Client{Addr: p.addr(), Timeout: 5 * time.Second}
	registerAll := func(what string) []*client.Registration {
		var regs []*client.Registration
		for i := 0; i < 5; i++ {
			r, err := c.Register(ctx, node("go"+strconv.Itoa(i), uint16(5000+i)))
			if err != nil {
				t.Fatalf("%s: register go%d: %v", what, i, err)
			}
			regs = append(regs, r)
		}
		return regs
	}
	// erlBack waits until the erl node is registered again and returns
	// how long that took.
	erlBack := func(what string, since time.Time) time.Duration {
		ok := settle(15*time.Second, func() bool {
			names, err := namesOf(p.addr())
			_, found := names["shutnode"]
			return err == nil && found
		})
		d := time.Since(since)
		if !ok {
			t.Errorf("%s: the erl node did not re-register within 15 s", what)
		}
		return d
	}
	erlBack("start", time.Now())

	for _, how := range []string{"SIGTERM", "KILL request"} {
		regs := registerAll(how)
		start := time.Now()
		if how == "SIGTERM" {
			p.signal(syscall.SIGTERM)
		} else if ok, err := c.Kill(ctx); err != nil || !ok {
			t.Fatalf("relaxed KILL: ok=%v err=%v", ok, err)
		}
		for i, r := range regs {
			select {
			case <-r.Done():
			case <-time.After(5 * time.Second):
				t.Errorf("%s: registration go%d still open 5 s after", how, i)
			}
		}
		closedAfter := time.Since(start)
		exited := p.wait(5 * time.Second)
		status := p.status()
		if strict && (!exited || status != "exit 0") {
			t.Errorf("%s: daemon %s, want exit 0\n%s", how, status, p.out.String())
		}
		if !exited {
			p.kill()
		}
		if nc, err := net.DialTimeout("tcp4", p.addr(), time.Second); err == nil {
			nc.Close()
			t.Errorf("%s: still accepting after exit", how)
		}

		restart := time.Now()
		var ready time.Duration
		p, ready = startDaemonOn(t, kind, bin, port, "-relaxed_command_check")
		regs = registerAll(how + ", after restart") // at once, no retry
		for _, r := range regs {
			r.Close()
		}
		back := erlBack(how+", after restart", restart)
		// erl_epmd retries every 2 s once its socket closed.
		if strict && back > 5*time.Second {
			t.Errorf("%s: the erl node re-registered only %.1f s after the restart", how, back.Seconds())
		}
		figure(t, "shutdown/"+string(kind)+"/"+how,
			"daemon %s, 5 registrations closed in %s, restart ready in %s, Go re-registration at once, erl node re-registered %.1f s after restart",
			status, ms(closedAfter), ms(ready), back.Seconds())
	}
	enIn.Close()
	p.signal(syscall.SIGTERM)
	p.wait(5 * time.Second)
}
