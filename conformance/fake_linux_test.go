package conformance

import (
	"os"
	"os/exec"
	"syscall"
)

// detachSelf starts a copy of the fake daemon in a session of its own, as
// a -daemon daemon does.
func detachSelf(args []string) {
	c := exec.Command(os.Args[0], args...)
	c.Env = append(os.Environ(), fakeEnv+"_CHILD=1")
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	c.Start()
}
