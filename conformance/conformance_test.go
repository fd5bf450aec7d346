package conformance

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var updateFlag = flag.Bool("update", false, "re-record the scripts' expectations from the stock epmd")

// ours is the epmd under test: $GOPMD_EPMD, or ./cmd/epmd built by
// TestMain. oursErr says why there is none.
var (
	ours      string
	oursErr   error
	stockPath string
)

func TestMain(m *testing.M) {
	// The test binary doubles as the misbehaving daemons of
	// harness_test.go.
	if mode := os.Getenv(fakeEnv); mode != "" {
		fakeEpmd(mode, os.Args[1:])
		return
	}
	flag.Parse()
	// Cases mostly wait on sockets; run many at once unless told otherwise.
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["test.parallel"] {
		flag.Set("test.parallel", "8")
	}
	// -update records from stock; nothing else needs to run.
	if *updateFlag && !set["test.run"] {
		flag.Set("test.run", "^TestUpdate$")
	}
	stockPath = os.Getenv("GOPMD_STOCK_EPMD")
	if stockPath == "" {
		stockPath, _ = exec.LookPath("epmd")
	}
	// Helpers of the erl nodes (erl_child_setup) and -daemon daemons are
	// orphaned when their parent exits; as subreaper we collect them
	// instead of leaving zombies to an init that may not.
	becomeSubreaper()
	var cleanup func()
	if !*updateFlag {
		ours, cleanup, oursErr = buildOurs()
	}
	code := m.Run()
	if cleanup != nil {
		cleanup()
	}
	reapOrphans()
	os.Exit(code)
}

// buildOurs returns $GOPMD_EPMD or builds ./cmd/epmd into a temporary
// directory.
func buildOurs() (string, func(), error) {
	if p := os.Getenv("GOPMD_EPMD"); p != "" {
		return p, nil, nil
	}
	dir, err := os.MkdirTemp("", "conformance-epmd-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	bin := filepath.Join(dir, "epmd")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/gopmd/gopmd/cmd/epmd")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", cleanup, fmt.Errorf("go build ./cmd/epmd: %v\n%s", err, out)
	}
	return bin, cleanup, nil
}

// requireStock returns the stock epmd or skips (fails under
// GOPMD_REQUIRE_ERLANG=1) when it is missing.
func requireStock(t testing.TB) string {
	t.Helper()
	if stockPath == "" {
		missing(t, "stock epmd")
	}
	return stockPath
}

// requireOurs returns our epmd, failing the test if it could not be built.
func requireOurs(t testing.TB) string {
	t.Helper()
	if ours == "" {
		t.Fatalf("the epmd under test is not available: %v", oursErr)
	}
	return ours
}

// missing skips, or fails when GOPMD_REQUIRE_ERLANG=1 (make test, CI), like
// epmd/internal/testenv (which this package cannot import).
func missing(t testing.TB, prog string) {
	t.Helper()
	msg := prog + " not found; install erlang-base to run this test"
	if os.Getenv("GOPMD_REQUIRE_ERLANG") == "1" {
		t.Fatal(msg + " [GOPMD_REQUIRE_ERLANG=1]")
	}
	t.Skip(msg)
}

func loadSuite(t testing.TB) []*File {
	t.Helper()
	files, err := Load(os.DirFS("testdata"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func flavour(t testing.TB, path string) string {
	t.Helper()
	f, err := DetectFlavour(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// release is the OTP release of a stock epmd, as epmd-conformance
// guesses it (DefaultRelease when it cannot tell).
func release(path string) int {
	if n := DetectRelease(path); n > 0 {
		return n
	}
	return DefaultRelease
}

// TestScripts runs every scripted case against the stock epmd and the epmd
// under test (each case on its own daemons). A case fails when the stock
// daemon does not pass it (the script is wrong) or when ours does not
// (a difference not in docs/differences.md).
func TestScripts(t *testing.T) {
	if *updateFlag {
		t.Skip("-update: see TestUpdate")
	}
	files := loadSuite(t)
	var stock, target Target
	if stockPath != "" {
		stock = Target{Path: stockPath, Flavour: flavour(t, stockPath), Release: release(stockPath)}
	}
	if ours != "" {
		target = Target{Path: ours, Flavour: flavour(t, ours), Release: GopmdRelease}
	}
	cfg := Config{Goldens: os.DirFS("testdata")}
	for _, c := range Cases(files) {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			t.Run("stock", func(t *testing.T) {
				requireStock(t)
				o := RunCase(ctx, stock, c, cfg.goldens())
				report(t, o, "stock epmd: the script does not describe stock epmd")
			})
			t.Run("gopmd", func(t *testing.T) {
				requireOurs(t)
				o := RunCase(ctx, target, c, cfg.goldens())
				report(t, o, "epmd under test differs from stock")
				if o.Status == Pass && c.Difference > 0 && target.Flavour == Gopmd {
					t.Logf("expected difference: docs/differences.md #%d", c.Difference)
				}
			})
		})
	}
}

func report(t *testing.T, o *Outcome, what string) {
	t.Helper()
	switch o.Status {
	case Skip:
		t.Skip(o.Reason)
	case Fail:
		t.Errorf("%s:\n%s\ntranscript:\n%s", what, o.Reason, indent(strings.Join(o.Transcript, "\n")))
	default:
		if testing.Verbose() {
			t.Log("transcript:\n" + indent(strings.Join(o.Transcript, "\n")))
		}
	}
}

// TestUpdate re-records the scripts' expectations from stock epmd when
// run with -update.
func TestUpdate(t *testing.T) {
	if !*updateFlag {
		t.Skip("run with -update to re-record the scripts from stock epmd")
	}
	path := requireStock(t)
	files := loadSuite(t)
	stock := Target{Path: path, Flavour: flavour(t, path), Release: release(path)}
	if stock.Flavour != Stock {
		t.Fatalf("%s is not stock epmd", path)
	}
	scripts, goldens, err := Update(context.Background(), stock, files, Config{Goldens: os.DirFS("testdata")})
	for name, text := range scripts {
		if err := os.WriteFile(filepath.Join("testdata", name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("re-recorded %s", name)
	}
	for name, b := range goldens {
		old, _ := os.ReadFile(filepath.Join("testdata", name))
		if string(old) == string(b) {
			continue
		}
		if err := os.WriteFile(filepath.Join("testdata", name), b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("re-recorded %s", name)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestSharedCasesAgainstRunningDaemon runs the suite against the address
// of a daemon that is already running, as epmd-conformance -addr does:
// the cases marked shared run (one at a time), the others skip.
func TestSharedCasesAgainstRunningDaemon(t *testing.T) {
	for _, bin := range []struct {
		name string
		get  func(testing.TB) string
	}{{"stock", requireStock}, {"gopmd", requireOurs}} {
		t.Run(bin.name, func(t *testing.T) {
			t.Parallel()
			d := startTestDaemon(t, bin.get(t))
			rel := GopmdRelease
			if bin.name == "stock" {
				rel = release(stockPath)
			}
			cfg := Config{Target: Target{Addr: d.addr4(), Flavour: Stock, Release: rel}}
			results := RunSuite(context.Background(), cfg, Cases(loadSuite(t)), nil)
			ran := 0
			for _, r := range results {
				switch {
				case r.Verdict == VerdictFail:
					t.Errorf("%s", r.Line())
				case r.Verdict == VerdictSkip && r.Case.Shared:
					t.Errorf("shared case skipped: %s", r.Line())
				case r.Verdict != VerdictSkip && !r.Case.Shared:
					t.Errorf("unshared case ran: %s", r.Line())
				case r.Verdict == VerdictPass:
					ran++
				}
			}
			if ran < 10 {
				t.Errorf("only %d shared cases ran", ran)
			}
			if ns, err := d.names(); err != nil || len(ns) != 0 {
				t.Errorf("after the shared cases NAMES gives %v, %v; want an empty registry", ns, err)
			}
		})
	}
}
