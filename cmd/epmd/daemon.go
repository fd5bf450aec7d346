package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gopmd/gopmd/epmd/registry"
	"github.com/gopmd/gopmd/epmd/server"
)

// shutdownTimeout bounds the wait for connection goroutines after KILL or
// a signal; every connection is closed first, so they end at once.
const shutdownTimeout = 5 * time.Second

// daemon runs the port mapper (or, with -daemon, starts a detached copy of
// this program that will) and returns the exit status.
func daemon(o options, stderr io.Writer) int {
	if o.daemon && !o.daemonChild {
		return detach(o, stderr)
	}
	log, closeLog := newLogger(o, stderr)
	defer closeLog()
	status := serve(o, log)
	if status == statusHandedOver {
		return 0 // another process serves: nothing to tell systemd
	}
	if o.systemd {
		// Stock epmd reports every orderly exit to systemd.
		sdNotify("STATUS=Exited.\nERRNO=" + strconv.Itoa(status))
	}
	return status
}

// rememberedCap is stock epmd's cap on remembered names: 5 under -d
// (MAX_UNREG_COUNT in debug mode), else 1000.
func rememberedCap(debug int) int {
	if debug > 0 {
		return registry.DebugMaxRemembered
	}
	return registry.MaxRemembered
}

// newLogger logs to stderr in stock epmd's line format; to the journal, one
// "<priority>message" line each, when stderr is the journal (a systemd
// service, -systemd or not); or, in the detached daemon, to syslog
// (facility daemon, tag "epmd") when there is one, otherwise nowhere.
func newLogger(o options, stderr io.Writer) (*slog.Logger, func()) {
	level := levelFor(o.debug)
	if !o.daemonChild {
		h := newStderrHandler(stderr, level)
		if isJournal(stderr, o.getenv) {
			h = newJournalHandler(stderr, level)
		}
		return slog.New(h), func() { h.close(logCloseTimeout) }
	}
	w, err := openSyslog()
	if err != nil {
		return slog.New(slog.DiscardHandler), func() {}
	}
	h := newSyslogHandler(w, level)
	return slog.New(h), func() { h.close(logCloseTimeout); w.Close() }
}

// logCloseTimeout bounds the wait for the last log lines at exit, when the
// log output is blocked.
const logCloseTimeout = time.Second

func serve(o options, log *slog.Logger) int {
	// Signals are caught from the start, so that a SIGTERM that comes
	// while the sockets are being set up still ends in an orderly exit.
	sigs, stopSignals := catchSignals(o.daemonChild)
	defer stopSignals()

	daemonFlag := 0
	if o.daemonChild {
		daemonFlag = 1
	}
	log.Debug("epmd running - daemon = " + strconv.Itoa(daemonFlag))

	// The -daemon parent waits for a byte on this pipe, or its end (when
	// this process fails and exits).
	ready := readyPipe(o)
	if ready != nil {
		defer ready.Close()
	}
	cfg := server.Config{
		// The NAMES/DUMP header carries the configured value itself,
		// e.g. 70000 while listening on 70000 mod 65536 (stock sends
		// its int port; a negative one wraps).
		Port:          uint32(o.port),
		Relaxed:       o.relaxed,
		MaxRemembered: rememberedCap(o.debug),
		PacketTimeout: seconds(o.packetTimeout), // 0: the server's default
		DelayAccept:   seconds(o.delayAccept),
		DelayWrite:    seconds(o.delayWrite),
		Logger:        log,
	}
	// A process started by an in-place upgrade takes its sockets and
	// state from the old one (upgrade.go); one started by systemd may
	// find them in the descriptor store (upgrade_systemd_linux.go).
	up := upgradeConn(o)
	var (
		srv *server.Server
		lns []net.Listener
		err error
	)
	if up != nil {
		srv, lns, err = takeOver(o, up, cfg, log)
		if err != nil {
			log.Error("upgrade: cannot take over: " + err.Error())
			return 1
		}
	} else {
		var status int
		var ok bool
		if lns, status, ok = listeners(o, log); !ok {
			return status
		}
		srv, err = newServer(o, cfg, log)
	}
	if err != nil { // $GOPMD_BACKEND names no backend of this system
		log.Error(err.Error())
		for _, ln := range lns {
			ln.Close()
		}
		return 1
	}
	serveErr := make(chan error, len(lns))
	for _, ln := range lns {
		go func() {
			if err := srv.Serve(ln); err != nil {
				serveErr <- fmt.Errorf("listener %v: %w", ln.Addr(), err)
			}
		}()
	}
	if up != nil {
		tookOver(o, up)
	}
	if ready != nil {
		ready.Write([]byte{1}) // the sockets listen
		ready.Close()
	}
	if o.systemd && up == nil {
		// (After an upgrade the service is ready already, and the old
		// process names this one the main process.)
		sdNotify("READY=1\nSTATUS=Processing port mapping requests...\nMAINPID=" + strconv.Itoa(os.Getpid()))
	}
	log.Log(context.Background(), server.LevelConn, "entering the main loop")

	status := 0
	usr2 := upgradeSignal()
wait:
	for {
		select {
		case <-srv.Done(): // KILL
		case <-usr2:
			if upgrade(o, srv, log) {
				return statusHandedOver
			}
			continue
		case sig := <-sigs:
			name := "SIGTERM"
			if sig == syscall.SIGINT {
				name = "SIGINT"
			}
			log.Log(context.Background(), levelNotice, "terminating on "+name)
			if o.systemd && storeForRestart(srv, log) {
				return 0
			}
		case err := <-serveErr:
			// Stock epmd exits 1 when accept fails for good.
			log.Error("error in accept: " + err.Error())
			status = 1
		}
		break wait
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Error("shutdown incomplete", "err", err)
	}
	return status
}

// listeners opens the listening sockets from -systemd, or from -address /
// ERL_EPMD_ADDRESS and the port. When it fails it has logged why, in stock
// epmd's words, and returns the exit status.
func listeners(o options, log *slog.Logger) ([]net.Listener, int, bool) {
	if o.systemd {
		lns, err := systemdListeners()
		if err != nil {
			log.Error(err.Error())
			return nil, 1, false
		}
		return lns, 0, true
	}
	var addrs []netip.Addr
	if o.hasAddresses {
		var err error
		if addrs, err = server.ParseAddresses(o.addresses); err != nil {
			log.Error(err.Error())
			return nil, 1, false
		}
	}
	log.Log(context.Background(), server.LevelConn, "try to initiate listening port "+strconv.Itoa(o.port))
	lns, err := server.ListenReport(addrs, o.port, func(err error) { log.Error(err.Error()) })
	if err == nil {
		return lns, 0, true
	}
	var be *server.BindError
	if errors.Is(err, server.ErrAddrInUse) && errors.As(err, &be) {
		// Another epmd is there already: not an error (erl starts
		// "epmd -daemon" every time and relies on this).
		log.Debug(fmt.Sprintf("there is already a epmd running at port %d on ipaddr %s", o.port, be.Addr))
		return nil, 0, false
	}
	log.Error(err.Error())
	return nil, 1, false
}

// envDaemonReady, in the -daemon copy's environment, is the number of the
// descriptor on which it tells its parent that it listens.
const envDaemonReady = "GOPMD_DAEMON_READY_FD"

// daemonReadyTimeout bounds the parent's wait for the detached daemon.
const daemonReadyTimeout = 2 * time.Second

// detach starts this program again as a daemon, with the same command line
// (argv[0] and the arguments as given, -daemon included, so that ps shows
// "epmd -daemon ..." as for stock), in a new session, in "/", with stdin,
// stdout and stderr on /dev/null. The copy knows it is the daemon from
// envDaemonChild. Descriptors this process inherited are not passed on.
//
// The parent returns once the daemon listens, or has failed (exited), or
// after daemonReadyTimeout: the daemon writes a byte to a pipe (the
// descriptor in envDaemonReady) when its sockets listen, and the pipe
// closes when it exits. So a node that registers right after "epmd
// -daemon" returns finds it listening. The status is 0 in every case but
// a failure to start the copy, as stock's parent exits 0 at once (a daemon
// that fails, say on a port in use, is invisible to the caller).
//
// Unlike stock's double fork, the daemon is a session leader; it never
// opens a terminal, so it cannot acquire a controlling one.
func detach(o options, stderr io.Writer) int {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "epmd: cannot start the daemon: %v\n", err)
		return 1
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		fmt.Fprintf(stderr, "epmd: cannot start the daemon: %v\n", err)
		return 1
	}
	defer pr.Close()
	closeInheritedOnExec()
	cmd := &exec.Cmd{Path: exe, Args: append([]string{os.Args[0]}, o.args...)}
	cmd.Env = childEnv(o.getenv)
	cmd.Dir = "/"
	cmd.SysProcAttr = detachAttr()
	if inheritsExtraFiles {
		cmd.Env = append(cmd.Env, envDaemonReady+"=3")
		cmd.ExtraFiles = []*os.File{pw} // descriptor 3
	}
	// Stdin, Stdout and Stderr left nil are /dev/null.
	err = cmd.Start()
	pw.Close()
	if err != nil {
		fmt.Fprintf(stderr, "epmd: cannot start the daemon: %v\n", err)
		return 1
	}
	cmd.Process.Release()
	// One byte: listening; end of file: the daemon exited (it failed, or
	// another epmd holds the port); a timeout: it is slow, and the
	// caller's own retries take over from here.
	if inheritsExtraFiles {
		pr.SetReadDeadline(time.Now().Add(daemonReadyTimeout))
		pr.Read(make([]byte, 1))
	}
	return 0
}

// readyPipe returns the descriptor on which the -daemon copy tells its
// parent it listens (nil for any other process), and clears the variable
// so that nothing this process starts inherits it.
func readyPipe(o options) *os.File {
	v, ok := o.getenv(envDaemonReady)
	if !ok || !o.daemonChild {
		return nil
	}
	os.Unsetenv(envDaemonReady)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil
	}
	closeOnExec(fd)
	return os.NewFile(uintptr(fd), "ready")
}

// childEnv is this process's environment with the variables epmd reads
// taken from getenv (which tests may fake) and the daemon marker added.
func childEnv(getenv func(string) (string, bool)) []string {
	own := []string{envPort, envAddress, envRelaxed, envDaemonChild, envDaemonReady,
		"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "NOTIFY_SOCKET"}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(own, k) {
			env = append(env, kv)
		}
	}
	for _, k := range own[:3] {
		if v, ok := getenv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return append(env, envDaemonChild+"=1")
}
