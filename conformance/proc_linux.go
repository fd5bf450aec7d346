package conformance

import (
	"bytes"
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
