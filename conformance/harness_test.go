package conformance

import (
	"context"
	"net"
	"os"
	"reflect"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fake is a Target that starts the test binary as a fake epmd (fakeEpmd)
// in the given mode, through a command template.
func fake(mode string) Target {
	return Target{
		Path:    os.Args[0],
		Flavour: Stock,
		Release: DefaultRelease,
		Command: []string{fakeEnv + "=" + mode, "{epmd}", "{args}"},
		Limits:  Limits{Start: 3 * time.Second, Step: 3 * time.Second, Case: 30 * time.Second},
	}
}

func parseCase(t *testing.T, file, text string) *Case {
	t.Helper()
	f, err := ParseFile(file, text)
	if err != nil {
		t.Fatal(err)
	}
	return f.Cases[0]
}

func builtin(t *testing.T, name string) *Case {
	t.Helper()
	files, err := Load(Scripts)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range Cases(files) {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no case %s", name)
	return nil
}

const registers = `daemon
open c
send c alive2 name=a port=1234
expect c alive2 v result=0 creation=now
open q
send q "za"
expect q bytes 77 00 04 d2
`

// A daemon that ignores -daemon never lets its launcher return: the case
// ends as TIMEOUT, saying what it waited for, in bounded time.
func TestIgnoredDetachIsTimeout(t *testing.T) {
	start := time.Now()
	o := RunCase(context.Background(), fake("y"), builtin(t, "daemon_mode/detaches"), nil)
	if o.Status != Timeout || !strings.Contains(o.Reason, "launching process") {
		t.Errorf("status %v, reason %q; want TIMEOUT waiting for the launching process", o.Status, o.Reason)
	}
	if d := time.Since(start); d > 3*time.Second+stopWait+5*time.Second {
		t.Errorf("took %v", d)
	}
}

// A daemon that dies on a request is a CRASH, with its exit status and the
// end of its output, even where a closed connection is what the case
// expects.
func TestPanicIsCrash(t *testing.T) {
	for _, c := range []*Case{
		parseCase(t, "alive2.txt", registers),
		// Stock closes this malformed ALIVE2 silently; the fake panics on
		// it, which also closes the connection.
		builtin(t, "alive2/payload_13_bytes"),
	} {
		o := RunCase(context.Background(), fake("panic"), c, nil)
		if o.Status != Crash || !strings.Contains(o.Reason, "exit status 2") || !strings.Contains(o.Reason, "panic") {
			t.Errorf("%s: status %v, reason %q; want CRASH with exit status 2 and the panic", c.Name, o.Status, o.Reason)
		}
	}
}

// A setup that fails on a capability the case is not about blocks the
// case; the same failure in a case about that capability fails it.
func TestBlockedByCapability(t *testing.T) {
	o := RunCase(context.Background(), fake("y"), parseCase(t, "stop.txt", registers), nil)
	if o.Status != Blocked || o.BlockedBy != "alive2-v" || !strings.Contains(o.Reason, "ALIVE2 v reply") {
		t.Errorf("stop.txt: status %v by %q, reason %q; want BLOCKED by alive2-v", o.Status, o.BlockedBy, o.Reason)
	}
	o = RunCase(context.Background(), fake("y"), parseCase(t, "alive2.txt", registers), nil)
	if o.Status != Fail {
		t.Errorf("alive2.txt: status %v, reason %q; want FAIL", o.Status, o.Reason)
	}
	// A NAMES reply that does not parse blocks a case not about NAMES.
	o = RunCase(context.Background(), fake("nonames"), parseCase(t, "dump.txt", "daemon\nexpect names\n"), nil)
	if o.Status != Blocked || o.BlockedBy != "names" {
		t.Errorf("dump.txt: status %v by %q, reason %q; want BLOCKED by names", o.Status, o.BlockedBy, o.Reason)
	}
}

// The readiness probe does not need NAMES; -probe names does.
func TestProbeWithoutNames(t *testing.T) {
	c := parseCase(t, "x.txt", "daemon\nopen c\n")
	if o := RunCase(context.Background(), fake("nonames"), c, nil); o.Status != Pass {
		t.Errorf("port-please probe: %v %s", o.Status, o.Reason)
	}
	tg := fake("nonames")
	tg.Probe = ProbeNames
	tg.Limits.Start = time.Second
	if o := RunCase(context.Background(), tg, c, nil); o.Status != Timeout || !strings.Contains(o.Reason, "names probe") {
		t.Errorf("names probe: %v %q, want TIMEOUT waiting for the names probe", o.Status, o.Reason)
	}
}

// A daemon that accepts and never answers is a TIMEOUT at its start.
func TestMuteDaemonIsTimeout(t *testing.T) {
	tg := fake("mute")
	tg.Limits.Start = time.Second
	o := RunCase(context.Background(), tg, parseCase(t, "x.txt", "daemon\n"), nil)
	if o.Status != Timeout || !strings.Contains(o.Reason, "port-please probe") {
		t.Errorf("status %v, reason %q", o.Status, o.Reason)
	}
}

// The case limit ends a case in the middle of a step, naming the step.
func TestCaseLimit(t *testing.T) {
	tg := fake("y")
	tg.Limits.Case = 3 * time.Second
	start := time.Now()
	o := RunCase(context.Background(), tg, parseCase(t, "x.txt", "daemon\nsleep 30s\n"), nil)
	// On a loaded machine the limit may strike during the start (line 1).
	if o.Status != Timeout || !strings.Contains(o.Reason, "case limit") || (o.Line == 2) != (o.Step == "sleep 30s") || o.Line == 0 {
		t.Errorf("status %v, line %d, step %q, reason %q", o.Status, o.Line, o.Step, o.Reason)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v", d)
	}
}

// The run's context ending stops a case at once, as TIMEOUT.
func TestRunLimit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	o := RunCase(ctx, fake("y"), parseCase(t, "x.txt", "daemon\nsleep 30s\n"), nil)
	if o.Status != Timeout {
		t.Errorf("status %v, reason %q", o.Status, o.Reason)
	}
}

// A child of the daemon that keeps its output open is killed with it:
// the case ends promptly.
func TestDaemonGroupKilled(t *testing.T) {
	start := time.Now()
	o := RunCase(context.Background(), fake("stderrkid"), parseCase(t, "x.txt", "daemon\nopen c\n"), nil)
	if o.Status != Pass {
		t.Errorf("status %v, reason %q", o.Status, o.Reason)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v: the daemon's child held the case", d)
	}
}

// Declared missing capabilities skip the cases that need them; a template
// without {args} skips the cases with daemon flags.
func TestCapabilitiesAndTemplates(t *testing.T) {
	tg := fake("y")
	tg.Without = Capabilities{"cli": true}
	o := RunCase(context.Background(), tg, builtin(t, "daemon_mode/detaches"), nil)
	if o.Status != Skip || !strings.Contains(o.Reason, "CLI") {
		t.Errorf("without cli: %v %q", o.Status, o.Reason)
	}
	tg = fake("y")
	tg.Command = []string{fakeEnv + "=y", "{epmd}", "-port", "{port}"}
	o = RunCase(context.Background(), tg, parseCase(t, "x.txt", "daemon -relaxed_command_check\n"), nil)
	if o.Status != Skip || !strings.Contains(o.Reason, "{args}") {
		t.Errorf("template without {args}: %v %q", o.Status, o.Reason)
	}
	o = RunCase(context.Background(), tg, parseCase(t, "x.txt", "daemon\nopen c\n"), nil)
	if o.Status != Pass {
		t.Errorf("template with {port}: %v %q", o.Status, o.Reason)
	}
}

func TestDaemonCommand(t *testing.T) {
	tg := Target{Path: "/x/epmd", Command: []string{"A=1", "B={port}", "wrap", "--listen=127.0.0.1:{port}", "{epmd}", "{args}"}}
	argv, env, err := tg.daemonCommand(4000, false, []string{"-d"})
	if err != nil || !reflect.DeepEqual(argv, []string{"wrap", "--listen=127.0.0.1:4000", "/x/epmd", "-d"}) || !reflect.DeepEqual(env, []string{"A=1", "B=4000"}) {
		t.Errorf("argv %q env %q err %v", argv, env, err)
	}
	tg.Command = []string{"{epmd}", "{args}"}
	argv, _, _ = tg.daemonCommand(4000, false, []string{"-d"})
	if !reflect.DeepEqual(argv, []string{"/x/epmd", "-port", "4000", "-d"}) {
		t.Errorf("argv %q", argv)
	}
	argv, _, _ = (Target{Path: "/x/epmd"}).daemonCommand(4000, true, []string{"-port", "5"})
	if !reflect.DeepEqual(argv, []string{"/x/epmd", "-port", "5"}) {
		t.Errorf("explicit port: argv %q", argv)
	}
}

func TestConditions(t *testing.T) {
	for _, c := range []struct {
		text    string
		flavour string
		release int
		want    bool
	}{
		{"[stock]", Stock, 25, true},
		{"[stock]", Gopmd, 29, false},
		{"[otp>=27]", Stock, 27, true},
		{"[otp>=27]", Stock, 25, false},
		{"[otp>=27]", Gopmd, 29, true},
		{"[otp<27]", Stock, 25, true},
		{"[otp<27]", Stock, 0, false},
		{"[stock otp=29]", Stock, 29, true},
		{"[stock] [otp!=29]", Stock, 29, false},
		{"[otp<=25]", Stock, 25, true},
		{"[otp>25]", Stock, 25, false},
	} {
		cond, rest, err := cutConditions(c.text + " expect names")
		if err != nil || rest != "expect names" || cond.text != c.text {
			t.Fatalf("%s: %+v %q %v", c.text, cond, rest, err)
		}
		if got := cond.holds(c.flavour, c.release); got != c.want {
			t.Errorf("%s for %s %d = %v, want %v", c.text, c.flavour, c.release, got, c.want)
		}
	}
	for _, bad := range []string{"[]", "[otp]", "[otp>=x]", "[otp~27]", "[stock gopmd]", "[beam]", "[stock", "[otp=1000]"} {
		if _, _, err := cutConditions(bad + " expect names"); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
	// In a script: a case whose stock lines differ by release.
	f, err := ParseFile("r.txt", "daemon\n[otp<27] expect names\n[otp>=27] [stock] expect names a 1\n")
	if err != nil {
		t.Fatal(err)
	}
	if s := f.Cases[0].steps; !s[0].pos().cond.holds(Stock, 25) || s[1].pos().cond.holds(Stock, 25) || !s[1].pos().cond.holds(Stock, 29) {
		t.Error("conditions not attached to their steps")
	}
}

func TestParseCapabilities(t *testing.T) {
	cs, err := ParseCapabilities("cli, dump  -relaxed_command_check,ipv6")
	if err != nil || !reflect.DeepEqual(cs, Capabilities{"cli": true, "dump": true, "-relaxed_command_check": true, "ipv6": true}) {
		t.Errorf("%v %v", cs, err)
	}
	for _, bad := range []string{"clii", "cli,--x", "-", "names;dump"} {
		if _, err := ParseCapabilities(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	if cs, err := ParseCapabilities(" , "); err != nil || len(cs) != 0 {
		t.Errorf("empty list: %v %v", cs, err)
	}
}

func TestNeeds(t *testing.T) {
	for name, want := range map[string][]string{
		"daemon_mode/detaches": {"-daemon", "daemon-mode", "names", "cli"},
		"kill/empty_daemon":    {"kill", "exit"},
	} {
		if got := builtin(t, name).needs; !reflect.DeepEqual(got, want) {
			t.Errorf("%s needs %q, want %q", name, got, want)
		}
	}
}

func TestParseExpected(t *testing.T) {
	es, err := ParseExpected("e", "# ours\n\nstop/*   we never stop nodes\nalive2/v_for_high_6 answers y\t(pre-OTP 23)\n")
	if err != nil || len(es) != 2 || es[0].Pattern != "stop/*" || es[0].Reason != "we never stop nodes" || es[1].Reason != "answers y\t(pre-OTP 23)" || es[1].Line != 4 {
		t.Fatalf("%+v %v", es, err)
	}
	if e := expectedFor(es, "stop/relaxed"); e == nil || e.Line != 3 {
		t.Errorf("stop/relaxed: %+v", e)
	}
	if e := expectedFor(es, "names/empty"); e != nil {
		t.Errorf("names/empty: %+v", e)
	}
	for _, bad := range []string{"stop/*\n", "[ reason\n"} {
		if _, err := ParseExpected("e", bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestParseCommandTemplate(t *testing.T) {
	for in, want := range map[string][]string{
		`{epmd} {args}`: {"{epmd}", "{args}"},
		`erl -noshell -eval "epmd:main(init:get_plain_arguments())" -extra {args}`: {"erl", "-noshell", "-eval", "epmd:main(init:get_plain_arguments())", "-extra", "{args}"},
		`PORT={port} 'my epmd' --listen=127.0.0.1:{port} a\ b "q\"x\\y"`:           {"PORT={port}", "my epmd", "--listen=127.0.0.1:{port}", "a b", `q"x\y`},
		"  x  ": {"x"},
	} {
		got, err := ParseCommandTemplate(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %q %v, want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "A=1", `'x`, `"x`, `x\`, "x --a={args}", "x {prot}"} {
		if _, err := ParseCommandTemplate(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestDetectRelease(t *testing.T) {
	for path, want := range map[string]int{
		"/usr/lib/erlang/erts-13.1.5/bin/epmd":         25,
		"/opt/x/usr/lib/erlang/erts-15.2.7.1/bin/epmd": 27,
		"/root/.cache/gopmd/otp-oracles/otp29/epmd":    29,
		"/opt/otp-26/bin/epmd":                         26,
		"/usr/local/bin/epmd":                          0,
	} {
		if got := releaseIn(path); got != want {
			t.Errorf("%s: %d, want %d", path, got, want)
		}
	}
	dir := t.TempDir()
	w := dir + "/epmd"
	os.WriteFile(w, []byte("#!/bin/sh\nexec /x/ld.so /x/usr/lib/erlang/erts-17.0.2/bin/epmd \"$@\"\n"), 0o755)
	if got := DetectRelease(w); got != 29 {
		t.Errorf("wrapper: %d, want 29", got)
	}
}

// Against a running daemon that does not answer, the run stops before
// the first case, with the reason, and nothing is run.
func TestAddrModeStopsWhenDaemonGone(t *testing.T) {
	p, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Target: Target{Addr: "127.0.0.1:" + strconv.Itoa(p), Flavour: Stock, Limits: Limits{Start: 300 * time.Millisecond}}, Run: regexp.MustCompile(`^names/|^port_please/`)}
	files, _ := Load(Scripts)
	rs := RunSuite(context.Background(), cfg, Cases(files), nil)
	if len(rs) == 0 {
		t.Fatal("no results")
	}
	stopped := 0
	for _, r := range rs {
		switch {
		case r.NotRun && strings.Contains(r.Reason, "does not answer"):
			stopped++
		case !r.Case.Shared && r.Verdict == VerdictSkip:
			// Never run against -addr: it needs a daemon of its own.
		default:
			t.Errorf("%s", r.Line())
		}
	}
	if stopped == 0 {
		t.Error("no case was stopped for the daemon that does not answer")
	}
}

func TestJudgeExpected(t *testing.T) {
	c := &Case{Name: "stop/x"}
	res := &Result{Case: c, Target: &Outcome{Status: Fail, Reason: "r"}}
	judge(res, Config{Expected: []Expected{{Pattern: "stop/*", Reason: "no STOP"}}})
	if res.Verdict != VerdictDiff || res.Expected == nil || res.Line() != "DIFF stop/x (expected: no STOP)" {
		t.Errorf("%+v %s", res, res.Line())
	}
	res = &Result{Case: c, Target: &Outcome{Status: Crash, Reason: "r"}}
	judge(res, Config{Expected: []Expected{{Pattern: "stop/*", Reason: "no STOP"}}})
	if res.Verdict != VerdictCrash {
		t.Errorf("a crash stays a crash: %s", res.Line())
	}
}

// -addr takes an IPv6 address: the shared cases run over [::1].
func TestAddrIPv6(t *testing.T) {
	if !HaveIPv6() {
		t.Skip("no IPv6 loopback")
	}
	d := startTestDaemon(t, requireStock(t))
	cfg := Config{Target: Target{Addr: "[::1]:" + strconv.Itoa(d.dialPort), Flavour: Stock, Release: DefaultRelease}, Run: regexp.MustCompile(`^(port_please|garbage)/`)}
	rs := RunSuite(context.Background(), cfg, Cases(loadSuite(t)), nil)
	ran := 0
	for _, r := range rs {
		switch r.Verdict {
		case VerdictPass:
			ran++
		case VerdictSkip:
			if r.Case.Shared {
				t.Errorf("%s", r.Line())
			}
		default:
			t.Errorf("%s", r.Line())
		}
	}
	if ran < 5 {
		t.Errorf("only %d cases ran", ran)
	}
}

// -ports confines the ports handed out, and hands them out again once
// the range is used up.
func TestPortRange(t *testing.T) {
	lo, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	if err := SetPortRange(lo, lo); err != nil {
		t.Fatal(err)
	}
	defer func() {
		portsMu.Lock()
		portLo, portHi = 0, 0
		portsMu.Unlock()
	}()
	for i := 0; i < 3; i++ {
		if p, err := freePort(); err != nil || p != lo {
			t.Fatalf("freePort() = %d, %v; want %d", p, err, lo)
		}
	}
	for _, bad := range [][2]int{{0, 10}, {10, 5}, {1, 65536}} {
		if SetPortRange(bad[0], bad[1]) == nil {
			t.Errorf("SetPortRange(%d, %d) accepted", bad[0], bad[1])
		}
	}
}

// A detached daemon that ignores KILL_REQ is still stopped: the process
// listening on its port, reparented to the suite, is killed.
func TestDetachedIgnoringKillIsStopped(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs a subreaper (Linux)")
	}
	becomeSubreaper()
	tg := fake("detach")
	var port int64
	c := parseCase(t, "daemon_mode.txt", "daemon -daemon\nopen c\nsend c \"za\"\nexpect c bytes 77 01\n")
	start := time.Now()
	o := runCaseVars(t, tg, c, &port)
	if o.Status != Pass {
		t.Errorf("status %v, reason %q\n%s", o.Status, o.Reason, strings.Join(o.Transcript, "\n"))
	}
	if d := time.Since(start); d > stopWait+10*time.Second {
		t.Errorf("took %v", d)
	}
	if conn, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(int(port)), time.Second); err == nil {
		conn.Close()
		t.Errorf("the detached daemon still listens on %d", port)
	}
}

// runCaseVars runs a case and reports the port its daemon was given.
func runCaseVars(t *testing.T, tg Target, c *Case, port *int64) *Outcome {
	t.Helper()
	o := RunCase(context.Background(), tg, c, nil)
	for _, l := range o.Transcript {
		if _, after, ok := strings.Cut(l, "listening on "); ok {
			n, _ := strconv.Atoi(after)
			*port = int64(n)
		}
	}
	if *port == 0 {
		t.Fatalf("no port in the transcript: %q", o.Transcript)
	}
	return o
}
