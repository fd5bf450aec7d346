package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gopmd/gopmd/epmd/handover"
	"github.com/gopmd/gopmd/epmd/server"
)

// upgradeSignal returns the channel on which SIGUSR2, the upgrade's
// signal, arrives.
func upgradeSignal() <-chan os.Signal {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGUSR2)
	return c
}

// upgrade starts the program at selfPath and hands everything over to it
// (upgrade.go). It reports whether the new process took over; if not, this
// one serves on, as before, and the reason is logged.
func upgrade(o options, srv *server.Server, log *slog.Logger) bool {
	if srv.Backend() != server.BackendEpoll {
		log.Error("upgrade refused: the " + srv.Backend() + " backend cannot hand over its sockets; still serving (use the epoll backend)")
		return false
	}
	if selfPath == "" {
		log.Error("upgrade refused: the program's path is unknown; still serving")
		return false
	}
	start := time.Now()
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		log.Error("upgrade failed: socketpair: " + err.Error() + "; still serving")
		return false
	}
	theirs := os.NewFile(uintptr(pair[1]), "upgrade")
	oursF := os.NewFile(uintptr(pair[0]), "upgrade")
	nc, err := net.FileConn(oursF)
	oursF.Close()
	if err != nil {
		theirs.Close()
		log.Error("upgrade failed: " + err.Error() + "; still serving")
		return false
	}
	uc := nc.(*net.UnixConn)
	defer uc.Close()

	cmd := &exec.Cmd{
		Path:       selfPath,
		Args:       append([]string{os.Args[0]}, o.args...),
		Env:        append(withoutEnv(os.Environ(), envUpgradeFD), envUpgradeFD+"=3"),
		Stdin:      os.Stdin,
		Stdout:     os.Stdout,
		Stderr:     os.Stderr,
		ExtraFiles: []*os.File{theirs},
	}
	err = cmd.Start()
	theirs.Close()
	if err != nil {
		log.Error("upgrade failed: cannot start " + selfPath + ": " + err.Error() + "; still serving")
		return false
	}
	pid := cmd.Process.Pid
	log.Info(fmt.Sprintf("upgrade: started %s, pid %d", selfPath, pid))
	frozen := false
	fail := func(why string) bool {
		cmd.Process.Kill()
		cmd.Wait() // gone: it serves nothing from here on
		if frozen {
			srv.Thaw()
		}
		log.Error(fmt.Sprintf("upgrade failed: %s; pid %d killed, still serving", why, pid))
		return false
	}
	r := bufio.NewReader(uc)
	uc.SetDeadline(start.Add(upgradeStartTimeout))
	hello, err := handover.ReadControl(r)
	switch {
	case err != nil:
		return fail("no word from the new program: " + errText(err))
	case hello.Kind == handover.Failed:
		return fail("the new program failed: " + hello.Reason)
	case hello.Kind != handover.Hello || hello.Pid != pid:
		return fail(fmt.Sprintf("unexpected %s from pid %d", hello.Kind, hello.Pid))
	}
	frozenAt := time.Now()
	fr, err := srv.Freeze(context.Background(), upgradeDrain)
	if err != nil {
		return fail("cannot freeze: " + err.Error())
	}
	frozen = true
	drained := time.Now()
	uc.SetDeadline(time.Now().Add(upgradeTakeoverTimeout))
	err = handover.Send(uc, append(slices.Clip(fr.Listeners), fr.Conns...), fr.Snapshot)
	fr.Close()
	if err != nil {
		return fail(err.Error())
	}
	log.Debug("upgrade: handed over", "freeze", drained.Sub(frozenAt), "send", time.Since(drained))
	m, err := handover.ReadControl(r)
	switch {
	case err != nil:
		return fail("no word from the new program after the handover: " + errText(err))
	case m.Kind == handover.Failed:
		return fail("the new program could not take over: " + m.Reason)
	case m.Kind != handover.Serving:
		return fail("unexpected " + m.Kind)
	}
	log.Info(fmt.Sprintf("upgrade: pid %d (gopmd %s) took over %d listening and %d registration sockets in %v (not accepting for %v)",
		pid, hello.Version, len(fr.Listeners), len(fr.Conns), time.Since(start).Round(time.Millisecond),
		time.Since(frozenAt).Round(100*time.Microsecond)))
	if o.systemd {
		// The new process is the service's main process now.
		// The new process is the service's main process now; systemd
		// must know before this one exits, or it takes the exit for the
		// service's end.
		sdNotify("MAINPID=" + strconv.Itoa(pid))
		if err := notifyBarrier(5 * time.Second); err != nil {
			log.Error("upgrade: systemd did not confirm the new main process: " + err.Error())
		}
	}
	cmd.Process.Release()
	srv.Abandon()
	return true
}

func errText(err error) string {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return "timed out"
	}
	return err.Error()
}

func withoutEnv(env []string, keys ...string) []string {
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(keys, k) {
			out = append(out, kv)
		}
	}
	return out
}

// upgradeConn returns the new program's end of the socket pair (nil when
// this process was not started by an upgrade) and clears the variable.
func upgradeConn(o options) *net.UnixConn {
	v, ok := o.getenv(envUpgradeFD)
	if !ok {
		return nil
	}
	os.Unsetenv(envUpgradeFD)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil
	}
	f := os.NewFile(uintptr(fd), "upgrade")
	nc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil
	}
	uc, _ := nc.(*net.UnixConn)
	return uc
}

// upgradeHook carries out the test hook at point, if it names it.
func upgradeHook(o options, point string, uc *net.UnixConn) {
	v, _ := o.getenv(envUpgradeHook)
	p, action, _ := strings.Cut(v, ":")
	if p != point {
		return
	}
	fmt.Fprintln(os.Stderr, "test hook: "+v)
	switch action {
	case "die":
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	case "stall":
		select {}
	case "pause":
		time.Sleep(500 * time.Millisecond)
	case "fail":
		uc.Write(handover.AppendControl(nil, handover.Control{Kind: handover.Failed, Reason: "test hook at " + point}))
		os.Exit(1)
	}
}

// takeOver is the new program's side: HELLO, receive, restore. It returns
// the server and its listeners, not yet served; on an error it has told
// the old process.
func takeOver(o options, uc *net.UnixConn, cfg server.Config, log *slog.Logger) (*server.Server, []net.Listener, error) {
	failed := func(err error) (*server.Server, []net.Listener, error) {
		uc.Write(handover.AppendControl(nil, handover.Control{Kind: handover.Failed, Reason: err.Error()}))
		return nil, nil, err
	}
	upgradeHook(o, "hello", uc)
	uc.SetDeadline(time.Now().Add(upgradeStartTimeout))
	if _, err := uc.Write(handover.AppendControl(nil, handover.Control{Kind: handover.Hello, Pid: os.Getpid(), Version: versionString()})); err != nil {
		return nil, nil, err
	}
	// The old process freezes, drains (up to upgradeDrain) and sends.
	uc.SetDeadline(time.Now().Add(upgradeDrain + upgradeTakeoverTimeout))
	files, snap, err := handover.Receive(uc, 1<<20, 1<<30)
	if err != nil {
		return failed(err)
	}
	received := time.Now()
	upgradeHook(o, "received", uc)
	srv, lns, err := restoreFiles(cfg, files, snap)
	if err != nil {
		return failed(err)
	}
	log.Debug("upgrade: restored", "restore", time.Since(received))
	// Restored, not yet accepting: the old process is frozen, so a
	// stall here holds new connections in the backlog until it gives up.
	upgradeHook(o, "restored", uc)
	log.Info(fmt.Sprintf("upgrade: gopmd %s took over: %d listening sockets, %d registration sockets", versionString(), len(lns), srv.NumConns()))
	return srv, lns, nil
}

// restoreFiles builds the server from the snapshot and the named files:
// listeners (server.ListenerPrefix), kept sockets (server.ConnPrefix).
// Every file is closed.
func restoreFiles(cfg server.Config, files []handover.NamedFile, snap []byte) (*server.Server, []net.Listener, error) {
	conns := map[string]*os.File{}
	var lns []net.Listener
	var err error
	for _, nf := range files {
		switch {
		case strings.HasPrefix(nf.Name, server.ConnPrefix):
			if conns[nf.Name] != nil {
				err = errors.Join(err, errors.New("descriptor "+nf.Name+" twice"))
				nf.File.Close()
				continue
			}
			conns[nf.Name] = nf.File
		case strings.HasPrefix(nf.Name, server.ListenerPrefix):
			ln, lerr := net.FileListener(nf.File)
			nf.File.Close()
			if lerr != nil {
				err = errors.Join(err, lerr)
				continue
			}
			lns = append(lns, ln)
		default:
			nf.File.Close()
			err = errors.Join(err, errors.New("unknown descriptor "+nf.Name))
		}
	}
	if err != nil {
		for _, f := range conns {
			f.Close()
		}
		for _, ln := range lns {
			ln.Close()
		}
		return nil, nil, err
	}
	srv, err := server.Restore(cfg, snap, conns) // closes conns
	if err != nil {
		for _, ln := range lns {
			ln.Close()
		}
		return nil, nil, err
	}
	return srv, lns, nil
}

// tookOver tells the old process that this one serves.
func tookOver(o options, uc *net.UnixConn) {
	uc.SetDeadline(time.Now().Add(time.Second))
	uc.Write(handover.AppendControl(nil, handover.Control{Kind: handover.Serving}))
	uc.Close()
}

// notifyBarrier waits until the service manager has read every
// notification sent before it, as sd_notify_barrier does: BARRIER=1 with
// the write end of a pipe, which the manager closes once it got there.
func notifyBarrier(timeout time.Duration) error {
	ns := os.Getenv("NOTIFY_SOCKET")
	if ns == "" {
		return nil
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return err
	}
	r := os.NewFile(uintptr(p[0]), "barrier")
	defer r.Close()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		unix.Close(p[1])
		return err
	}
	err = unix.Sendmsg(fd, []byte("BARRIER=1"), unix.UnixRights(p[1]), &unix.SockaddrUnix{Name: ns}, 0)
	unix.Close(fd)
	unix.Close(p[1])
	if err != nil {
		return err
	}
	r.SetReadDeadline(time.Now().Add(timeout))
	_, err = r.Read(make([]byte, 1))
	if err == io.EOF {
		return nil
	}
	return err
}
