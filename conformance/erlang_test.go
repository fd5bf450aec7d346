package conformance

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gopmd/gopmd/epmd/wire"
)

// Real clients against both daemons: Erlang nodes (erl), a C node
// (erl_call) and Elixir when it is installed. Every node gets a unique
// -sname and a cookie, runs with -start_epmd false and ERL_EPMD_PORT set
// to the daemon under test, and is killed in cleanup; every wait is
// bounded.

// erlWait bounds every wait on a real node. Nodes start in about a second,
// much slower on a loaded machine.
const erlWait = 45 * time.Second

// program finds an Erlang tool, skipping (or failing under
// GOPMD_REQUIRE_ERLANG=1) when it is missing.
func program(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if m, _ := filepath.Glob("/usr/lib/erlang/lib/erl_interface-*/bin/" + name); len(m) > 0 {
		return m[len(m)-1]
	}
	missing(t, name)
	return ""
}

// eachDaemon runs f as parallel subtests against stock epmd and against
// the epmd under test.
func eachDaemon(t *testing.T, f func(t *testing.T, epmd string)) {
	t.Helper()
	t.Run("stock", func(t *testing.T) {
		t.Parallel()
		f(t, requireStock(t))
	})
	t.Run("gopmd", func(t *testing.T) {
		t.Parallel()
		f(t, requireOurs(t))
	})
}

// startTestDaemon starts epmd on a free port with flags and stops it in
// cleanup.
func startTestDaemon(t *testing.T, path string, flags ...string) *daemonProc {
	t.Helper()
	d := &daemonStep{}
	for _, f := range flags {
		d.args = append(d.args, argWord{litItem{s: f}})
	}
	p, err := startDaemon(context.Background(), Target{Path: path}, d, vars{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("daemon output:\n%s", p.stderr.String())
		}
	})
	return p
}

// names asks the daemon for its registered nodes.
func (p *daemonProc) names() ([]wire.NameEntry, error) {
	r := &runner{d: p}
	b, err := r.request([]byte{'n'})
	if err != nil {
		return nil, err
	}
	var resp wire.NamesResp
	if err := resp.UnmarshalBinary(b); err != nil {
		return nil, err
	}
	return resp.Nodes, nil
}

// waitNames polls NAMES until cond holds.
func waitNames(t *testing.T, p *daemonProc, what string, cond func([]wire.NameEntry) bool) []wire.NameEntry {
	t.Helper()
	deadline := time.Now().Add(erlWait)
	for {
		ns, err := p.names()
		if err == nil && cond(ns) {
			return ns
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting %v for %s: last NAMES %v (err %v)", erlWait, what, ns, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func listed(name string) func([]wire.NameEntry) bool {
	return func(ns []wire.NameEntry) bool {
		for _, n := range ns {
			if n.Name == name {
				return true
			}
		}
		return false
	}
}

var nodeSeq atomic.Int64

// uniqueName returns a node name no other test (or process) uses.
func uniqueName(tag string) string {
	return fmt.Sprintf("cf%d_%s%d", os.Getpid(), tag, nodeSeq.Add(1))
}

// erlNode is a running erl.
type erlNode struct {
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
	code int
}

// startProgram runs a program with ERL_EPMD_PORT set, collecting its
// output, and kills it in cleanup.
func startProgram(t *testing.T, port int, path string, args ...string) *erlNode {
	t.Helper()
	n := &erlNode{out: new(lockedBuffer), done: make(chan struct{})}
	n.cmd = exec.Command(path, args...)
	n.cmd.Env = cleanEnv([]string{"ERL_EPMD_PORT=" + strconv.Itoa(port)})
	n.cmd.Stdout, n.cmd.Stderr = n.out, n.out
	n.cmd.SysProcAttr = nodeProcAttr()
	if err := startTracked(n.cmd); err != nil {
		t.Fatal(err)
	}
	go func() {
		waitTracked(n.cmd)
		n.code = n.cmd.ProcessState.ExitCode()
		close(n.done)
	}()
	t.Cleanup(func() {
		n.kill()
		if t.Failed() {
			t.Logf("%s %s output:\n%s", filepath.Base(path), strings.Join(args, " "), n.out.String())
		}
	})
	return n
}

// kill ends the process: SIGTERM first (an Erlang node then shuts down
// in order), SIGKILL to its whole process group (erl starts helper
// programs) if it is still there after 5 s. It waits for the process and
// collects the helpers that were orphaned (TestMain made us their
// subreaper).
func (n *erlNode) kill() {
	select {
	case <-n.done:
	default:
		n.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.done:
		case <-time.After(5 * time.Second):
			killGroup(n.cmd.Process.Pid)
			<-n.done
		}
	}
	reapOrphans()
}

// startErl starts an Erlang node: erl -sname NAME with the given eval.
func startErl(t *testing.T, port int, sname, cookie, eval string) *erlNode {
	t.Helper()
	erl := program(t, "erl")
	return startProgram(t, port, erl, "-sname", sname, "-setcookie", cookie,
		"-start_epmd", "false", "-noshell", "-noinput", "-eval", eval)
}

// wait waits for the process to exit and returns its status.
func (n *erlNode) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-n.done:
		return n.code
	case <-time.After(erlWait):
		t.Fatalf("%s did not exit within %v; output:\n%s", n.cmd.Path, erlWait, n.out.String())
	}
	return -1
}

func cookie() string { return fmt.Sprintf("conformance%d_%d", os.Getpid(), time.Now().UnixNano()) }

// lingerEval keeps a node alive until told to stop (or 60 s pass).
const lingerEval = `register(keeper, self()), receive stop -> halt() after 60000 -> halt(1) end.`

// pairEvalA and pairEvalB make two nodes look each other up and ping
// each other, one after the other (simultaneous connection attempts can
// lose messages): a waits until b is registered, pings it and waits for
// b's "done"; b waits until a has connected, disconnects, pings a itself
// (a fresh look-up through the daemon) and sends "done".
const pairPrelude = `
	register(keeper, self()),
	[_, Host] = string:split(atom_to_list(node()), "@"),
	Other = list_to_atom("%[1]s@" ++ Host),
	Until = fun U(_, 0) -> timeout;
	            U(F, N) -> case F() of
	                           true -> ok;
	                           false -> timer:sleep(100), U(F, N - 1)
	                       end
	        end,
	ok = Until(fun() -> {ok, Ns} = net_adm:names(), lists:keymember("%[1]s", 1, Ns) end, 400),
	{ok, Names} = net_adm:names(),
	io:format("names: ~p~n", [lists:sort([N || {N, _} <- Names])]),
	io:format("port_please: ~p~n", [element(1, erl_epmd:port_please("%[1]s", {127,0,0,1}))]),`

const pairEvalA = pairPrelude + `
	io:format("ping: ~p~n", [net_adm:ping(Other)]),
	receive done -> ok after 40000 -> ok end,
	halt().`

const pairEvalB = pairPrelude + `
	ok = Until(fun() -> lists:member(Other, nodes()) end, 400),
	erlang:disconnect_node(Other),
	ok = Until(fun() -> not lists:member(Other, nodes()) end, 400),
	io:format("ping: ~p~n", [net_adm:ping(Other)]),
	%% halt() could drop the message still in the send buffer: wait for a
	%% to go away instead.
	erlang:monitor_node(Other, true),
	{keeper, Other} ! done,
	receive {nodedown, Other} -> ok after 40000 -> ok end,
	halt().`

func TestErlangNodesSeeAndPingEachOther(t *testing.T) {
	program(t, "erl")
	eachDaemon(t, func(t *testing.T, epmd string) {
		d := startTestDaemon(t, epmd)
		ck := cookie()
		a, b := uniqueName("a"), uniqueName("b")
		na := startErl(t, d.dialPort, a, ck, fmt.Sprintf(pairEvalA, b))
		nb := startErl(t, d.dialPort, b, ck, fmt.Sprintf(pairEvalB, a))
		for _, n := range []*erlNode{na, nb} {
			if code := n.wait(t); code != 0 {
				t.Fatalf("node exited %d:\n%s", code, n.out.String())
			}
			out := n.out.String()
			for _, want := range []string{
				fmt.Sprintf("names: [%q,%q]", a, b),
				"port_please: port",
				"ping: pong",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("node output lacks %q:\n%s", want, out)
				}
			}
		}
		waitNames(t, d, "both nodes gone", func(ns []wire.NameEntry) bool { return len(ns) == 0 })
	})
}

func TestErlangDuplicateName(t *testing.T) {
	program(t, "erl")
	eachDaemon(t, func(t *testing.T, epmd string) {
		d := startTestDaemon(t, epmd)
		ck := cookie()
		a := uniqueName("dup")
		startErl(t, d.dialPort, a, ck, lingerEval)
		waitNames(t, d, a+" registered", listed(a))

		// A second node with the same name cannot start distribution.
		second := startErl(t, d.dialPort, a, ck, `io:format("started~n"), halt().`)
		if code := second.wait(t); code == 0 {
			t.Errorf("second node named %s exited 0:\n%s", a, second.out.String())
		}
		if out := second.out.String(); !strings.Contains(out, "seems to be in use by another Erlang node") {
			t.Errorf("second node output lacks the name-in-use message:\n%s", out)
		}

		// The registration call itself reports duplicate_name.
		erl := program(t, "erl")
		raw := startProgram(t, d.dialPort, erl, "-noshell", "-noinput", "-start_epmd", "false", "-eval",
			fmt.Sprintf(`{ok, _} = erl_epmd:start_link(), io:format("register: ~p~n", [erl_epmd:register_node("%s", 12345)]), halt().`, a))
		raw.wait(t)
		if out := raw.out.String(); !strings.Contains(out, "register: {error,duplicate_name}") {
			t.Errorf("erl_epmd:register_node output lacks duplicate_name:\n%s", out)
		}
		if ns, _ := d.names(); len(ns) != 1 || ns[0].Name != a {
			t.Errorf("NAMES after the refusals: %v, want only %s", ns, a)
		}
	})
}

var creationRE = regexp.MustCompile(`creation: (\d+)`)

func TestErlangRestartGetsNewCreation(t *testing.T) {
	program(t, "erl")
	eachDaemon(t, func(t *testing.T, epmd string) {
		d := startTestDaemon(t, epmd)
		ck := cookie()
		a := uniqueName("re")
		var creations []uint64
		for i := 0; i < 2; i++ {
			n := startErl(t, d.dialPort, a, ck, `io:format("creation: ~p~n", [erlang:system_info(creation)]), halt().`)
			if code := n.wait(t); code != 0 {
				t.Fatalf("run %d exited %d:\n%s", i+1, code, n.out.String())
			}
			m := creationRE.FindStringSubmatch(n.out.String())
			if m == nil {
				t.Fatalf("run %d printed no creation:\n%s", i+1, n.out.String())
			}
			c, _ := strconv.ParseUint(m[1], 10, 32)
			creations = append(creations, c)
			waitNames(t, d, a+" unregistered", func(ns []wire.NameEntry) bool { return !listed(a)(ns) })
		}
		// The name is remembered: its counter goes up by one.
		if creations[1] != creations[0]+1 {
			t.Errorf("creations %d then %d, want the second to be the first + 1", creations[0], creations[1])
		}
	})
}

func TestErlangReregistersAfterStop(t *testing.T) {
	program(t, "erl")
	eachDaemon(t, func(t *testing.T, epmd string) {
		d := startTestDaemon(t, epmd, "-relaxed_command_check")
		ck := cookie()
		a := uniqueName("st")
		startErl(t, d.dialPort, a, ck, lingerEval)
		before := waitNames(t, d, a+" registered", listed(a))
		cmd := exec.Command(epmd, "-port", strconv.Itoa(d.port), "-stop", a)
		cmd.Env = cleanEnv(nil)
		out, err := cmd.CombinedOutput()
		if err != nil || string(out) != "STOPPED\n" {
			t.Fatalf("epmd -stop %s: %q, %v; want STOPPED", a, out, err)
		}
		stopped := time.Now()
		// The node notices its socket closed and registers again (OTP
		// retries every 2 s), with a new distribution port entry.
		deadline := stopped.Add(10 * time.Second)
		for {
			ns, err := d.names()
			if err == nil && listed(a)(ns) {
				t.Logf("re-registered %v after the stop (before: %v, now: %v)", time.Since(stopped).Round(time.Millisecond), before, ns)
				if time.Since(stopped) > 6*time.Second {
					t.Errorf("re-registration took %v, want about 2 s", time.Since(stopped))
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not register again within 10 s of the stop", a)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

func TestErlCallCNode(t *testing.T) {
	program(t, "erl")
	erlCall := program(t, "erl_call")
	eachDaemon(t, func(t *testing.T, epmd string) {
		d := startTestDaemon(t, epmd)
		ck := cookie()
		a := uniqueName("ec")
		startErl(t, d.dialPort, a, ck, lingerEval)
		waitNames(t, d, a+" registered", listed(a))
		// erl_call looks the node up with PORT_PLEASE2 (ei reads
		// ERL_EPMD_PORT), connects to it and calls erlang:node().
		n := startProgram(t, d.dialPort, erlCall, "-sname", a, "-c", ck, "-a", "erlang node []")
		if code := n.wait(t); code != 0 {
			t.Fatalf("erl_call exited %d:\n%s", code, n.out.String())
		}
		if out := n.out.String(); !regexp.MustCompile(`^'?` + regexp.QuoteMeta(a) + `@[^\s']+'?\s*$`).MatchString(out) {
			t.Errorf("erl_call printed %q, want the node name %s@HOST", out, a)
		}
		// A name nobody registered: ei gets w 01 and erl_call fails.
		n = startProgram(t, d.dialPort, erlCall, "-sname", uniqueName("none"), "-c", ck, "-a", "erlang node []")
		if code := n.wait(t); code == 0 {
			t.Errorf("erl_call to an unregistered node exited 0:\n%s", n.out.String())
		}
	})
}

func TestElixirNode(t *testing.T) {
	elixir := func(t *testing.T) string {
		p, err := exec.LookPath("elixir")
		if err != nil {
			t.Skip("elixir not found; install it to run this test")
		}
		return p
	}
	elixir(t)
	eachDaemon(t, func(t *testing.T, epmd string) {
		d := startTestDaemon(t, epmd)
		a := uniqueName("ex")
		n := startProgram(t, d.dialPort, elixir(t), "--sname", a, "--cookie", cookie(),
			"--erl", "-start_epmd false",
			"-e", `{:ok, names} = :net_adm.names(); IO.puts("names: #{inspect(Enum.map(names, &elem(&1, 0)))}"); IO.puts("node: #{Node.self()}")`)
		if code := n.wait(t); code != 0 {
			t.Fatalf("elixir exited %d:\n%s", code, n.out.String())
		}
		out := n.out.String()
		if !strings.Contains(out, fmt.Sprintf("names: [%q]", a)) || !strings.Contains(out, "node: "+a+"@") {
			t.Errorf("elixir output:\n%s", out)
		}
	})
}
