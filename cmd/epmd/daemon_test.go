//go:build unix

package main

import (
	"bytes"
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
)

// TestAddressErrors: -address and ERL_EPMD_ADDRESS errors, compared with
// stock (log timestamps masked). Only loopback addresses are ever bound;
// the lists that fail do so before anything is bound, or on an address no
// socket can bind.
func TestAddressErrors(t *testing.T) {
	t.Parallel()
	var fourteen []string
	for i := 2; i < 16; i++ {
		fourteen = append(fourteen, "127.0.0."+strconv.Itoa(i))
	}
	line := func(msg string) string { return "epmd: TIME: " + msg + "\r\n" }
	// Where the installed stock epmd (OTP 25) differs from OTP 29, whose
	// limit and wording gopmd follows (docs/epmd.md).
	stock25 := map[string]result{
		"fourteen":          {stderr: line("cannot listen on more than 16 IP addresses"), code: 1},
		"fourteen_then_bad": {stderr: line("cannot listen on more than 16 IP addresses"), code: 1},
	}
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want result
	}{
		{"hostname", nil, []string{"-address", "localhost"},
			result{stderr: line(`cannot parse IP address "localhost"`), code: 1}},
		{"second_token", nil, []string{"-address", "127.0.0.1, ::1,,bogus,127.0.0.2"},
			result{stderr: line(`cannot parse IP address "bogus"`), code: 1}},
		{"zone", nil, []string{"-address", "fe80::1%lo"},
			result{stderr: line(`cannot parse IP address "fe80::1%lo"`), code: 1}},
		{"leading_zero", nil, []string{"-address", "127.0.0.01"},
			result{stderr: line(`cannot parse IP address "127.0.0.01"`), code: 1}},
		{"brackets", nil, []string{"-address", "[::1]"},
			result{stderr: line(`cannot parse IP address "[::1]"`), code: 1}},
		{"fourteen", nil, []string{"-address", strings.Join(fourteen, ",")},
			result{stderr: line("cannot listen on more than 14 IP addresses"), code: 1}},
		{"fourteen_then_bad", nil, []string{"-address", strings.Join(fourteen, " ") + " bad"},
			result{stderr: line("cannot listen on more than 14 IP addresses"), code: 1}},
		{"mapped_v4", nil, []string{"-address", "::ffff:127.0.0.1"},
			result{stderr: line("failed to bind on ipaddr ::ffff:127.0.0.1: Invalid argument"), code: 1}},
		{"env", []string{envAddress + "=localhost"}, nil,
			result{stderr: line(`cannot parse IP address "localhost"`), code: 1}},
		{"flag_beats_env", []string{envAddress + "=127.0.0.1"}, []string{"-address", "nohost"},
			result{stderr: line(`cannot parse IP address "nohost"`), code: 1}},
		{"duplicate", nil, []string{"-address", "127.0.0.2,127.0.0.2"}, result{}},
		{"duplicate_debug", nil, []string{"-d", "-address", "127.0.0.2 127.0.0.2"},
			result{stderr: line("epmd running - daemon = 0") +
				line("there is already a epmd running at port PORT on ipaddr 127.0.0.2")}},
		{"systemd_no_sockets", nil, []string{"-systemd", "-address", "localhost"},
			result{stderr: line("systemd provides no sockets"), code: 1}},
		{"systemd_bad_env", []string{"LISTEN_PID=x"}, []string{"-systemd"},
			result{stderr: line("cannot obtain sockets from systemd"), code: 1}},
	} {
		for _, im := range impls() {
			t.Run(tc.name+"/"+im.name, func(t *testing.T) {
				t.Parallel()
				port := freePort(t)
				got := runBin(t, im.bin, tc.env, append(portArgs(port), tc.args...)...).masked()
				got.stderr = strings.ReplaceAll(got.stderr, "port "+strconv.Itoa(port)+" ", "port PORT ")
				w := tc.want
				if s, ok := stock25[tc.name]; ok && im.name == "stock" {
					w = s
				}
				want(t, strings.Join(tc.args, " "), got, w)
			})
		}
	}
}

// TestSecondDaemon: a daemon started on a port in use exits 0 at once, and
// says why only with -d; whichever epmd holds the port.
func TestSecondDaemon(t *testing.T) {
	t.Parallel()
	for _, first := range impls() {
		for _, second := range impls() {
			t.Run(first.name+"_then_"+second.name, func(t *testing.T) {
				t.Parallel()
				_, port := startDaemon(t, first.bin, nil)
				args := append(portArgs(port), "-address", "127.0.0.1")
				want(t, "second daemon", runBin(t, second.bin, nil, args...), result{})
				got := runBin(t, second.bin, nil, append([]string{"-d"}, args...)...).masked()
				wantErr := "epmd: TIME: epmd running - daemon = 0\r\n" +
					"epmd: TIME: there is already a epmd running at port " + strconv.Itoa(port) + " on ipaddr 127.0.0.1\r\n"
				want(t, "second daemon -d", got, result{stderr: wantErr})
			})
		}
	}
}

// TestConfiguredPortReported: -port 65536+P listens on P and reports the
// configured value in NAMES, as stock does.
func TestConfiguredPortReported(t *testing.T) {
	t.Parallel()
	for _, dm := range impls() {
		t.Run(dm.name, func(t *testing.T) {
			t.Parallel()
			var big string
			spawnDaemon(t, func(port int) (*exec.Cmd, error) {
				big = strconv.Itoa(port + 65536)
				return exec.Command(dm.bin, "-port", big, "-address", "127.0.0.1"), nil
			}, nil)
			for _, cli := range impls() {
				want(t, cli.name+" -names", runBin(t, cli.bin, nil, "-port", big, "-names"),
					result{stdout: "epmd: up and running on port " + big + " with data:\n"})
			}
		})
	}
}

// TestDaemonize: -daemon returns at once with status 0 and nothing printed
// (the detached daemon holds neither output pipe, or runBin would wait),
// the daemon answers, and -kill ends it.
func TestDaemonize(t *testing.T) {
	t.Parallel()
	for _, im := range impls() {
		t.Run(im.name, func(t *testing.T) {
			t.Parallel()
			var port int
			var args []string
			for attempt := 1; ; attempt++ {
				port = freePort(t)
				t.Cleanup(func() {
					// The daemon is not our child: stop it through the protocol.
					if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
						c.Close()
						runBin(t, im.bin, nil, append(portArgs(port), "-kill")...)
					}
				})
				args = append(portArgs(port), "-daemon", "-address", "127.0.0.1", "-relaxed_command_check")
				start := time.Now()
				want(t, "-daemon", runBin(t, im.bin, nil, args...), result{})
				if d := time.Since(start); d > 5*time.Second {
					t.Errorf("-daemon took %v to return", d)
				}
				// Ours returns once the daemon listens: the first
				// request after it is answered.
				c := &client.Client{Addr: "127.0.0.1:" + strconv.Itoa(port), Timeout: 5 * time.Second}
				_, firstErr := c.NamesRaw(context.Background())
				if waitUp(t, port, nil) {
					if firstErr != nil && im.bin == ourBin {
						t.Errorf("-daemon returned before the daemon listened: %v", firstErr)
					}
					break
				}
				if attempt == startAttempts {
					t.Fatal("the detached daemon never answered")
				}
			}
			// The daemon's command line is the one given, -daemon
			// included, as ps shows stock's.
			pid := findDaemon(t, im.bin, port)
			if pid == 0 {
				t.Fatal("daemon not found in /proc")
			}
			cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
			if want := strings.Join(append([]string{im.bin}, args...), "\x00") + "\x00"; string(cmdline) != want {
				t.Errorf("daemon command line %q, want %q", cmdline, want)
			}
			if im.bin == ourBin {
				checkDetached(t, pid)
			}
			register(t, port, "alpha", 5555)
			p := strconv.Itoa(port)
			want(t, "-names", runBin(t, im.bin, nil, "-port", p, "-names"),
				result{stdout: "epmd: up and running on port " + p + " with data:\nname alpha at port 5555\n"})
			want(t, "-kill", runBin(t, im.bin, nil, "-port", p, "-kill"), result{stdout: "Killed\n"})
			waitDown(t, port)
		})
	}
}

// checkDetached checks through /proc how our daemon pid was detached: its
// own session, cwd "/", stdio on /dev/null, and no pipe (the one to its
// parent closed, none inherited from the test passed on).
func checkDetached(t *testing.T, pid int) {
	t.Helper()
	sid, _, errno := syscall.RawSyscall(syscall.SYS_GETSID, uintptr(pid), 0, 0)
	if errno != 0 || int(sid) != pid {
		t.Errorf("daemon %d: session %d (%v), want its own", pid, sid, errno)
	}
	if cwd, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/cwd"); err != nil || cwd != "/" {
		t.Errorf("daemon cwd %q (%v), want /", cwd, err)
	}
	for fd := range 3 {
		if target, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/fd/" + strconv.Itoa(fd)); err != nil || target != "/dev/null" {
			t.Errorf("daemon fd %d is %q (%v), want /dev/null", fd, target, err)
		}
	}
	fds, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	for _, fd := range fds {
		n, _ := strconv.Atoi(fd.Name())
		if n < 3 {
			continue
		}
		if target, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/fd/" + fd.Name()); strings.HasPrefix(target, "pipe:") {
			t.Errorf("daemon fd %d is still a pipe (%s)", n, target)
		}
	}
	environ, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if !bytes.Contains(environ, []byte(envDaemonChild+"=1")) {
		t.Errorf("daemon lacks %s in its environment", envDaemonChild)
	}
}

// findDaemon returns the pid of the process running bin with -port port.
func findDaemon(t *testing.T, bin string, port int) int {
	t.Helper()
	want := "\x00-port\x00" + strconv.Itoa(port) + "\x00"
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, dir := range dirs {
		cmdline, err := os.ReadFile(dir + "/cmdline")
		if err != nil || !bytes.HasPrefix(cmdline, []byte(bin+"\x00")) || !bytes.Contains(cmdline, []byte(want)) {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(dir))
		return pid
	}
	return 0
}

// TestSystemd passes a listening socket the way systemd does (LISTEN_PID,
// LISTEN_FDS, fd 3) and checks the sd_notify messages, for ours and stock.
func TestSystemd(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh to set LISTEN_PID")
	}
	for _, im := range impls() {
		t.Run(im.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			sockPath := filepath.Join(dir, "notify")
			notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sockPath, Net: "unixgram"})
			if err != nil {
				t.Fatal(err)
			}
			defer notify.Close()

			var lf *os.File // the socket passed as fd 3
			d, port := spawnDaemon(t, func(port int) (*exec.Cmd, error) {
				if lf != nil {
					lf.Close()
				}
				ln, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(port))
				if err != nil {
					return nil, err
				}
				lf, err = ln.(*net.TCPListener).File()
				ln.Close()
				if err != nil {
					return nil, err
				}
				// sh sets LISTEN_PID to its own pid, which exec keeps.
				cmd := exec.Command("sh", "-c", `LISTEN_PID=$$ LISTEN_FDS=1; export LISTEN_PID LISTEN_FDS; exec "$0" "$@"`,
					im.bin, "-systemd", "-address", "localhost")
				cmd.ExtraFiles = []*os.File{lf}
				return cmd, nil
			}, []string{"NOTIFY_SOCKET=" + sockPath})
			lf.Close()

			ready := readNotify(t, notify)
			if wantReady := "READY=1\nSTATUS=Processing port mapping requests...\nMAINPID=" + strconv.Itoa(d.cmd.Process.Pid); ready != wantReady {
				t.Errorf("notify %q, want %q", ready, wantReady)
			}
			// No -port: the header shows the default, whatever the socket.
			for _, cli := range impls() {
				want(t, cli.name+" -names", runBin(t, cli.bin, nil, append(portArgs(port), "-names")...),
					result{stdout: "epmd: up and running on port 4369 with data:\n"})
			}
			want(t, "-kill", runBin(t, im.bin, nil, append(portArgs(port), "-kill")...), result{stdout: "Killed\n"})
			if code := d.wait(t); code != 0 {
				t.Errorf("exit status %d", code)
			}
			if exited := readNotify(t, notify); exited != "STATUS=Exited.\nERRNO=0" {
				t.Errorf("notify at exit %q", exited)
			}
		})
	}
}

func readNotify(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no sd_notify message: %v", err)
	}
	return string(buf[:n])
}

// TestSignal: SIGTERM and SIGINT end our daemon with status 0 (stock dies
// of the signal), closing registrations.
func TestSignal(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			d, port := startDaemon(t, ourBin, nil)
			r := register(t, port, "alpha", 5555)
			d.cmd.Process.Signal(sig)
			if code := d.wait(t); code != 0 {
				t.Errorf("exit status %d after %v, stderr %q", code, sig, d.stderr.String())
			}
			select {
			case <-r.Done():
			case <-time.After(5 * time.Second):
				t.Error("registration still open after shutdown")
			}
		})
	}
}

// TestDaemonInProcess runs the daemon through run itself (not a
// subprocess), so the race detector sees the wiring, and stops it with
// KILL.
func TestDaemonInProcess(t *testing.T) {
	env := map[string]string{envRelaxed: ""}
	getenv := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	var port int
	var stdout, stderr *bytes.Buffer
	var done chan int
	for attempt := 1; ; attempt++ {
		port = freePort(t)
		stdout, stderr = new(bytes.Buffer), new(bytes.Buffer)
		done = make(chan int, 1)
		exited := make(chan struct{})
		args := []string{"-d", "-d", "-port", strconv.Itoa(port), "-address", "127.0.0.1"}
		go func(stdout, stderr *bytes.Buffer) {
			done <- run(args, getenv, stdout, stderr)
			close(exited)
		}(stdout, stderr)
		if waitUp(t, port, exited) {
			break
		}
		select {
		case <-exited:
		default:
			t.Fatal("daemon did not come up")
		}
		if attempt == startAttempts {
			t.Fatal("could not start the daemon")
		}
	}
	c := client.NewLocal(port)
	reg := register(t, port, "alpha", 5555)
	if ok, err := c.Kill(context.Background()); err != nil || !ok { // relaxed: OK despite alpha
		t.Fatalf("Kill: %v, %v", ok, err)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("run returned %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after KILL")
	}
	<-reg.Done()
	if stdout.Len() != 0 {
		t.Errorf("stdout %q", stdout.String())
	}
	log := stockTime.ReplaceAllString(stderr.String(), "epmd: TIME: ")
	for _, line := range []string{
		"epmd: TIME: epmd running - daemon = 0\r\n",
		"epmd: TIME: try to initiate listening port " + strconv.Itoa(port) + "\r\n",
		"epmd: TIME: registered node conn=",
		"epmd: TIME: got EPMD_KILL_REQ - terminates normal\r\n",
	} {
		if !strings.Contains(log, line) {
			t.Errorf("log lacks %q:\n%s", line, log)
		}
	}
}

// TestAddressSyntaxMatchesStock checks that each token parses (or not) as
// stock's inet_pton does. Every list ends in a bad token, so the daemons
// fail before binding anything; which token they name tells whether the
// first one parsed.
func TestAddressSyntaxMatchesStock(t *testing.T) {
	t.Parallel()
	needStock(t)
	for _, tok := range []string{
		"1:2:3:4:5:6:7::", "::1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8::", "1::2:3:4:5:6:7:8",
		"::ffff:01.2.3.4", "::1.2.3.4", "1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:7:1.2.3.4",
		"00000::1", "0000::1", "1.2.3.256", "1.2.3.4.", ".1.2.3.4", "::", "0.0.0.0", "FE80::A",
		"1.2.3.04", "::ffff:1.2.3", "1::2::3", ":1::2", "1::2:", "::1%", "fe80::1%1", "127.1",
		"0127.0.0.1", "1.2.3.4/8", "0x7f.0.0.1", "::ffff:127.0.0.1", "0:0:0:0:0:0:0:1",
	} {
		t.Run(tok, func(t *testing.T) {
			t.Parallel()
			port := freePort(t)
			args := append(portArgs(port), "-address", tok+",BAD")
			ours := runBin(t, ourBin, nil, args...).masked()
			stock := runBin(t, stockBin, nil, args...).masked()
			want(t, "ours vs stock", ours, stock)
		})
	}
}

// TestDaemonPortInUse: -daemon on a port another socket holds returns 0
// with nothing printed, as stock's does (the detached daemon fails on its
// own); ours returns when its daemon exits rather than at its timeout.
func TestDaemonPortInUse(t *testing.T) {
	t.Parallel()
	for _, im := range impls() {
		t.Run(im.name, func(t *testing.T) {
			t.Parallel()
			ln, err := net.Listen("tcp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			port := ln.Addr().(*net.TCPAddr).Port
			start := time.Now()
			want(t, "-daemon", runBin(t, im.bin, nil, append(portArgs(port), "-daemon", "-address", "127.0.0.1")...), result{})
			t.Logf("%s -daemon returned after %v", im.name, time.Since(start).Round(time.Millisecond))
			if pid := findDaemon(t, im.bin, port); pid != 0 {
				time.Sleep(500 * time.Millisecond) // stock's daemon may still be on its way out
				if pid := findDaemon(t, im.bin, port); pid != 0 {
					t.Errorf("daemon %d still running on a port in use", pid)
				}
			}
		})
	}
}
