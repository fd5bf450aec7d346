//go:build linux

package main

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gopmd/gopmd/epmd/client"
	"github.com/gopmd/gopmd/epmd/registry"
	"github.com/gopmd/gopmd/epmd/wire"
)

// buildVersion builds the daemon stamped with version into dir.
func buildVersion(t *testing.T, dir, version string) string {
	t.Helper()
	out := filepath.Join(dir, "epmd-"+version)
	cmd := exec.Command("go", "build", "-o", out, "-ldflags", "-X main.version="+version, ".")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", version, err, b)
	}
	return out
}

// install puts bin at path as a package manager does: a new file renamed
// over the old one, which the running daemon keeps open.
func install(t *testing.T, bin, path string) {
	t.Helper()
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".new", b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
}

// upgradable is a daemon whose generations share one stderr, a pipe the
// test reads.
type upgradable struct {
	port  int
	first *exec.Cmd
	log   lineLog
	pid   atomic.Int64 // the generation serving
	// paused holds, per upgrade, how long no process accepted (the old
	// one's log line).
	paused []time.Duration
}

type lineLog struct {
	mu    sync.Mutex
	lines []string
	grew  chan struct{}
}

func (l *lineLog) add(s string) {
	l.mu.Lock()
	l.lines = append(l.lines, s)
	close(l.grew)
	l.grew = make(chan struct{})
	l.mu.Unlock()
}

// waitMatch returns the submatches of the first line from index from on
// that re matches, and the index after it.
func (l *lineLog) waitMatch(t testing.TB, from int, re *regexp.Regexp, d time.Duration) ([]string, int) {
	t.Helper()
	deadline := time.After(d)
	for {
		l.mu.Lock()
		for i := from; i < len(l.lines); i++ {
			if m := re.FindStringSubmatch(l.lines[i]); m != nil {
				l.mu.Unlock()
				return m, i + 1
			}
		}
		grew := l.grew
		l.mu.Unlock()
		select {
		case <-grew:
		case <-deadline:
			t.Fatalf("no log line matching %s; log:\n%s", re, l.String())
		}
	}
}

func (l *lineLog) count(re *regexp.Regexp) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.lines {
		if re.MatchString(s) {
			n++
		}
	}
	return n
}

func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func (l *lineLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

// startUpgradable runs path as a daemon with -d (registrations are
// logged) on a free port, and kills the generation serving at cleanup.
func startUpgradable(t *testing.T, path string, env []string) *upgradable {
	t.Helper()
	for range startAttempts {
		port := freePort(t)
		u := &upgradable{port: port, log: lineLog{grew: make(chan struct{})}}
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		u.first = exec.Command(path, "-port", strconv.Itoa(port), "-address", "127.0.0.1", "-d")
		u.first.Env = append(append(baseEnv(), "GOPMD_BACKEND=epoll"), env...)
		u.first.Stderr = pw
		if err := u.first.Start(); err != nil {
			t.Fatal(err)
		}
		pw.Close()
		u.pid.Store(int64(u.first.Process.Pid))
		go func() {
			sc := bufio.NewScanner(pr)
			for sc.Scan() {
				u.log.add(sc.Text())
			}
			pr.Close()
		}()
		exited := make(chan struct{})
		go func() { u.first.Wait(); close(exited) }()
		t.Cleanup(func() {
			// Only the processes this test started: the first, and
			// the generation serving now.
			syscall.Kill(int(u.pid.Load()), syscall.SIGKILL)
			u.first.Process.Kill()
			<-exited
		})
		if waitUp(t, port, exited) {
			return u
		}
	}
	t.Fatal("could not start a daemon")
	return nil
}

var tookOverLine = regexp.MustCompile(`upgrade: pid (\d+) \(gopmd (\S+)\) took over (\d+) listening and (\d+) registration sockets in \S+ \(not accepting for (\S+)\)`)

// upgradeTo installs bin and sends SIGUSR2; it waits for the new
// generation (checking it runs version) and for the old one to exit.
func (u *upgradable) upgradeTo(t *testing.T, bin, path, version string, from int) int {
	t.Helper()
	install(t, bin, path)
	old := int(u.pid.Load())
	if err := syscall.Kill(old, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	m, next := u.log.waitMatch(t, from, tookOverLine, 30*time.Second)
	pid, _ := strconv.Atoi(m[1])
	if pid == old || m[2] != version {
		t.Fatalf("upgrade to %s: pid %d (was %d) runs %s", version, pid, old, m[2])
	}
	u.pid.Store(int64(pid))
	if d, err := time.ParseDuration(m[5]); err == nil {
		u.paused = append(u.paused, d)
	}
	waitGone(t, old)
	return next
}

// waitGone waits until pid has exited (a zombie counts as exited).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return
		}
		if i := strings.LastIndexByte(string(b), ')'); i > 0 && strings.HasPrefix(string(b[i+1:]), " Z") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d did not exit", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lookers look names up from several clients until stopped, and count
// the failures.
type lookers struct {
	stop     chan struct{}
	wg       sync.WaitGroup
	ok, fail atomic.Int64
	mu       sync.Mutex
	errs     []string
}

func startLookers(t *testing.T, port, n int, names []string) *lookers {
	l := &lookers{stop: make(chan struct{})}
	for i := range n {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			c := &client.Client{Addr: "127.0.0.1:" + strconv.Itoa(port), Timeout: 10 * time.Second}
			r := rand.New(rand.NewPCG(uint64(i), 1))
			deadline := time.Now().Add(10 * time.Minute) // bounded
			for time.Now().Before(deadline) {
				select {
				case <-l.stop:
					return
				default:
				}
				name := names[r.IntN(len(names))]
				if _, err := c.Lookup(context.Background(), name); err != nil {
					l.fail.Add(1)
					l.mu.Lock()
					if len(l.errs) < 10 {
						l.errs = append(l.errs, name+": "+err.Error())
					}
					l.mu.Unlock()
				} else {
					l.ok.Add(1)
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}
	return l
}

func (l *lookers) finish(t *testing.T) {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	t.Logf("look-ups: %d answered, %d failed", l.ok.Load(), l.fail.Load())
	if l.fail.Load() != 0 || l.ok.Load() == 0 {
		t.Errorf("%d look-ups failed, %d answered: %v", l.fail.Load(), l.ok.Load(), l.errs)
	}
}

// registerRaw registers n nodes with raw ALIVE2 requests.
func registerRaw(t *testing.T, port, n int) []*client.Registration {
	t.Helper()
	c := &client.Client{Addr: "127.0.0.1:" + strconv.Itoa(port), Timeout: 10 * time.Second}
	var regs []*client.Registration
	for i := range n {
		r, err := c.Register(context.Background(), wire.Node{Name: fmt.Sprintf("raw%03d", i), Port: uint16(20000 + i),
			Type: wire.NodeNormal, Proto: wire.ProtoTCP4, High: 6, Low: 5, Extra: "x" + strconv.Itoa(i)})
		if err != nil {
			t.Fatalf("register raw%03d: %v", i, err)
		}
		t.Cleanup(func() { r.Close() })
		regs = append(regs, r)
	}
	return regs
}

func checkOpen(t *testing.T, regs []*client.Registration) {
	t.Helper()
	closed := 0
	for _, r := range regs {
		select {
		case <-r.Done():
			closed++
		default:
		}
	}
	if closed != 0 {
		t.Errorf("%d of %d registration sockets closed", closed, len(regs))
	}
}

func names(t *testing.T, port int) string {
	t.Helper()
	r := runBin(t, ourBin, nil, append(portArgs(port), "-names")...)
	if r.code != 0 {
		t.Fatalf("-names: %v", r)
	}
	return r.stdout
}

// erlNode starts a distributed erl node registered with the daemon on
// port; it holds its name until the test ends.
func erlNode(t *testing.T, erl string, port int, name string) {
	t.Helper()
	env := append(baseEnv(), "ERL_EPMD_PORT="+strconv.Itoa(port))
	n := startNode(t, erl, env, "-sname", name, "-noshell", "-start_epmd", "false", "-setcookie", randomCookie(t),
		"-kernel", "logger_level", "emergency",
		"-eval", `io:format("up~n"), receive after infinity -> ok end`)
	n.waitLine(t, "up")
}

// expectedCreation is the creation a daemon never restarted gives a name
// that held creation was and registers again after unregistering.
func expectedCreation(t *testing.T, n wire.Node, was uint32) uint32 {
	t.Helper()
	g, err := registry.Import(registry.State{Live: []registry.Entry{{Node: n, Owner: 1, Creation: was}}}, registry.DebugMaxRemembered)
	if err != nil {
		t.Fatal(err)
	}
	g.Unregister(n.Name, 1)
	c, ok := g.Register(n, 2, 0, time.Now().Unix())
	if !ok {
		t.Fatal("reference registry refused")
	}
	return c
}

// TestUpgradeInPlace: 200 registrations and real erl nodes, look-ups from
// several clients, 20 in-place upgrades alternating two builds: no look-up
// fails, no registration socket closes, NAMES is the same, the erl nodes
// never register again, each upgrade runs the other build, and a name
// that comes back gets the creation of a daemon never restarted.
func TestUpgradeInPlace(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two daemons and upgrades 20 times")
	}
	erl := erlProgram(t)
	dir := t.TempDir()
	bins := map[string]string{"vA": buildVersion(t, dir, "vA"), "vB": buildVersion(t, dir, "vB")}
	path := filepath.Join(dir, "epmd")
	install(t, bins["vA"], path)
	u := startUpgradable(t, path, nil)

	regs := registerRaw(t, u.port, 200)
	erlNames := []string{"upg_a", "upg_b"}
	for _, n := range erlNames {
		erlNode(t, erl, u.port, n)
	}
	all := []string{"upg_a", "upg_b"}
	for i := range regs {
		all = append(all, fmt.Sprintf("raw%03d", i))
	}
	before := names(t, u.port)
	if strings.Count(before, "\n") != 1+200+len(erlNames) {
		t.Fatalf("names before:\n%s", before)
	}
	look := startLookers(t, u.port, 4, all)

	from := 0
	versions := []string{"vB", "vA"}
	for i := range 20 {
		v := versions[i%2]
		from = u.upgradeTo(t, bins[v], path, v, from)
	}
	time.Sleep(100 * time.Millisecond)
	look.finish(t)

	if after := names(t, u.port); after != before {
		t.Errorf("names before:\n%s\nafter:\n%s", before, after)
	}
	checkOpen(t, regs)
	for _, n := range erlNames {
		reRegistered := regexp.MustCompile(`registered node .*name=` + n + `\b`)
		if c := u.log.count(reRegistered); c != 1 {
			t.Errorf("erl node %s registered %d times (want once: its socket never closed)", n, c)
		}
		if c := u.log.count(regexp.MustCompile(`unregistered node .*name=` + n + `\b`)); c != 0 {
			t.Errorf("erl node %s unregistered %d times", n, c)
		}
	}
	if c := u.log.count(tookOverLine); c != 20 {
		t.Errorf("%d upgrades logged, want 20", c)
	}
	// The parts of that time, from the -d log: the old process's freeze
	// (the drain) and sending, the new one's restore.
	steps := map[string]time.Duration{}
	stepRe := regexp.MustCompile(`upgrade: (?:handed over|restored) (.*)`)
	u.log.mu.Lock()
	for _, l := range u.log.lines {
		if m := stepRe.FindStringSubmatch(l); m != nil {
			for _, kv := range strings.Fields(m[1]) {
				k, v, _ := strings.Cut(kv, "=")
				if d, err := time.ParseDuration(v); err == nil {
					steps[k] = max(steps[k], d)
				}
			}
		}
	}
	u.log.mu.Unlock()
	t.Logf("slowest parts: freeze %v, send %v, restore %v", steps["freeze"], steps["send"], steps["restore"])
	slices.Sort(u.paused)
	if len(u.paused) == 20 {
		t.Logf("not accepting during an upgrade (200 registrations): min %v, median %v, max %v",
			u.paused[0], u.paused[10], u.paused[19])
	}

	// Creations survive: raw000 leaves and comes back.
	was := regs[0].Creation()
	regs[0].Close()
	c := &client.Client{Addr: "127.0.0.1:" + strconv.Itoa(u.port), Timeout: 10 * time.Second}
	var r *client.Registration
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		r, err = c.Register(context.Background(), regs[0].Node())
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("raw000 could not register again: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	defer r.Close()
	if want := expectedCreation(t, regs[0].Node(), was); r.Creation() != want {
		t.Errorf("raw000 came back with creation %d, want %d (had %d)", r.Creation(), want, was)
	}
}

var startedLine = regexp.MustCompile(`upgrade: started \S+, pid (\d+)`)
var failedLine = regexp.MustCompile(`upgrade failed: (.*)`)

// TestUpgradeFails: the new program dies, stalls or refuses at each point
// of the takeover, or is killed with SIGKILL in the middle: the old one
// serves on, nothing lost, and says why; the next upgrade works.
func TestUpgradeFails(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a daemon and fails upgrades")
	}
	dir := t.TempDir()
	bin := buildVersion(t, dir, "vA")
	cases := []struct {
		hook string
		kill bool   // the test kills the new process with SIGKILL
		why  string // in the old one's log
	}{
		{hook: "hello:die", why: "no word from the new program"},
		{hook: "hello:fail", why: "the new program failed: test hook at hello"},
		{hook: "received:die", why: "no word from the new program after the handover"},
		{hook: "received:stall", kill: true, why: "no word from the new program after the handover"},
		{hook: "received:fail", why: "could not take over: test hook at received"},
		{hook: "restored:stall", why: "timed out"},
		{hook: "restored:die", why: "no word from the new program after the handover"},
	}
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.hook, ":", "-"), func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "epmd")
			install(t, bin, path)
			u := startUpgradable(t, path, []string{envUpgradeHook + "=" + tc.hook})
			regs := registerRaw(t, u.port, 20)
			var all []string
			for i := range regs {
				all = append(all, fmt.Sprintf("raw%03d", i))
			}
			before := names(t, u.port)
			look := startLookers(t, u.port, 2, all)
			old := int(u.pid.Load())
			syscall.Kill(old, syscall.SIGUSR2)
			m, from := u.log.waitMatch(t, 0, startedLine, 30*time.Second)
			newPid, _ := strconv.Atoi(m[1])
			if tc.kill {
				u.log.waitMatch(t, from, regexp.MustCompile(`test hook: received:stall`), 30*time.Second)
				syscall.Kill(newPid, syscall.SIGKILL)
			}
			m, _ = u.log.waitMatch(t, from, failedLine, 30*time.Second)
			if !strings.Contains(m[1], tc.why) {
				t.Errorf("failure logged as %q, want %q in it", m[1], tc.why)
			}
			waitGone(t, newPid)
			look.finish(t)
			if after := names(t, u.port); after != before {
				t.Errorf("names before:\n%s\nafter:\n%s", before, after)
			}
			checkOpen(t, regs)
			// Still serving, registrations included: one leaves, one comes.
			regs[0].Close()
			waitFor(t, "raw000 gone", func() bool { return !strings.Contains(names(t, u.port), "raw000") })
			registerRaw(t, u.port, 1)
		})
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// With the portable backend, SIGUSR2 is refused with a log line and the
// daemon serves on, registrations kept.
func TestUpgradePortableRefuses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "epmd")
	install(t, ourBin, path)
	u := startUpgradable(t, path, []string{"GOPMD_BACKEND=portable"})
	regs := registerRaw(t, u.port, 3)
	before := names(t, u.port)
	syscall.Kill(int(u.pid.Load()), syscall.SIGUSR2)
	u.log.waitMatch(t, 0, regexp.MustCompile(`upgrade refused: the portable backend cannot hand over its sockets; still serving`), 30*time.Second)
	if after := names(t, u.port); after != before {
		t.Errorf("names before:\n%s\nafter:\n%s", before, after)
	}
	checkOpen(t, regs)
}

// TestUpgradeDaemonized: a daemon started with -daemon (as erl starts it)
// upgrades in place too: the new process is a -daemon copy with the same
// command line, and nothing is lost.
func TestUpgradeDaemonized(t *testing.T) {
	path := filepath.Join(t.TempDir(), "epmd")
	install(t, ourBin, path)
	var port, pid int
	var args []string
	for range startAttempts {
		port = freePort(t)
		args = append(portArgs(port), "-daemon", "-address", "127.0.0.1")
		runBin(t, path, []string{"GOPMD_BACKEND=epoll"}, args...)
		if waitUp(t, port, nil) {
			pid = findDaemon(t, path, port)
			break
		}
	}
	if pid == 0 {
		t.Fatal("no detached daemon")
	}
	serving := pid
	t.Cleanup(func() { syscall.Kill(serving, syscall.SIGTERM) }) // the daemon this test started, or its successor
	regs := registerRaw(t, port, 10)
	before := names(t, port)
	if err := syscall.Kill(pid, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a new daemon", func() bool {
		p := findDaemon(t, path, port)
		if p != 0 && p != pid {
			serving = p
			return true
		}
		return false
	})
	waitGone(t, pid)
	cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(serving) + "/cmdline")
	if want := strings.Join(append([]string{path}, args...), "\x00") + "\x00"; string(cmdline) != want {
		t.Errorf("new daemon's command line %q, want %q", cmdline, want)
	}
	environ, _ := os.ReadFile("/proc/" + strconv.Itoa(serving) + "/environ")
	if !strings.Contains(string(environ), envDaemonChild+"=1") {
		t.Errorf("new daemon's environment: %q", environ)
	}
	if after := names(t, port); after != before {
		t.Errorf("names before:\n%s\nafter:\n%s", before, after)
	}
	checkOpen(t, regs)
	// Nothing left of the upgrade's socket pair in the new daemon: its
	// sockets are TCP ones, but for syslog's when there is a syslog.
	tcp := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, _ := os.ReadFile(f)
		for _, l := range strings.Split(string(b), "\n")[1:] {
			if fs := strings.Fields(l); len(fs) > 9 {
				tcp[fs[9]] = true
			}
		}
	}
	fds, _ := os.ReadDir("/proc/" + strconv.Itoa(serving) + "/fd")
	other := 0
	for _, fd := range fds {
		target, _ := os.Readlink("/proc/" + strconv.Itoa(serving) + "/fd/" + fd.Name())
		if ino, ok := strings.CutPrefix(target, "socket:["); ok && !tcp[strings.TrimSuffix(ino, "]")] {
			other++
		}
	}
	allowed := 0
	if _, err := os.Stat("/dev/log"); err == nil {
		allowed = 1
	}
	if other > allowed {
		t.Errorf("new daemon holds %d sockets other than TCP ones, want at most %d", other, allowed)
	}
}

// TestUpgradePeerGoneInTransit: a node whose socket is on its way to the
// new process closes it; the new process finds it closed and frees the
// name, as if the node had closed it a moment later, and the name can be
// registered again with the next creation.
func TestUpgradePeerGoneInTransit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "epmd")
	install(t, ourBin, path)
	u := startUpgradable(t, path, []string{envUpgradeHook + "=received:pause"})
	regs := registerRaw(t, u.port, 5)
	syscall.Kill(int(u.pid.Load()), syscall.SIGUSR2)
	_, from := u.log.waitMatch(t, 0, regexp.MustCompile(`test hook: received:pause`), 30*time.Second)
	was := regs[2].Creation()
	regs[2].Close() // in transit: the old process is frozen, the new one has not restored
	m, _ := u.log.waitMatch(t, from, tookOverLine, 30*time.Second)
	if m[4] != "5" {
		t.Errorf("%s registration sockets handed over, want 5", m[4])
	}
	u.log.waitMatch(t, from, regexp.MustCompile(`unregistered node .*name=raw002\b`), 30*time.Second)
	if got := names(t, u.port); strings.Contains(got, "raw002") {
		t.Errorf("raw002 still listed:\n%s", got)
	}
	checkOpen(t, append(regs[:2:2], regs[3:]...))
	c := &client.Client{Addr: "127.0.0.1:" + strconv.Itoa(u.port), Timeout: 10 * time.Second}
	r, err := c.Register(context.Background(), regs[2].Node())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if want := expectedCreation(t, regs[2].Node(), was); r.Creation() != want {
		t.Errorf("raw002 came back with creation %d, want %d", r.Creation(), want)
	}
}

// TestUpgradeToOtherProgram: the file replaced by a program that knows
// nothing of the handover (stock epmd here: it finds the port taken and
// exits): the daemon logs the failure and serves on, nothing lost.
func TestUpgradeToOtherProgram(t *testing.T) {
	needStock(t)
	path := filepath.Join(t.TempDir(), "epmd")
	install(t, ourBin, path)
	u := startUpgradable(t, path, nil)
	regs := registerRaw(t, u.port, 5)
	before := names(t, u.port)
	install(t, stockBin, path)
	syscall.Kill(int(u.pid.Load()), syscall.SIGUSR2)
	m, _ := u.log.waitMatch(t, 0, failedLine, 30*time.Second)
	if !strings.Contains(m[1], "no word from the new program") {
		t.Errorf("failure logged as %q", m[1])
	}
	if after := names(t, u.port); after != before {
		t.Errorf("names before:\n%s\nafter:\n%s", before, after)
	}
	checkOpen(t, regs)
}
