// Package epmdtest starts port mapper daemons for tests, as net/http/httptest
// starts HTTP servers: gopmd in the test's own process (NewServer), gopmd
// as a process of its own (Ours, then Start), or the stock C epmd (Stock,
// then Start). Every daemon listens on loopback only, on a free port, never
// 4369, and is stopped by the test's cleanup.
//
// A missing stock epmd skips the test under plain `go test` and fails it
// when GOPMD_REQUIRE_ERLANG=1 (make test, CI), so that a missing install
// never passes silently.
package epmdtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopmd/gopmd/epmd/client"
	"github.com/gopmd/gopmd/epmd/internal/testenv"
	"github.com/gopmd/gopmd/epmd/server"
)

// Server is gopmd running in the test's process.
type Server struct {
	*server.Server
	// Addrs are the listeners' addresses: "127.0.0.1:P", and "[::1]:Q"
	// when the host has IPv6 loopback.
	Addrs []string
}

// Addr returns the IPv4 listener's address.
func (s *Server) Addr() string { return s.Addrs[0] }

// NewServer starts an in-process server with cfg on loopback listeners of
// ephemeral ports, IPv4 and (when available) IPv6. The test's cleanup
// shuts it down and fails the test if that takes more than 5 s.
func NewServer(t testing.TB, cfg server.Config) *Server {
	t.Helper()
	srv, err := server.NewErr(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, srv)
}

// Serve is NewServer for a server the test made itself (with faults, say).
func Serve(t testing.TB, srv *server.Server) *Server {
	t.Helper()
	return serve(t, srv)
}

func serve(t testing.TB, srv *server.Server) *Server {
	s := &Server{Server: srv}
	for _, network := range []string{"tcp4", "tcp6"} {
		host := "127.0.0.1"
		if network == "tcp6" {
			host = "[::1]"
		}
		ln, err := net.Listen(network, host+":0")
		if err != nil {
			if network == "tcp6" {
				continue // no IPv6 loopback on this host
			}
			srv.Shutdown(context.Background())
			t.Fatal(err)
		}
		s.Addrs = append(s.Addrs, ln.Addr().String())
		go srv.Serve(ln)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return s
}

// Stock returns the stock epmd's path ($GOPMD_STOCK_EPMD, else epmd on
// PATH), or skips (fails under GOPMD_REQUIRE_ERLANG=1) when there is none.
func Stock(t testing.TB) string {
	t.Helper()
	return testenv.StockEpmd(t)
}

var (
	oursOnce sync.Once
	oursPath string
	oursErr  error
)

// Ours returns the path of gopmd's cmd/epmd: $GOPMD_EPMD_BIN if set, else
// a build made once per test binary, next to it in go test's build
// directory (removed with it), or, for a test binary run from elsewhere,
// in the test's temporary directory.
func Ours(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("GOPMD_EPMD_BIN"); p != "" {
		return p
	}
	name := "gopmd-epmd"
	if runtime.GOOS == "windows" {
		name += ".exe"
	}
	if exe, err := os.Executable(); err == nil && strings.Contains(exe, string(filepath.Separator)+"go-build") {
		oursOnce.Do(func() {
			out := filepath.Join(filepath.Dir(exe), name)
			if oursErr = buildOurs(out); oursErr == nil {
				oursPath = out
			}
		})
		if oursErr != nil {
			t.Fatal(oursErr)
		}
		return oursPath
	}
	out := filepath.Join(t.TempDir(), name)
	if err := buildOurs(out); err != nil {
		t.Fatal(err)
	}
	return out
}

func buildOurs(out string) error {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.Command(goTool, "build", "-o", out, "github.com/gopmd/gopmd/cmd/epmd")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building cmd/epmd: %v\n%s", err, b)
	}
	return nil
}

// NewLoopbackServer starts an in-process server on 127.0.0.1 and ::1 at
// one free port, as the daemon listens with -address 127.0.0.1 (erl needs
// the port), and returns it with the port; cfg.Port is set to it.
func NewLoopbackServer(t testing.TB, cfg server.Config) (*Server, int) {
	t.Helper()
	var lns []net.Listener
	var port int
	for i := 0; ; i++ {
		port = testenv.FreePort(t)
		var err error
		lns, err = server.Listen([]netip.Addr{}, port)
		if err == nil {
			break
		}
		if i == 5 {
			t.Fatal(err)
		}
	}
	cfg.Port = uint32(port)
	srv, err := server.NewErr(cfg)
	if err != nil {
		for _, ln := range lns {
			ln.Close()
		}
		t.Fatal(err)
	}
	s := &Server{Server: srv}
	for _, ln := range lns {
		s.Addrs = append(s.Addrs, ln.Addr().String())
		go srv.Serve(ln)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return s, port
}

// Process is a daemon running as a process of its own.
type Process struct {
	Port   int
	Addr   string         // 127.0.0.1:Port
	Client *client.Client // talks to Addr
	Cmd    *exec.Cmd

	exited chan struct{}
	out    lockedBuffer
}

// Start runs the daemon at bin (Stock or Ours) with
// "-port P -address 127.0.0.1" and args, on a free port, without the
// caller's ERL_EPMD_ variables, and waits until it answers NAMES with its
// own port. It retries on other ports when the daemon exits first (a port
// taken meanwhile makes epmd exit 0). The test's cleanup kills it.
func Start(t testing.TB, bin string, args ...string) *Process {
	t.Helper()
	for range 5 {
		port := testenv.FreePort(t)
		p := &Process{Port: port, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), exited: make(chan struct{})}
		argv := append([]string{"-port", strconv.Itoa(port), "-address", "127.0.0.1"}, args...)
		p.Cmd = exec.Command(bin, argv...)
		// ERL_EPMD_RELAXED_COMMAND_CHECK, even empty, would make every
		// daemon relaxed; ERL_EPMD_ADDRESS is overridden by -address.
		p.Cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
			return strings.HasPrefix(kv, "ERL_EPMD_")
		})
		p.Cmd.Stdout, p.Cmd.Stderr = &p.out, &p.out
		if err := p.Cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", bin, err)
		}
		go func() {
			p.Cmd.Wait()
			close(p.exited)
		}()
		t.Cleanup(func() {
			p.Cmd.Process.Kill() // fails harmlessly if it has exited already
			<-p.exited
			if t.Failed() && p.Output() != "" {
				t.Logf("%s on port %d said:\n%s", filepath.Base(bin), port, p.Output())
			}
		})
		p.Client = &client.Client{Addr: p.Addr, Timeout: 5 * time.Second}
		if p.waitReady() {
			return p
		}
	}
	t.Fatalf("could not start %s on a free port", bin)
	return nil
}

// waitReady polls NAMES until the daemon answers with its own port.
func (p *Process) waitReady() bool {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			return false
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		port, _, err := p.Client.Names(ctx)
		cancel()
		if err == nil && port == uint32(p.Port) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// Exited is closed when the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Wait waits up to d for the process to exit on its own and returns its
// exit status, or -1 if it did not exit.
func (p *Process) Wait(d time.Duration) int {
	select {
	case <-p.exited:
		return p.Cmd.ProcessState.ExitCode()
	case <-time.After(d):
		return -1
	}
}

// Output returns what the process wrote to stdout and stderr so far.
func (p *Process) Output() string { return p.out.String() }

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
