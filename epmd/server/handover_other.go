//go:build !linux

package server

import "os"

// Only the epoll backend hands over its sockets; the portable one does not
// implement handoverBackend, so Freeze and Restore refuse before these are
// reached.

func dupFile(fd int, name string) (*os.File, error) { return nil, ErrHandoverUnsupported }

func dupFd(f *os.File) (int, error) { return -1, ErrHandoverUnsupported }

func closeFd(fd int) {}
