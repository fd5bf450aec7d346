//go:build !linux

package conformance

// detachSelf does nothing here: the detach test runs on Linux only.
func detachSelf(args []string) {}
