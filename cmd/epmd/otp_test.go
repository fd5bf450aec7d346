package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestOTPDropIn is the drop-in installation end to end, on a throwaway copy
// of the OTP installation erl belongs to: "make install-otp" puts our epmd
// in place of each erts-*/bin/epmd and keeps the stock one as epmd.stock
// (twice, to show that it never overwrites epmd.stock); "erl -sname x" then
// starts our daemon by itself ("epmd -daemon"), "erl -sname y" reuses it,
// the two nodes ping each other; "make uninstall-otp" restores the stock
// binary. Every process started is stopped: the nodes by signal, the
// daemon with "epmd -kill", and by pid if it is still there.
func TestOTPDropIn(t *testing.T) {
	t.Parallel()
	erl := erlProgram(t)
	makeBin, err := exec.LookPath("make")
	if err != nil {
		t.Skip("make not found: the install-otp target cannot be run")
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	root := otpRoot(t, erl)
	otp := copyOTP(t, root)
	ertsBins, _ := filepath.Glob(filepath.Join(otp, "erts-*", "bin"))
	if len(ertsBins) == 0 {
		t.Fatalf("no erts-*/bin under %s", root)
	}
	// What each epmd is before installing: a copy of the stock binary.
	stock := map[string][]byte{}
	for _, d := range ertsBins {
		b, err := os.ReadFile(filepath.Join(d, "epmd"))
		if err != nil {
			t.Fatal(err)
		}
		stock[d] = b
	}

	binDir := t.TempDir()
	makeOut := func(target string) (string, error) {
		cmd := exec.Command(makeBin, "--no-print-directory", "-C", repo, target, "OTP_ROOT="+otp, "BIN="+binDir)
		out, err := cmd.CombinedOutput()
		t.Logf("make %s:\n%s", target, out)
		return string(out), err
	}
	runMake := func(target string) {
		t.Helper()
		if _, err := makeOut(target); err != nil {
			t.Fatalf("make %s: %v", target, err)
		}
	}
	runMake("install-otp")
	runMake("install-otp") // again: updates ours, keeps epmd.stock
	for _, d := range ertsBins {
		if b, err := os.ReadFile(filepath.Join(d, "epmd.stock")); err != nil || !bytes.Equal(b, stock[d]) {
			t.Fatalf("%s/epmd.stock is not the stock epmd (%v)", d, err)
		}
		r := runBin(t, filepath.Join(d, "epmd"), nil, "-version")
		if r.code != 0 || !strings.HasPrefix(r.stdout, "gopmd ") {
			t.Fatalf("%s/epmd -version: %v", d, r)
		}
	}

	// Our daemon, wherever erl starts it from, is one of these files.
	installed := map[string]bool{}
	for _, d := range ertsBins {
		p, err := filepath.EvalSymlinks(filepath.Join(d, "epmd"))
		if err != nil {
			t.Fatal(err)
		}
		installed[p] = true
	}
	daemons := func() []int { return procsRunning(installed) }
	t.Cleanup(func() {
		// Fallback: the daemon is detached, not our child.
		for _, pid := range daemons() {
			t.Logf("killing leftover daemon %d", pid)
			killPid(pid)
		}
	})

	port := freePort(t)
	p := strconv.Itoa(port)
	home := t.TempDir()
	cookie := randomCookie(t)
	env := append(baseEnv(), envPort+"="+p, envAddress+"=127.0.0.1", "HOME="+home)
	cli := filepath.Join(ertsBins[0], "epmd")
	names := func() string {
		r := runBin(t, cli, []string{envPort + "=" + p}, "-names")
		return r.stdout
	}
	waitNames := func(want ...string) string {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			out := names()
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(out, "name "+w+" at port ")
			}
			if ok {
				return out
			}
			if time.Now().After(deadline) {
				t.Fatalf("epmd -names never listed %v: %q", want, out)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	erlCopy := filepath.Join(otp, "bin", "erl")
	x := startNode(t, erlCopy, env, "-sname", "x", "-setcookie", cookie, "-noshell", "-noinput")
	waitNames("x")
	first := daemons()
	if len(first) != 1 {
		t.Fatalf("our daemons running after erl -sname x: %v, want one", first)
	}
	exe, _ := os.Readlink("/proc/" + strconv.Itoa(first[0]) + "/exe")
	t.Logf("erl started %s (pid %d) on port %d", exe, first[0], port)

	// y pings x, and has x ping y back.
	y := startNode(t, erlCopy, env, "-sname", "y", "-setcookie", cookie, "-noshell", "-eval",
		`[_, H] = string:split(atom_to_list(node()), "@"), X = list_to_atom("x@" ++ H), `+
			`P1 = net_adm:ping(X), P2 = rpc:call(X, net_adm, ping, [node()]), `+
			`io:format("PINGS ~p ~p~n", [P1, P2]).`)
	if line := y.waitLine(t, "PINGS "); line != "PINGS pong pong" {
		t.Fatalf("x and y: %q, want PINGS pong pong", line)
	}
	out := waitNames("x", "y")
	// y's erl ran "epmd -daemon" too: that copy found the port taken and
	// exited, leaving the first daemon.
	deadline := time.Now().Add(10 * time.Second)
	for now := daemons(); len(now) != 1 || now[0] != first[0]; now = daemons() {
		if time.Now().After(deadline) {
			t.Fatalf("our daemons after erl -sname y: %v, want only %d", now, first[0])
		}
		time.Sleep(50 * time.Millisecond)
	}
	if want := "epmd: up and running on port " + p + " with data:\n"; !strings.HasPrefix(out, want) {
		t.Errorf("epmd -names: %q", out)
	}

	y.stop(t)
	x.stop(t)
	deadline = time.Now().Add(10 * time.Second)
	for strings.Contains(names(), "name ") {
		if time.Now().After(deadline) {
			t.Fatalf("nodes still registered after they stopped: %q", names())
		}
		time.Sleep(50 * time.Millisecond)
	}
	want(t, "epmd -kill", runBin(t, cli, []string{envPort + "=" + p}, "-kill"), result{stdout: "Killed\n"})
	waitDown(t, port)

	runMake("uninstall-otp")
	for _, d := range ertsBins {
		if b, err := os.ReadFile(filepath.Join(d, "epmd")); err != nil || !bytes.Equal(b, stock[d]) {
			t.Errorf("%s/epmd is not the stock epmd again (%v)", d, err)
		}
		if _, err := os.Lstat(filepath.Join(d, "epmd.stock")); !os.IsNotExist(err) {
			t.Errorf("%s/epmd.stock still there (%v)", d, err)
		}
	}
	// Nothing to undo twice.
	runMake("uninstall-otp")

	// An Erlang upgrade puts a new stock epmd in place while an old
	// epmd.stock is left: neither target may lose the new binary.
	old := []byte("#!/bin/sh\n# an older stock epmd\n")
	for _, d := range ertsBins {
		if err := os.WriteFile(filepath.Join(d, "epmd.stock"), old, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := makeOut("install-otp"); err == nil || !strings.Contains(out, "epmd.stock exists") {
		t.Errorf("install-otp over a new stock epmd with an old epmd.stock: %v, %q", err, out)
	}
	if out, err := makeOut("uninstall-otp"); err != nil || !strings.Contains(out, "is not gopmd") {
		t.Errorf("uninstall-otp over a new stock epmd: %v, %q", err, out)
	}
	for _, d := range ertsBins {
		if b, err := os.ReadFile(filepath.Join(d, "epmd")); err != nil || !bytes.Equal(b, stock[d]) {
			t.Errorf("%s/epmd was changed (%v)", d, err)
		}
		if b, err := os.ReadFile(filepath.Join(d, "epmd.stock")); err != nil || !bytes.Equal(b, old) {
			t.Errorf("%s/epmd.stock was changed (%v)", d, err)
		}
	}
}

// otpRoot asks erl for its installation directory.
func otpRoot(t *testing.T, erl string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, erl, "-noshell", "-eval", `io:put_chars(code:root_dir()), halt().`)
	cmd.Env = append(baseEnv(), "HOME="+t.TempDir())
	out, err := cmd.Output()
	if err != nil || len(out) == 0 {
		t.Fatalf("erl code:root_dir(): %q, %v", out, err)
	}
	return string(out)
}

// copyOTP makes a throwaway OTP installation that install-otp may change:
// a temporary directory of symlinks to root's entries, except bin and each
// erts-*/bin, which are real directories. In those, epmd is a real copy;
// scripts that name root (bin/erl hard-codes ROOTDIR=root) are copies
// naming the new directory instead; symlinks are recreated (pointing into
// the copy when they pointed into root); other files are symlinks.
func copyOTP(t *testing.T, root string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		src, to := filepath.Join(root, e.Name()), filepath.Join(dst, e.Name())
		switch {
		case e.Name() == "bin":
			mirrorBin(t, root, dst, src, to)
		case strings.HasPrefix(e.Name(), "erts-") && e.IsDir():
			if err := os.Mkdir(to, 0o755); err != nil {
				t.Fatal(err)
			}
			sub, err := os.ReadDir(src)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range sub {
				if s.Name() == "bin" {
					mirrorBin(t, root, dst, filepath.Join(src, "bin"), filepath.Join(to, "bin"))
				} else if err := os.Symlink(filepath.Join(src, s.Name()), filepath.Join(to, s.Name())); err != nil {
					t.Fatal(err)
				}
			}
		default:
			if err := os.Symlink(src, to); err != nil {
				t.Fatal(err)
			}
		}
	}
	if fi, err := os.Lstat(filepath.Join(dst, "bin", "erl")); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("%s/bin/erl is not a script naming %s: cannot point a copy at the new root (%v)", root, root, err)
	}
	// install-otp must not reach the real installation through a symlink.
	bins, _ := filepath.Glob(filepath.Join(dst, "erts-*", "bin"))
	for _, d := range append(bins, filepath.Join(dst, "bin")) {
		if fi, err := os.Lstat(d); err != nil || !fi.IsDir() {
			t.Fatalf("copy of the OTP installation: %s is not a real directory (%v)", d, err)
		}
		if fi, err := os.Lstat(filepath.Join(d, "epmd")); err == nil && fi.Mode().IsRegular() {
			continue
		} else if err == nil && fi.Mode()&os.ModeSymlink != 0 && d == filepath.Join(dst, "bin") {
			continue // bin/epmd -> ../erts-*/bin/epmd, inside the copy
		}
		t.Fatalf("copy of the OTP installation: %s/epmd is neither a copy nor bin's symlink", d)
	}
	return dst
}

// mirrorBin fills dir to with the entries of bin directory from; see copyOTP.
func mirrorBin(t *testing.T, root, dst, from, to string) {
	t.Helper()
	if err := os.Mkdir(to, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		src, out := filepath.Join(from, e.Name()), filepath.Join(to, e.Name())
		fi, err := os.Lstat(src)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(src)
			if err != nil {
				t.Fatal(err)
			}
			if rest, ok := strings.CutPrefix(target, root+"/"); ok {
				target = filepath.Join(dst, rest)
			}
			err = os.Symlink(target, out)
		case e.Name() == "epmd":
			err = copyFile(src, out, fi.Mode().Perm(), nil)
		case fi.Mode().IsRegular() && isScriptNaming(src, root):
			err = copyFile(src, out, fi.Mode().Perm(), func(b []byte) []byte {
				return bytes.ReplaceAll(b, []byte(root), []byte(dst))
			})
		default:
			err = os.Symlink(src, out)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// isScriptNaming reports whether file is a "#!" script that contains root.
func isScriptNaming(file, root string) bool {
	b, err := os.ReadFile(file)
	return err == nil && bytes.HasPrefix(b, []byte("#!")) && bytes.Contains(b, []byte(root))
}

func copyFile(src, dst string, perm os.FileMode, edit func([]byte) []byte) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if edit != nil {
		b = edit(b)
	}
	return os.WriteFile(dst, b, perm)
}

// procsRunning returns the pids of the live processes whose executable is
// one of exes (resolved paths).
func procsRunning(exes map[string]bool) []int {
	var pids []int
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, dir := range dirs {
		exe, err := os.Readlink(dir + "/exe")
		if err != nil || !exes[exe] {
			continue
		}
		if stat, err := os.ReadFile(dir + "/stat"); err == nil {
			// Field 3, after "pid (comm)", is the state; Z is a zombie
			// nobody has reaped yet, not a running daemon.
			if i := bytes.LastIndexByte(stat, ')'); i >= 0 && bytes.HasPrefix(stat[i:], []byte(") Z")) {
				continue
			}
		}
		pid, _ := strconv.Atoi(filepath.Base(dir))
		pids = append(pids, pid)
	}
	return pids
}

func randomCookie(t *testing.T) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "gopmd_" + hex.EncodeToString(b)
}

// node is an Erlang node started by a test.
type node struct {
	cmd    *exec.Cmd
	lines  chan string // its standard output, line by line
	exited chan struct{}
}

// startNode runs erl with args and stops it at cleanup.
func startNode(t *testing.T, erl string, env []string, args ...string) *node {
	t.Helper()
	n := &node{cmd: exec.Command(erl, args...), lines: make(chan string, 100), exited: make(chan struct{})}
	n.cmd.Env = env
	n.cmd.Stderr = &testLog{t: t, prefix: "erl " + args[1] + ": "}
	stdout, err := n.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case n.lines <- sc.Text():
			default:
			}
		}
		io.Copy(io.Discard, stdout)
		n.cmd.Wait()
		close(n.exited)
	}()
	t.Cleanup(func() { n.stop(t) })
	return n
}

// waitLine returns the first line of output that starts with prefix.
func (n *node) waitLine(t *testing.T, prefix string) string {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case l := <-n.lines:
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-n.exited:
			t.Fatalf("%v exited before printing %q", n.cmd.Args, prefix)
		case <-timeout:
			t.Fatalf("%v did not print %q", n.cmd.Args, prefix)
		}
	}
}

// stop ends the node with SIGTERM (an orderly init:stop), or SIGKILL.
func (n *node) stop(t *testing.T) {
	select {
	case <-n.exited:
		return
	default:
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(20 * time.Second):
		t.Logf("%v ignored SIGTERM; killing it", n.cmd.Args)
		n.cmd.Process.Kill()
		<-n.exited
	}
}

// testLog writes a process's output to the test log.
type testLog struct {
	t      *testing.T
	prefix string
}

func (l *testLog) Write(b []byte) (int, error) {
	l.t.Logf("%s%s", l.prefix, bytes.TrimRight(b, "\n"))
	return len(b), nil
}

// erlProgram returns the path of erl. Without it the test is skipped, or
// fails under GOPMD_REQUIRE_ERLANG=1 (as make test and CI set), as
// package epmd/internal/testenv does for the other packages.
func erlProgram(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("erl")
	if err != nil {
		missingErlang(t, "erl not found (a real Erlang node)")
	}
	return p
}

func missingErlang(t *testing.T, msg string) {
	t.Helper()
	msg += "; install erlang-base to run this test"
	if os.Getenv("GOPMD_REQUIRE_ERLANG") == "1" {
		t.Fatal(msg + " [GOPMD_REQUIRE_ERLANG=1]")
	}
	t.Skip(msg)
}
