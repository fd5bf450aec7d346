package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"unicode/utf8"

	"github.com/gopmd/gopmd/epmd/wire"
)

// ourEpmd builds cmd/epmd into a temporary directory.
func ourEpmd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "epmd")
	build := exec.Command("go", "build", "-o", bin, "../epmd")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building epmd: %v\n%s", err, out)
	}
	return bin
}

// TestMaxNode: maximal registrations pass the daemon's checks with the
// longest name both daemons can look up, nearly wire.MaxSymLen bytes.
func TestMaxNode(t *testing.T) {
	n := maxNode(benchNode(nodeName(namePrefix+"123_", 4999), 4999))
	if err := wire.CheckAlive2(&n); err != nil {
		t.Fatal(err)
	}
	if c := utf8.RuneCountInString(n.Name); c != wire.MaxNameChars-1 {
		t.Errorf("%d characters", c)
	}
	if len(n.Name) < wire.MaxSymLen-3*20 || len(n.Extra) != wire.MaxSymLen {
		t.Errorf("name %d bytes, extra %d bytes", len(n.Name), len(n.Extra))
	}
	if err := wire.CheckLookupName(n.Name); err != nil {
		t.Error(err)
	}
}

// TestAttackWorkloads runs hoard and dumploop, small, on ours and stock,
// and checks their accounting (not their figures).
func TestAttackWorkloads(t *testing.T) {
	for _, bin := range []string{ourEpmd(t), stockEpmd(t)} {
		t.Run(filepath.Base(filepath.Dir(bin)), func(t *testing.T) {
			rep, _ := runTool(t, "-epmd", bin, "-timeout", "2s",
				"hoard:nodes=50,max=1,c=2,n=100,dump=3,nreaders=2,hold=300ms,settle=100ms",
				"dumploop:nodes=50,max=1,c=2,n=100,dump=1,d=5s",
			)
			if len(rep.Runs) != 2 {
				t.Fatalf("%d runs, want 2", len(rep.Runs))
			}
			h := rep.Runs[0]
			if h.Skipped != "" || h.Memory == nil {
				t.Fatalf("hoard: skipped %q, memory %+v", h.Skipped, h.Memory)
			}
			m := h.Memory
			if m.ReadersOpen+m.ReadersFailed != 5 || m.Churned+m.ChurnFailed != 2 {
				t.Errorf("hoard: %+v, want 5 readers and 2 table changes accounted for", m)
			}
			if m.RSSBeforeKiB <= 0 || m.RSSPeakKiB < m.RSSBeforeKiB || m.HWMKiB < m.RSSPeakKiB || m.GrowthKiB != m.RSSPeakKiB-m.RSSBeforeKiB || m.Samples < 1 {
				t.Errorf("hoard: inconsistent memory figures %+v", m)
			}
			if h.Ops+h.Errors == 0 {
				t.Error("hoard: no look-ups ran")
			}
			d := rep.Runs[1]
			checkRun(t, d, 100)
			if d.Idle == nil || d.Idle.Ops != 100 || d.Idle.Errors != 0 || d.Idle.P50us <= 0 {
				t.Errorf("dumploop: idle figures %+v", d.Idle)
			}
			if d.SlowRequests < 1 {
				t.Errorf("dumploop: %d DUMPs completed", d.SlowRequests)
			}
		})
	}
}

// TestReadMem reads this process's VmRSS and VmHWM.
func TestReadMem(t *testing.T) {
	s, err := readMem(os.Getpid())
	if err != nil || s.rss <= 0 || s.hwm < s.rss {
		t.Errorf("readMem: %+v, %v", s, err)
	}
}

// TestFresh: with -fresh every run gets a daemon of its own.
func TestFresh(t *testing.T) {
	rep, _ := runTool(t, "-epmd", ourEpmd(t), "-fresh", "lookup:nodes=2,c=1,n=5", "lookup:nodes=2,c=1,n=5")
	if len(rep.Runs) != 2 {
		t.Fatalf("%d runs", len(rep.Runs))
	}
	a, b := rep.Runs[0].Daemon, rep.Runs[1].Daemon
	if a == nil || b == nil || a.Pid == b.Pid {
		t.Errorf("daemon figures %+v, %+v: want two daemons", a, b)
	}
}
