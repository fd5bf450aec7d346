//go:build unix

package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopmd/gopmd/epmd/client"
	"github.com/gopmd/gopmd/epmd/wire"
)

// socketActivate returns the path of systemd-socket-activate (package
// systemd on Debian), or skips the test: it is a systemd tool, not part of
// Erlang, so its absence is never a failure.
func socketActivate(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"systemd-socket-activate", "/lib/systemd/systemd-activate"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("systemd-socket-activate not found (apt-get install systemd): socket activation not tested")
	return ""
}

// listenNotify opens the unixgram socket a test hands the daemon as
// $NOTIFY_SOCKET, in place of systemd's.
func listenNotify(t *testing.T) (*net.UnixConn, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, path
}

// TestSocketActivate runs each epmd under systemd-socket-activate with an
// IPv4 and an IPv6 loopback socket, as systemd would with
// ListenStream=127.0.0.1:P and ListenStream=[::1]:P: nodes register and are
// looked up across the two sockets, NAMES reports the configured port (not
// the socket's), KILL ends the daemon, and the sd_notify messages are
// stock's.
func TestSocketActivate(t *testing.T) {
	t.Parallel()
	activate := socketActivate(t)
	if !hasIPv6() {
		t.Skip("no IPv6 loopback: cannot pass an [::1] socket")
	}
	for _, im := range impls() {
		for _, tc := range []struct {
			name, reported string
			args, env      []string
		}{
			{"default_port", "4369", nil, nil},
			{"port_flag", "4444", []string{"-port", "4444"}, nil},
			{"port_env", "4555", nil, []string{envPort + "=4555"}},
		} {
			t.Run(im.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				notify, notifyPath := listenNotify(t)
				// The activator waits for the first connection before it
				// starts the daemon: spawnDaemon's first NAMES does that.
				d, port := spawnDaemon(t, func(port int) (*exec.Cmd, error) {
					p := strconv.Itoa(port)
					args := []string{"-l", "127.0.0.1:" + p, "-l", "[::1]:" + p,
						"-E", "NOTIFY_SOCKET=" + notifyPath}
					for _, kv := range tc.env {
						args = append(args, "-E", kv)
					}
					args = append(args, im.bin, "-systemd")
					return exec.Command(activate, append(args, tc.args...)...), nil
				}, nil)
				p := strconv.Itoa(port)

				// The activator execs the daemon: same pid.
				wantReady := "READY=1\nSTATUS=Processing port mapping requests...\nMAINPID=" + strconv.Itoa(d.cmd.Process.Pid)
				if got := readNotify(t, notify); got != wantReady {
					t.Errorf("notify %q, want %q", got, wantReady)
				}

				v4 := &client.Client{Addr: "127.0.0.1:" + p, Timeout: 5 * time.Second}
				v6 := &client.Client{Addr: "[::1]:" + p, Timeout: 5 * time.Second}
				ctx := context.Background()
				var regs []*client.Registration
				reg := func(c *client.Client, name string, nodePort uint16) {
					r, err := c.Register(ctx, wire.Node{Name: name, Port: nodePort, Type: wire.NodeNormal,
						Proto: wire.ProtoTCP4, High: 6, Low: 5})
					if err != nil {
						t.Fatalf("register %s over %s: %v", name, c.Addr, err)
					}
					t.Cleanup(func() { r.Close() })
					regs = append(regs, r)
				}
				reg(v6, "alpha", 5001)
				reg(v4, "beta", 5002)
				for _, lk := range []struct {
					c    *client.Client
					name string
					port uint16
				}{{v4, "alpha", 5001}, {v6, "beta", 5002}} {
					n, err := lk.c.Lookup(ctx, lk.name)
					if err != nil || n.Port != lk.port {
						t.Errorf("lookup %s over %s: port %d, %v; want %d", lk.name, lk.c.Addr, n.Port, err, lk.port)
					}
				}
				for _, c := range []*client.Client{v4, v6} {
					reported, nodes, err := c.Names(ctx)
					if err != nil || strconv.Itoa(int(reported)) != tc.reported || len(nodes) != 2 {
						t.Errorf("NAMES over %s: port %d, %v, %v; want port %s and 2 nodes", c.Addr, reported, nodes, err, tc.reported)
					}
				}
				names := "epmd: up and running on port " + tc.reported + " with data:\n" +
					"name beta at port 5002\nname alpha at port 5001\n"
				for _, cli := range impls() {
					want(t, cli.name+" -names", runBin(t, cli.bin, nil, "-port", p, "-names"), result{stdout: names})
				}
				want(t, "-kill with nodes", runBin(t, im.bin, nil, "-port", p, "-kill"),
					result{stdout: "Killing not allowed - living nodes in database.\n", code: 1})
				// Unregister, and wait until the daemon has seen it.
				for _, r := range regs {
					r.Close()
				}
				waitNoNodes(t, v4)
				want(t, "-kill", runBin(t, im.bin, nil, "-port", p, "-kill"), result{stdout: "Killed\n"})
				if code := d.wait(t); code != 0 {
					t.Errorf("exit status %d, stderr %q", code, d.stderr.String())
				}
				if got := readNotify(t, notify); got != "STATUS=Exited.\nERRNO=0" {
					t.Errorf("notify at exit %q", got)
				}
			})
		}
	}
}

// waitNoNodes polls NAMES until no node is registered.
func waitNoNodes(t *testing.T, c *client.Client) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, nodes, err := c.Names(context.Background())
		if err == nil && len(nodes) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nodes still registered: %v, %v", nodes, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSocketActivateTooMany: 17 sockets from systemd are refused with
// stock's message and exit status 1, reported to systemd.
func TestSocketActivateTooMany(t *testing.T) {
	t.Parallel()
	activate := socketActivate(t)
	for _, im := range impls() {
		t.Run(im.name, func(t *testing.T) {
			t.Parallel()
			notify, notifyPath := listenNotify(t)
			for attempt := 1; ; attempt++ {
				p := strconv.Itoa(freePort(t))
				args := []string{"-E", "NOTIFY_SOCKET=" + notifyPath}
				for i := 2; i <= 18; i++ { // 127.0.0.2 to 127.0.0.18
					args = append(args, "-l", "127.0.0."+strconv.Itoa(i)+":"+p)
				}
				d := &daemonProc{cmd: exec.Command(activate, append(args, im.bin, "-systemd")...), exited: make(chan struct{})}
				d.cmd.Env = baseEnv()
				d.cmd.Stderr = &d.stderr
				if err := d.cmd.Start(); err != nil {
					t.Fatal(err)
				}
				go func() { d.cmd.Wait(); close(d.exited) }()
				t.Cleanup(func() {
					select {
					case <-d.exited:
					default:
						d.cmd.Process.Kill()
						<-d.exited
					}
				})
				// A connection makes the activator start the daemon.
				if !poke(d, "127.0.0.2:"+p) {
					if attempt == startAttempts {
						t.Fatalf("activator never listened: %q", d.stderr.String())
					}
					continue
				}
				if code := d.wait(t); code != 1 {
					t.Errorf("exit status %d, want 1", code)
				}
				if log := d.stderr.String(); !strings.Contains(log, ": cannot listen on more than 16 IP addresses\r\n") {
					t.Errorf("stderr %q lacks stock's message", log)
				}
				if got := readNotify(t, notify); got != "STATUS=Exited.\nERRNO=1" {
					t.Errorf("notify %q", got)
				}
				return
			}
		})
	}
}

// poke connects to addr until it accepts (true) or the process exits or
// 10 s pass (false).
func poke(d *daemonProc, addr string) bool {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return true
		}
		select {
		case <-d.exited:
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
	return false
}

// TestJournalLog: when stderr is the stream $JOURNAL_STREAM names, each
// message is one "<priority>message" line without time (journald adds it
// and takes the priority from the prefix); with another stderr the
// variable is ignored.
func TestJournalLog(t *testing.T) {
	t.Parallel()
	f, err := os.Create(filepath.Join(t.TempDir(), "journal"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	journal := "JOURNAL_STREAM=" + strconv.FormatUint(uint64(st.Dev), 10) + ":" + strconv.FormatUint(st.Ino, 10)

	cmd := exec.Command(ourBin, "-port", strconv.Itoa(freePort(t)), "-address", "localhost")
	cmd.Env = append(baseEnv(), journal)
	cmd.Stderr = f
	if err := cmd.Run(); cmd.ProcessState.ExitCode() != 1 {
		t.Fatalf("exit: %v", err)
	}
	got, _ := os.ReadFile(f.Name())
	if want := "<3>cannot parse IP address \"localhost\"\n"; string(got) != want {
		t.Errorf("journal lines %q, want %q", got, want)
	}

	// Not the journal's stream (a pipe): stock's format.
	r := runBin(t, ourBin, []string{journal}, "-port", strconv.Itoa(freePort(t)), "-address", "localhost").masked()
	want(t, "stderr not the journal", r, result{stderr: "epmd: TIME: cannot parse IP address \"localhost\"\r\n", code: 1})
}

// TestCheckListenEnv: the errors sd_listen_fds reports and
// activation.Files folds into "no sockets".
func TestCheckListenEnv(t *testing.T) {
	t.Parallel()
	pid := strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		env  map[string]string
		want error
	}{
		{map[string]string{}, nil},
		{map[string]string{"LISTEN_PID": "x", "LISTEN_FDS": "1"}, errListenEnv},
		{map[string]string{"LISTEN_PID": "0", "LISTEN_FDS": "1"}, errListenEnv},
		{map[string]string{"LISTEN_PID": "1", "LISTEN_FDS": "x"}, nil}, // another process's
		{map[string]string{"LISTEN_PID": pid}, nil},
		{map[string]string{"LISTEN_PID": pid, "LISTEN_FDS": "0"}, errListenEnv},
		{map[string]string{"LISTEN_PID": pid, "LISTEN_FDS": "-1"}, errListenEnv},
		{map[string]string{"LISTEN_PID": pid, "LISTEN_FDS": "1048577"}, errListenEnv},
		// Not a million descriptors open: one of them is closed.
		{map[string]string{"LISTEN_PID": pid, "LISTEN_FDS": "1048576"}, syscall.EBADF},
	} {
		getenv := func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }
		if got := checkListenEnv(getenv); got != tc.want {
			t.Errorf("%v: %v, want %v", tc.env, got, tc.want)
		}
	}
}
