//go:build linux

package server_test

// Tests with real network namespaces: remote peers over a veth pair, and
// the stalled-NAMES test on a host whose socket send buffers cannot absorb
// the reply. They need root and iproute2 (`ip`), and skip otherwise.
//
// Traffic never leaves the namespaces the tests create: loopback and the
// veth pair, whose only addresses are 192.0.2.1 and 192.0.2.3 (side A) and
// 192.0.2.2 (side B), from the documentation range TEST-NET-1.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gopmd/gopmd/epmd/client"
	"github.com/gopmd/gopmd/epmd/internal/testenv"
	"github.com/gopmd/gopmd/epmd/wire"
)

const (
	vethA  = "192.0.2.1" // side A, where the daemon runs
	vethA2 = "192.0.2.3" // a second address of side A
	vethB  = "192.0.2.2" // side B, the remote peer
)

// netnsTool returns the ip command when this process may create network
// namespaces (root, iproute2 present, netns supported), and skips t
// otherwise.
func netnsTool(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	ip, err := execLookPath("ip")
	if err != nil {
		t.Skip("needs iproute2 (ip) to create network namespaces")
	}
	return ip
}

func uniqueSuffix() string {
	var b [4]byte
	rand.Read(b[:])
	return fmt.Sprintf("%x", b[:])
}

func run(t *testing.T, argv ...string) {
	t.Helper()
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
}

// addNetns creates a network namespace with its loopback up, deleted by
// t.Cleanup; it skips t when namespaces cannot be created here.
func addNetns(t *testing.T, ip, prefix string) string {
	t.Helper()
	ns := "gopmd-" + prefix + "-" + uniqueSuffix()
	if out, err := exec.Command(ip, "netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("cannot create a network namespace: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command(ip, "netns", "del", ns).Run() })
	run(t, ip, "-n", ns, "link", "set", "lo", "up")
	return ns
}

func inNetns(ip, ns string) []string { return []string{ip, "netns", "exec", ns} }

// vethPair creates two namespaces joined by a veth pair: A has 192.0.2.1
// and 192.0.2.3, B has 192.0.2.2.
func vethPair(t *testing.T, ip string) (nsA, nsB string) {
	t.Helper()
	nsA, nsB = addNetns(t, ip, "a"), addNetns(t, ip, "b")
	sfx := uniqueSuffix()
	a, b := "gpa"+sfx, "gpb"+sfx // at most 15 characters
	run(t, ip, "link", "add", a, "netns", nsA, "type", "veth", "peer", "name", b, "netns", nsB)
	run(t, ip, "-n", nsA, "addr", "add", vethA+"/24", "dev", a)
	run(t, ip, "-n", nsA, "addr", "add", vethA2+"/24", "dev", a)
	run(t, ip, "-n", nsB, "addr", "add", vethB+"/24", "dev", b)
	run(t, ip, "-n", nsA, "link", "set", a, "up")
	run(t, ip, "-n", nsB, "link", "set", b, "up")
	return nsA, nsB
}

// startNetnsDaemon runs a daemon inside ns on port 4369 (free in a new
// namespace); readiness is checked by the clients, which retry.
func startNetnsDaemon(t *testing.T, ip, ns string, kind daemonKind, bin string, args ...string) *proc {
	t.Helper()
	argv := append(inNetns(ip, ns), bin, "-port", "4369")
	p := startProc(t, string(kind)+" in "+ns, append(argv, args...), nil)
	p.port = 4369
	return p
}

// exchangeResult is what a raw request got: the reply and whether the
// daemon closed the connection.
type exchangeResult struct {
	Reply  []byte `json:"reply"`
	Closed bool   `json:"closed"`
	Err    string `json:"err,omitempty"`
}

func (r exchangeResult) String() string {
	if r.Err != "" {
		return "error " + r.Err
	}
	s := fmt.Sprintf("%d-byte reply", len(r.Reply))
	if len(r.Reply) == 0 {
		s = "no reply"
	}
	if r.Closed {
		return s + ", closed"
	}
	if len(r.Reply) == 0 {
		return s + ", left open"
	}
	return s + fmt.Sprintf(" %x", r.Reply)
}

// silent reports a silent close.
func (r exchangeResult) silent() bool { return r.Err == "" && len(r.Reply) == 0 && r.Closed }

// remoteReport is the output of the "remote" helper mode.
type remoteReport struct {
	Names      map[string]uint16 `json:"names"`
	NamesErr   string            `json:"names_err,omitempty"`
	Port2      uint16            `json:"port2"`
	Port2Err   string            `json:"port2_err,omitempty"`
	Alive2     exchangeResult    `json:"alive2"`
	Dump       exchangeResult    `json:"dump"`
	Kill       exchangeResult    `json:"kill"`
	Stop       exchangeResult    `json:"stop"`
	NamesAfter map[string]uint16 `json:"names_after"`
	Dial       map[string]string `json:"dial"` // address -> "ok" or the error
}

// rawExchange sends raw on a new connection and reads until close, 3 s,
// or (when full > 0) a reply of full bytes, after which a registration
// connection stays open.
func rawExchange(addr string, raw []byte, full int) exchangeResult {
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return exchangeResult{Err: err.Error()}
	}
	defer c.Close()
	c.Write(raw)
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	var b []byte
	buf := make([]byte, 512)
	for full <= 0 || len(b) < full {
		n, err := c.Read(buf)
		b = append(b, buf[:n]...)
		if err != nil {
			var ne net.Error
			return exchangeResult{Reply: b, Closed: !(errors.As(err, &ne) && ne.Timeout())}
		}
	}
	return exchangeResult{Reply: b}
}

// helperRemote is the client side of TestRemotePeerOverVeth, run inside a
// namespace: GOPMD_HELPER_PROBE lists addresses to try NAMES on;
// GOPMD_HELPER_ADDR is the daemon, waited for, then sent the requests of
// GOPMD_HELPER_STEPS: "names" (NAMES and PORT_PLEASE2 of
// GOPMD_HELPER_NAME), "alive2", "admin" (DUMP, KILL, STOP of that name).
// It prints one JSON remoteReport.
func helperRemote() error {
	addr := os.Getenv("GOPMD_HELPER_ADDR")
	steps := os.Getenv("GOPMD_HELPER_STEPS")
	rep := remoteReport{Dial: map[string]string{}}
	ctx := context.Background()
	for _, a := range strings.Fields(os.Getenv("GOPMD_HELPER_PROBE")) {
		_, err := (&client.Client{Addr: a, Timeout: 3 * time.Second}).NamesRaw(ctx)
		rep.Dial[a] = "ok"
		if err != nil {
			rep.Dial[a] = errKind(err)
		}
	}
	if addr != "" {
		// The daemon was just started: wait for it.
		settle(10*time.Second, func() bool {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
			}
			return err == nil
		})
		var err error
		if rep.Names, err = namesOf(addr); err != nil {
			rep.NamesErr = errKind(err)
		}
		n, err := (&client.Client{Addr: addr, Timeout: 3 * time.Second}).Lookup(ctx, os.Getenv("GOPMD_HELPER_NAME"))
		rep.Port2 = n.Port
		if err != nil {
			rep.Port2Err = errKind(err)
		}
		frame := func(r wire.Request) []byte { b, _ := wire.EncodeRequest(r); return b }
		if strings.Contains(steps, "alive2") {
			rep.Alive2 = rawExchange(addr, frame(&wire.Alive2Req{Node: node("intruder", 9999)}), 6)
		}
		if strings.Contains(steps, "admin") {
			rep.Dump = rawExchange(addr, frame(&wire.DumpReq{}), 0)
			rep.Kill = rawExchange(addr, frame(&wire.KillReq{}), 0)
			rep.Stop = rawExchange(addr, frame(&wire.StopReq{Name: os.Getenv("GOPMD_HELPER_NAME")}), 0)
		}
		time.Sleep(100 * time.Millisecond)
		rep.NamesAfter, _ = namesOf(addr)
	}
	return json.NewEncoder(os.Stdout).Encode(rep)
}

// remote runs the "remote" helper inside ns.
func remote(t *testing.T, ip, ns, addr, name, steps string, probe ...string) remoteReport {
	t.Helper()
	cmd := helperCmd(t, inNetns(ip, ns), "remote", "GOPMD_HELPER_ADDR="+addr, "GOPMD_HELPER_NAME="+name,
		"GOPMD_HELPER_STEPS="+steps, "GOPMD_HELPER_PROBE="+strings.Join(probe, " "))
	out, err := cmd.Output()
	var rep remoteReport
	if err != nil || json.Unmarshal(out, &rep) != nil {
		t.Fatalf("remote helper in %s: %v\n%s", ns, err, out)
	}
	return rep
}

// TestRemotePeerOverVeth runs the daemon in namespace A and its clients in
// namespace B, joined by a veth pair: a real non-local peer. Only
// PORT_PLEASE2 and NAMES are served to it; ALIVE2, DUMP, KILL and STOP get a
// silent close, with or without -relaxed_command_check. A client in A
// talking to A's own veth address is local (same-address rule). -address
// restricts where the daemon listens. Finally an erl node in B looks up and
// pings an erl node in A through A's daemon.
func TestRemotePeerOverVeth(t *testing.T) {
	ip := netnsTool(t)
	nsA, nsB := vethPair(t, ip)
	bins := map[daemonKind]string{gopmd: ourEpmd(t), stock: testenv.StockEpmd(t)}
	remoteA := net.JoinHostPort(vethA, "4369")

	for _, kind := range []daemonKind{gopmd, stock} {
		for _, relaxed := range []bool{false, true} {
			name := string(kind) + "/strict"
			var args []string
			if relaxed {
				name, args = string(kind)+"/relaxed", []string{"-relaxed_command_check"}
			}
			t.Run(name, func(t *testing.T) {
				d := startNetnsDaemon(t, ip, nsA, kind, bins[kind], args...)
				defer func() { d.kill() }()
				local, err := startHelperReg(t, inNetns(ip, nsA), "127.0.0.1:4369", "local1", 4242)
				if err != nil {
					t.Fatal(err)
				}
				defer local.close()
				rep := remote(t, ip, nsB, remoteA, "local1", "alive2 admin")
				figure(t, "remote/"+name, "from B: NAMES %v %s, PORT_PLEASE2 port %d %s; ALIVE2 %s; DUMP %s; KILL %s; STOP %s; afterwards NAMES %v, daemon running: %v",
					rep.Names, rep.NamesErr, rep.Port2, rep.Port2Err, rep.Alive2, rep.Dump, rep.Kill, rep.Stop, rep.NamesAfter, d.running())
				if kind == gopmd {
					if rep.Names["local1"] != 4242 || rep.Port2 != 4242 {
						t.Errorf("remote NAMES %v (%s) and PORT_PLEASE2 %d (%s): want local1 at 4242",
							rep.Names, rep.NamesErr, rep.Port2, rep.Port2Err)
					}
					for what, r := range map[string]exchangeResult{"ALIVE2": rep.Alive2, "DUMP": rep.Dump, "KILL": rep.Kill, "STOP": rep.Stop} {
						if !r.silent() {
							t.Errorf("remote %s: %s, want a silent close", what, r)
						}
					}
					if len(rep.NamesAfter) != 1 || rep.NamesAfter["local1"] != 4242 || !d.running() {
						t.Errorf("after the remote requests: NAMES %v, daemon running %v", rep.NamesAfter, d.running())
					}
				}
				// A's own veth address, from A: the same-address rule
				// makes the peer local, so ALIVE2 is served.
				self := remote(t, ip, nsA, net.JoinHostPort(vethA, "4369"), "local1", "alive2")
				figure(t, "remote/"+name+"/same-address", "from A to %s: ALIVE2 %s", vethA, self.Alive2)
				if kind != gopmd {
					return
				}
				if len(self.Alive2.Reply) != 6 || self.Alive2.Reply[1] != 0 {
					t.Errorf("ALIVE2 from A to its own address: %s, want a reply", self.Alive2)
				}
			})
		}
	}

	t.Run("address", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want map[string]string
		}{
			{nil, map[string]string{vethA: "ok", vethA2: "ok"}},
			{[]string{"-address", vethA}, map[string]string{vethA: "ok", vethA2: "connection refused"}},
			{[]string{"-address", "127.0.0.1"}, map[string]string{vethA: "connection refused", vethA2: "connection refused"}},
		} {
			for _, kind := range []daemonKind{gopmd, stock} {
				d := startNetnsDaemon(t, ip, nsA, kind, bins[kind], tc.args...)
				local := remote(t, ip, nsA, "127.0.0.1:4369", "none", "names") // waits until ready
				probe := []string{net.JoinHostPort(vethA, "4369"), net.JoinHostPort(vethA2, "4369")}
				rep := remote(t, ip, nsB, "", "", "", probe...)
				got := map[string]string{vethA: rep.Dial[probe[0]], vethA2: rep.Dial[probe[1]]}
				figure(t, "address/"+string(kind), "%v: from B %s %s, %s %s; from A 127.0.0.1 NAMES ok: %v",
					tc.args, vethA, got[vethA], vethA2, got[vethA2], local.NamesErr == "")
				if kind == gopmd && (got[vethA] != tc.want[vethA] || got[vethA2] != tc.want[vethA2] || local.NamesErr != "") {
					t.Errorf("%v: from B %v, want %v; local NAMES error %q", tc.args, got, tc.want, local.NamesErr)
				}
				d.kill()
			}
		}
	})

	t.Run("erl", func(t *testing.T) {
		skipShort(t, "two real erl nodes")
		erl := testenv.Program(t, "erl")
		for _, ns := range []string{nsA, nsB} {
			d := startNetnsDaemon(t, ip, ns, gopmd, bins[gopmd])
			defer d.kill()
		}
		remote(t, ip, nsA, "127.0.0.1:4369", "none", "names") // wait until ready
		remote(t, ip, nsB, "127.0.0.1:4369", "none", "names")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		erlArgs := func(ns, name string, eval string) *exec.Cmd {
			argv := append(inNetns(ip, ns), erl, "-noshell", "-start_epmd", "false", "-setcookie", "gopmdtest",
				"-kernel", "logger_level", "emergency", "-name", name, "-eval", eval)
			cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
			cmd.Env = cleanEnv()
			return cmd
		}
		a := erlArgs(nsA, "a@"+vethA, `io:format("up~n"), io:get_line(""), halt().`)
		aIn, _ := a.StdinPipe()
		aOut, _ := a.StdoutPipe()
		if err := a.Start(); err != nil {
			t.Fatal(err)
		}
		defer a.Wait()
		defer aIn.Close()
		if sc := bufio.NewScanner(aOut); !sc.Scan() || sc.Text() != "up" {
			t.Fatalf("erl node a in %s did not start", nsA)
		}
		go io.Copy(io.Discard, aOut)
		out, err := erlArgs(nsB, "b@"+vethB, `
			io:format("names ~p~n", [net_adm:names("`+vethA+`")]),
			io:format("ping ~p~n", [net_adm:ping('a@`+vethA+`')]),
			io:format("rpc ~p~n", [rpc:call('a@`+vethA+`', erlang, node, [])]),
			halt().`).CombinedOutput()
		text := strings.TrimSpace(string(out))
		figure(t, "remote/erl", "node b@%s (namespace B) through the daemon at %s: %s", vethB, vethA, strings.ReplaceAll(text, "\n", "; "))
		for _, want := range []string{`names {ok,[{"a",`, "ping pong", "rpc 'a@" + vethA + "'"} {
			if !strings.Contains(text, want) {
				t.Errorf("erl b: %v: output lacks %q:\n%s", err, want, text)
			}
		}
	})
}

// inNetnsEnv marks a test re-executed inside a namespace by runInNetns.
const inNetnsEnv = "GOPMD_IN_NETNS"

// runInNetns re-runs the current test inside a new network namespace whose
// sysctls are set by setup (name=value), relaying its output; it reports
// false when the test is already inside one, or when no namespace can be
// made (then the test runs here, in the host namespace).
func runInNetns(t *testing.T, sysctls ...string) bool {
	t.Helper()
	if os.Getenv(inNetnsEnv) != "" || os.Geteuid() != 0 {
		return false
	}
	ip, err := execLookPath("ip")
	if err != nil {
		return false
	}
	ns := "gopmd-t-" + uniqueSuffix()
	if exec.Command(ip, "netns", "add", ns).Run() != nil {
		return false
	}
	t.Cleanup(func() { exec.Command(ip, "netns", "del", ns).Run() })
	run(t, ip, "-n", ns, "link", "set", "lo", "up")
	for _, s := range sysctls {
		run(t, append(inNetns(ip, ns), "sysctl", "-q", "-w", s)...)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	argv := append(inNetns(ip, ns), exe, "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1")
	cmd := exec.Command(argv[0], argv[1:]...)
	// The daemon binary is built once, out here.
	cmd.Env = append(os.Environ(), inNetnsEnv+"="+strings.Join(sysctls, " "), "GOPMD_EPMD_BIN="+ourEpmd(t), noRaceExitSleep())
	out, err := cmd.CombinedOutput()
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		if l := strings.TrimSpace(line); strings.Contains(l, "FIGURE") || strings.Contains(l, "Error") ||
			strings.HasPrefix(l, "---") || strings.Contains(l, "_test.go") {
			t.Log(l)
		}
	}
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Errorf("in namespace %s (%s): %v", ns, strings.Join(sysctls, " "), err)
		} else {
			t.Fatal(err)
		}
	}
	return true
}
