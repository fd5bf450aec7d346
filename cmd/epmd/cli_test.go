package main

import (
	"bytes"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The interactive rows of the stock behaviour table (facts §9.4). Each row
// runs our command-line client and stock's, each against our daemon and
// stock's (every daemon on its own port), and all four must print exactly
// the expected bytes.

// daemonCLI runs a scenario for every (daemon, CLI) pair. setup starts
// from a fresh daemon on port and returns the CLI arguments (after -port)
// and environment; check gets the CLI's result with the port spelled PORT
// and DUMP's file descriptor numbers masked.
type daemonCLI struct {
	name       string
	daemonArgs []string
	daemonEnv  []string
	setup      func(t *testing.T, port int) (args []string)
	want       result
	after      func(t *testing.T, d *daemonProc, port int) // optional
}

var dumpFd = regexp.MustCompile(`fd = \d+`)

func runDaemonCLI(t *testing.T, sc daemonCLI) {
	t.Helper()
	for _, dm := range impls() {
		for _, cli := range impls() {
			t.Run(dm.name+"_daemon/"+cli.name+"_cli", func(t *testing.T) {
				t.Parallel()
				d, port := startDaemon(t, dm.bin, sc.daemonEnv, sc.daemonArgs...)
				args := append(portArgs(port), sc.setup(t, port)...)
				got := runBin(t, cli.bin, nil, args...)
				got.stdout = strings.ReplaceAll(got.stdout, strconv.Itoa(port), "PORT")
				got.stdout = dumpFd.ReplaceAllString(got.stdout, "fd = N")
				want(t, strings.Join(args, " "), got, sc.want)
				if sc.after != nil {
					sc.after(t, d, port)
				}
			})
		}
	}
}

func noSetup(args ...string) func(*testing.T, int) []string {
	return func(*testing.T, int) []string { return args }
}

// twoNodes registers alpha then beta.
func twoNodes(args ...string) func(*testing.T, int) []string {
	return func(t *testing.T, port int) []string {
		register(t, port, "alpha", 5555)
		register(t, port, "beta", 6666)
		return args
	}
}

const header = "epmd: up and running on port PORT with data:\n"

func TestCLIAgainstDaemons(t *testing.T) {
	t.Parallel()
	longName := strings.Repeat("n", 1000)
	for _, sc := range []daemonCLI{
		{name: "names_empty", setup: noSetup("-names"), want: result{stdout: header}},
		{name: "names_two_nodes", setup: twoNodes("-names"),
			want: result{stdout: header + "name beta at port 6666\nname alpha at port 5555\n"}},
		{name: "started_running", setup: noSetup("-started"), want: result{}},
		{name: "dump_empty", setup: noSetup("-dump"), want: result{stdout: header}},
		{name: "dump_two_nodes", setup: twoNodes("-dump"),
			want: result{stdout: header +
				"active name     <beta> at port 6666, fd = N\n\x00" +
				"active name     <alpha> at port 5555, fd = N\n\x00"}},
		{name: "kill_empty", setup: noSetup("-kill"), want: result{stdout: "Killed\n"},
			after: func(t *testing.T, d *daemonProc, port int) {
				if code := d.wait(t); code != 0 {
					t.Errorf("daemon exit status %d after KILL, want 0", code)
				}
			}},
		{name: "kill_refused", setup: twoNodes("-kill"),
			want: result{stdout: "Killing not allowed - living nodes in database.\n", code: 1}},
		{name: "kill_relaxed", daemonArgs: []string{"-relaxed_command_check"}, setup: twoNodes("-kill"),
			want: result{stdout: "Killed\n"},
			after: func(t *testing.T, d *daemonProc, port int) {
				if code := d.wait(t); code != 0 {
					t.Errorf("daemon exit status %d after KILL, want 0", code)
				}
			}},
		{name: "stop_existing", daemonArgs: []string{"-relaxed_command_check"}, setup: twoNodes("-stop", "alpha"),
			want: result{stdout: "STOPPED\n"}},
		{name: "stop_unknown", daemonArgs: []string{"-relaxed_command_check"}, setup: noSetup("-stop", "nosuch"),
			want: result{stdout: "NOEXIST\n"}},
		{name: "stop_relaxed_by_env", daemonEnv: []string{envRelaxed + "="}, setup: noSetup("-stop", "nosuch"),
			want: result{stdout: "NOEXIST\n"}},
		{name: "stop_not_relaxed", setup: twoNodes("-stop", "alpha"),
			want: result{stdout: "epmd: local epmd responded with <>\n", code: 1}},
		{name: "stop_empty_name", daemonArgs: []string{"-relaxed_command_check"}, setup: noSetup("-stop", ""),
			want: result{stdout: "epmd: local epmd responded with <>\n", code: 1}},
		{name: "stop_1000_bytes", daemonArgs: []string{"-relaxed_command_check"}, setup: noSetup("-stop", longName),
			want: result{stdout: "NOEXIST\n"}},
		{name: "stop_1001_bytes", daemonArgs: []string{"-relaxed_command_check"}, setup: noSetup("-stop", longName+"n"),
			want: result{stdout: "epmd: Name too long!", code: 1}},
	} {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			runDaemonCLI(t, sc)
		})
	}
}

func TestCLIStopUnregisters(t *testing.T) {
	t.Parallel()
	for _, cli := range impls() {
		t.Run(cli.name, func(t *testing.T) {
			t.Parallel()
			_, port := startDaemon(t, ourBin, nil, "-relaxed_command_check")
			r := register(t, port, "alpha", 5555)
			want(t, "stop", runBin(t, cli.bin, nil, append(portArgs(port), "-stop", "alpha")...), result{stdout: "STOPPED\n"})
			select {
			case <-r.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("registration still open after STOP")
			}
			want(t, "names", runBin(t, cli.bin, nil, append(portArgs(port), "-names")...),
				result{stdout: "epmd: up and running on port " + strconv.Itoa(port) + " with data:\n"})
		})
	}
}

func TestCLICannotConnect(t *testing.T) {
	t.Parallel()
	const msg = "epmd: Cannot connect to local epmd\n"
	for _, tc := range []struct {
		args []string
		want result
	}{
		{[]string{"-names"}, result{stderr: msg, code: 1}},
		{[]string{"-dump"}, result{stderr: msg, code: 1}},
		{[]string{"-kill"}, result{stderr: msg, code: 1}},
		{[]string{"-stop", "x"}, result{stderr: msg, code: 1}},
		{[]string{"-started"}, result{code: 1}}, // silent
		{[]string{"-stop", strings.Repeat("x", 1001)}, result{stdout: "epmd: Name too long!", code: 1}},
	} {
		for _, cli := range impls() {
			t.Run(tc.args[0]+"/"+cli.name, func(t *testing.T) {
				t.Parallel()
				port := freePort(t)
				args := append(portArgs(port), tc.args...)
				want(t, cli.name+" "+tc.args[0], runBin(t, cli.bin, nil, args...), tc.want)
			})
		}
	}
}

// fakeDaemon accepts connections on 127.0.0.1:port only (so the client's
// first try, [::1], is refused) and answers each with reply. It records
// the request bytes it read.
type fakeDaemon struct {
	ln  net.Listener
	mu  sync.Mutex
	got [][]byte
}

func startFake(t *testing.T, reply func(c *net.TCPConn)) (*fakeDaemon, int) {
	t.Helper()
	var ln net.Listener
	var port int
	for i := 0; ln == nil; i++ {
		port = freePort(t)
		var err error
		if ln, err = net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(port)); err != nil && i == startAttempts {
			t.Fatal(err)
		}
	}
	f := &fakeDaemon{ln: ln}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				var hdr [2]byte
				if _, err := io.ReadFull(c, hdr[:]); err != nil {
					return
				}
				body := make([]byte, int(hdr[0])<<8|int(hdr[1]))
				if _, err := io.ReadFull(c, body); err != nil {
					return
				}
				f.mu.Lock()
				f.got = append(f.got, append(hdr[:], body...))
				f.mu.Unlock()
				reply(c.(*net.TCPConn))
			}()
		}
	}()
	return f, port
}

func (f *fakeDaemon) requests() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]byte(nil), f.got...)
}

// Replies for the fake daemon.
func replyWith(parts ...string) func(*net.TCPConn) {
	return func(c *net.TCPConn) {
		for i, p := range parts {
			if i > 0 {
				time.Sleep(100 * time.Millisecond) // a separate segment, read separately
			}
			c.Write([]byte(p))
		}
	}
}

func reset(c *net.TCPConn) { c.SetLinger(0) } // the deferred Close then sends RST

func TestCLIOddReplies(t *testing.T) {
	t.Parallel()
	const noResp = "epmd: no response from local epmd\n"
	const empty = "epmd: local epmd responded with <>\n"
	const readFailed = "epmd: failed to read answer from local epmd\n"
	port4 := func(p uint32) string { return string([]byte{byte(p >> 24), byte(p >> 16), byte(p >> 8), byte(p)}) }
	for _, tc := range []struct {
		name    string
		args    []string
		reply   func(*net.TCPConn)
		want    result
		request string
	}{
		{"names_closed", []string{"-names"}, replyWith(), result{stdout: noResp, code: 1}, "\x00\x01n"},
		{"names_short_header", []string{"-names"}, replyWith("\x00\x00"), result{stdout: noResp, code: 1}, "\x00\x01n"},
		{"names_split_header", []string{"-names"}, replyWith("\x00\x00", "\x11\x11name a at port 1\n"),
			result{stdout: noResp, code: 1}, "\x00\x01n"},
		{"names_negative_port", []string{"-names"}, replyWith(port4(0xFFFFFFFF) + "x\n"),
			result{stdout: "epmd: up and running on port -1 with data:\nx\n"}, "\x00\x01n"},
		{"names_streamed", []string{"-names"}, replyWith(port4(70000), "name a at port 1\n", "name b at port 2\n"),
			result{stdout: "epmd: up and running on port 70000 with data:\nname a at port 1\nname b at port 2\n"}, "\x00\x01n"},
		{"started_closed", []string{"-started"}, replyWith(), result{code: 1}, "\x00\x01n"},
		{"started_ok", []string{"-started"}, replyWith(port4(1) + "junk"), result{}, "\x00\x01n"},
		{"dump_nuls", []string{"-dump"}, replyWith(port4(4369) + "a\x00b\x00"),
			result{stdout: "epmd: up and running on port 4369 with data:\na\x00b\x00"}, "\x00\x01d"},
		{"kill_ok", []string{"-kill"}, replyWith("OK"), result{stdout: "Killed\n"}, "\x00\x01k"},
		{"kill_ok_more", []string{"-kill"}, replyWith("OKAY"), result{stdout: "Killed\n"}, "\x00\x01k"},
		{"kill_no", []string{"-kill"}, replyWith("NO"), result{stdout: "Killing not allowed - living nodes in database.\n", code: 1}, "\x00\x01k"},
		{"kill_other", []string{"-kill"}, replyWith("ok"), result{stdout: "Killing not allowed - living nodes in database.\n", code: 1}, "\x00\x01k"},
		{"kill_split", []string{"-kill"}, replyWith("O", "K"), result{stdout: "Killed\n"}, "\x00\x01k"},
		{"kill_partial", []string{"-kill"}, replyWith("O"), result{stdout: empty, code: 1}, "\x00\x01k"},
		{"kill_closed", []string{"-kill"}, replyWith(), result{stdout: empty, code: 1}, "\x00\x01k"},
		{"kill_reset", []string{"-kill"}, reset, result{stdout: readFailed, code: 1}, "\x00\x01k"},
		{"stop_stopped", []string{"-stop", "foo"}, replyWith("STOPPED"), result{stdout: "STOPPED\n"}, "\x00\x04sfoo"},
		{"stop_noexist", []string{"-stop", "foo"}, replyWith("NOEXISTSTOPPED"), result{stdout: "NOEXIST\n"}, "\x00\x04sfoo"},
		{"stop_other", []string{"-stop", "foo"}, replyWith("1234567"), result{stdout: "1234567\n"}, "\x00\x04sfoo"},
		{"stop_nul", []string{"-stop", "foo"}, replyWith("ST\x00PPED"), result{stdout: "ST\n"}, "\x00\x04sfoo"},
		{"stop_partial", []string{"-stop", "foo"}, replyWith("NOEX"), result{stdout: empty, code: 1}, "\x00\x04sfoo"},
		{"stop_reset", []string{"-stop", "foo"}, reset, result{stdout: readFailed, code: 1}, "\x00\x04sfoo"},
		{"stop_empty_name", []string{"-stop", ""}, replyWith("NOEXIST"), result{stdout: "NOEXIST\n"}, "\x00\x01s"},
		{"stop_utf8_name", []string{"-stop", "é\xff"}, replyWith("STOPPED"), result{stdout: "STOPPED\n"}, "\x00\x04s\xc3\xa9\xff"},
	} {
		for _, cli := range impls() {
			t.Run(tc.name+"/"+cli.name, func(t *testing.T) {
				t.Parallel()
				f, port := startFake(t, tc.reply)
				args := append(portArgs(port), tc.args...)
				want(t, strings.Join(args, " "), runBin(t, cli.bin, nil, args...), tc.want)
				if reqs := f.requests(); len(reqs) != 1 || !bytes.Equal(reqs[0], []byte(tc.request)) {
					t.Errorf("requests sent: %q, want [%q]", reqs, tc.request)
				}
			})
		}
	}
}
