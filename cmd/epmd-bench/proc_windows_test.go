package main

import "os"

// processGone: on Windows, FindProcess opens the process, and fails once
// it has exited.
func processGone(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return true
	}
	p.Release()
	return false
}
