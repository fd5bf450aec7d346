package conformance

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// dieWithUs has the kernel kill the daemon if the suite itself dies.
func dieWithUs(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }

// becomeSubreaper makes the double-forked daemon of -daemon our child
// rather than init's, so that its exit status is collected (an init that
// does not reap would keep it as a zombie).
var becomeSubreaper = sync.OnceFunc(func() {
	const prSetChildSubreaper = 36
	syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0)
})

// reapOrphans collects exited children that os/exec does not wait for.
func reapOrphans() {
	deadline := time.Now().Add(2 * time.Second)
	for {
		zombies, others := orphanChildren()
		for _, pid := range zombies {
			var ws syscall.WaitStatus
			syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		}
		if others == 0 || time.Now().After(deadline) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// orphanChildren lists our untracked children: the exited ones, and how
// many are still running.
func orphanChildren() (zombies []int, running int) {
	trackedMu.Lock()
	defer trackedMu.Unlock()
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, t := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + t.Name() + "/children")
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			pid, err := strconv.Atoi(f)
			if err != nil || tracked[pid] {
				continue
			}
			st, err := os.ReadFile("/proc/" + f + "/stat")
			if err != nil {
				continue
			}
			// pid (comm) state ...: the state follows the last ')'.
			i := bytes.LastIndexByte(st, ')')
			if i >= 0 && i+2 < len(st) && st[i+2] == 'Z' {
				zombies = append(zombies, pid)
			} else {
				running++
			}
		}
	}
	return zombies, running
}

// killOrphanListener kills the untracked children of ours (detached
// daemons reparented to us) that hold a socket listening on port.
func killOrphanListener(port int) {
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n")[1:] {
			// sl local_address rem_address st ... uid timeout inode
			fs := strings.Fields(l)
			if len(fs) < 10 || fs[3] != "0A" {
				continue
			}
			if i := strings.LastIndexByte(fs[1], ':'); i >= 0 && strings.EqualFold(fs[1][i+1:], fmt.Sprintf("%04X", port)) {
				inodes["socket:["+fs[9]+"]"] = true
			}
		}
	}
	if len(inodes) == 0 {
		return
	}
	var killed []int
	for _, pid := range runningOrphans() {
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, fd := range fds {
			if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && inodes[l] {
				syscall.Kill(pid, syscall.SIGKILL)
				killed = append(killed, pid)
				break
			}
		}
	}
	// Collect them, so that their sockets are gone when we return.
	deadline := time.Now().Add(2 * time.Second)
	for _, pid := range killed {
		for time.Now().Before(deadline) {
			var ws syscall.WaitStatus
			if n, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil); n == pid || err != nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// runningOrphans lists our untracked children that have not exited.
func runningOrphans() []int {
	trackedMu.Lock()
	defer trackedMu.Unlock()
	var pids []int
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, t := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + t.Name() + "/children")
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil && !tracked[pid] {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}
