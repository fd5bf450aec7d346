package conformance

import (
	"fmt"
	"io"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/gopmd/gopmd/epmd/wire"
)

// Cross-compatibility of the interactive client (facts §9.4): the stock
// `epmd -names/-dump/-kill/-stop` against the daemon under test, and the
// CLI under test against the stock daemon. The same-binary pairs run too,
// as controls. Expected output is stock's, exactly.

type cliRun struct {
	stdout, stderr string
	code           int
}

func runCLI(t *testing.T, bin string, args ...string) cliRun {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = cleanEnv(nil)
	var so, se lockedBuffer
	cmd.Stdout, cmd.Stderr = &so, &se
	done := make(chan error, 1)
	if err := startTracked(cmd); err != nil {
		t.Fatal(err)
	}
	go func() { done <- waitTracked(cmd) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%s %v did not finish within 15s", bin, args)
	}
	return cliRun{so.String(), se.String(), cmd.ProcessState.ExitCode()}
}

func (r cliRun) want(t *testing.T, what, stdout, stderr string, code int) {
	t.Helper()
	if r.stdout != stdout || r.stderr != stderr || r.code != code {
		t.Errorf("%s: got stdout %q stderr %q exit %d; want stdout %q stderr %q exit %d",
			what, r.stdout, r.stderr, r.code, stdout, stderr, code)
	}
}

// register holds a registration open until cleanup.
func register(t *testing.T, d *daemonProc, name string, port uint16) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp4", d.addr4(), 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	frame, err := wire.EncodeRequest(&wire.Alive2Req{Node: wire.Node{Name: name, Port: port, Type: 'M', High: 6, Low: 5}})
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(frame); err != nil {
		t.Fatal(err)
	}
	reply := make([]byte, 6)
	if _, err := io.ReadFull(c, reply); err != nil || reply[0] != 'v' || reply[1] != 0 {
		t.Fatalf("registering %s: % x, %v", name, reply, err)
	}
	c.SetDeadline(time.Time{})
	return c
}

// eachPair runs f for every (client, daemon) pair of stock and ours.
func eachPair(t *testing.T, f func(t *testing.T, client, daemon string)) {
	type bin struct {
		name string
		get  func(testing.TB) string
	}
	bins := []bin{{"stock", requireStock}, {"gopmd", requireOurs}}
	for _, c := range bins {
		for _, d := range bins {
			t.Run(c.name+"_client_"+d.name+"_daemon", func(t *testing.T) {
				t.Parallel()
				f(t, c.get(t), d.get(t))
			})
		}
	}
}

func TestCLICrossCompatibility(t *testing.T) {
	eachPair(t, func(t *testing.T, client, daemon string) {
		d := startTestDaemon(t, daemon, "-relaxed_command_check")
		port := strconv.Itoa(d.port)
		header := "epmd: up and running on port " + port + " with data:\n"

		runCLI(t, client, "-port", port, "-started").want(t, "-started", "", "", 0)
		runCLI(t, client, "-port", port, "-names").want(t, "-names, empty", header, "", 0)

		alpha := register(t, d, "alpha", 5555)
		register(t, d, "beta", 6666)
		runCLI(t, client, "-port", port, "-names").want(t, "-names, 2 nodes",
			header+"name beta at port 6666\nname alpha at port 5555\n", "", 0)

		r := runCLI(t, client, "-port", port, "-dump")
		dumpRE := regexp.MustCompile(`^` + regexp.QuoteMeta(header) +
			`active name     <beta> at port 6666, fd = \d+\n\x00active name     <alpha> at port 5555, fd = \d+\n\x00$`)
		if !dumpRE.MatchString(r.stdout) || r.stderr != "" || r.code != 0 {
			t.Errorf("-dump: stdout %q stderr %q exit %d", r.stdout, r.stderr, r.code)
		}

		runCLI(t, client, "-port", port, "-stop", "alpha").want(t, "-stop alpha", "STOPPED\n", "", 0)
		alpha.SetReadDeadline(time.Now().Add(3 * time.Second))
		if n, err := alpha.Read(make([]byte, 1)); err == nil {
			t.Errorf("alpha's registration socket still open after -stop (read %d bytes)", n)
		}
		runCLI(t, client, "-port", port, "-stop", "nobody").want(t, "-stop nobody", "NOEXIST\n", "", 0)
		runCLI(t, client, "-port", port, "-kill").want(t, "-kill (relaxed, beta alive)", "Killed\n", "", 0)
		select {
		case <-d.done:
			if d.exitCode != 0 {
				t.Errorf("daemon exited %d after -kill, want 0", d.exitCode)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("daemon still running 5s after -kill")
		}
		runCLI(t, client, "-port", port, "-names").want(t, "-names, no daemon", "", "epmd: Cannot connect to local epmd\n", 1)
	})
}

func TestCLICrossCompatibilityStrict(t *testing.T) {
	eachPair(t, func(t *testing.T, client, daemon string) {
		d := startTestDaemon(t, daemon)
		port := strconv.Itoa(d.port)
		register(t, d, "alpha", 5555)
		runCLI(t, client, "-port", port, "-kill").want(t, "-kill with a node",
			"Killing not allowed - living nodes in database.\n", "", 1)
		runCLI(t, client, "-port", port, "-stop", "alpha").want(t, "-stop, not relaxed",
			"epmd: local epmd responded with <>\n", "", 1)
		runCLI(t, client, "-port", port, "-names").want(t, "-names after both",
			"epmd: up and running on port "+port+" with data:\nname alpha at port 5555\n", "", 0)
	})
}

// fakeServer listens on 127.0.0.1:P and [::1]:P and answers every
// connection with reply (after reading the request), then closes.
func fakeServer(t *testing.T, reply string) int {
	t.Helper()
	var lns []net.Listener
	var port int
	for attempt := 0; ; attempt++ {
		p, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		ln4, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		lns = []net.Listener{ln4}
		if HaveIPv6() {
			ln6, err := net.Listen("tcp6", "[::1]:"+strconv.Itoa(p))
			if err != nil {
				ln4.Close()
				if attempt > 10 {
					t.Fatal(err)
				}
				continue
			}
			lns = append(lns, ln6)
		}
		port = p
		break
	}
	for _, ln := range lns {
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					c.SetDeadline(time.Now().Add(5 * time.Second))
					wire.ReadRequest(c)
					io.WriteString(c, reply)
				}()
			}
		}()
	}
	return port
}

// TestCLIAgainstBrokenServer covers the client rows of facts §9.4 that a
// correct daemon never triggers, with a fake server, for both clients.
func TestCLIAgainstBrokenServer(t *testing.T) {
	clients := []struct {
		name string
		get  func(testing.TB) string
	}{{"stock", requireStock}, {"gopmd", requireOurs}}
	cases := []struct {
		reply  string
		args   []string
		stdout string
		code   int
	}{
		{"", []string{"-names"}, "epmd: no response from local epmd\n", 1},
		{"\x00\x00\x01", []string{"-names"}, "epmd: no response from local epmd\n", 1},
		{"", []string{"-dump"}, "epmd: no response from local epmd\n", 1},
		{"", []string{"-kill"}, "epmd: local epmd responded with <>\n", 1},
		{"O", []string{"-kill"}, "epmd: local epmd responded with <>\n", 1},
		{"ZZ", []string{"-kill"}, "Killing not allowed - living nodes in database.\n", 1},
		{"", []string{"-stop", "x"}, "epmd: local epmd responded with <>\n", 1},
		{"STOP", []string{"-stop", "x"}, "epmd: local epmd responded with <>\n", 1},
		{"ABCDEFG", []string{"-stop", "x"}, "ABCDEFG\n", 0},
		{"", []string{"-started"}, "", 1},
	}
	for _, cl := range clients {
		t.Run(cl.name, func(t *testing.T) {
			t.Parallel()
			bin := cl.get(t)
			for _, c := range cases {
				port := fakeServer(t, c.reply)
				args := append([]string{"-port", strconv.Itoa(port)}, c.args...)
				runCLI(t, bin, args...).want(t, fmt.Sprintf("%v with reply %q", c.args, c.reply), c.stdout, "", c.code)
			}
		})
	}
}
