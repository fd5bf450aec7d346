//go:build !unix

package handover

import "net"

// Send is not supported here: there is no SCM_RIGHTS.
func Send(c *net.UnixConn, files []NamedFile, snapshot []byte) error { return ErrUnsupported }

// Receive is not supported here: there is no SCM_RIGHTS.
func Receive(c *net.UnixConn, maxFiles, maxSnapshot int) ([]NamedFile, []byte, error) {
	return nil, nil, ErrUnsupported
}

// StoreFDs is not supported here: there is no systemd.
func StoreFDs(notifySocket string, files []NamedFile) error { return ErrUnsupported }
