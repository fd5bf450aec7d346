// Package handover passes a daemon's open sockets, each with a name, and
// a snapshot of its state (epmd/snapshot) to the process that takes its
// place: over a Unix stream socket with SCM_RIGHTS (Send, Receive), or into
// systemd's file descriptor store (StoreFDs), which gives them back to the
// service's next process with LISTEN_FDS and LISTEN_FDNAMES.
//
// It carries bytes and descriptors only: what the names mean, and what the
// snapshot holds, is the daemon's business.
//
// Send's stream, in order:
//
//	header   "GOPMDHO1", uint32 file count, uint32 snapshot length,
//	         uint32 names length, names (per file: uint16 length, bytes)
//	files    per batch of up to MaxBatch descriptors: one byte 'F' sent
//	         with SCM_RIGHTS
//	snapshot the bytes
//
// Every read takes exactly the bytes of one part, so no read runs into the
// byte that carries a batch of descriptors.
package handover

import (
	"encoding/binary"
	"errors"
	"os"
)

// NamedFile is a descriptor and the name it is handed over under (such as
// "listen:127.0.0.1:4369" or "conn:17"; systemd's FDNAME rules apply when
// it goes to the store: at most 255 printable ASCII characters, no colon
// for systemd).
type NamedFile struct {
	Name string
	File *os.File
}

// Limits Receive enforces.
const (
	// MaxBatch is how many descriptors go with one message: below the
	// kernel's SCM_MAX_FD (253).
	MaxBatch = 250
	// MaxName is the longest name.
	MaxName = 255
)

const magic = "GOPMDHO1"

// ErrUnsupported is returned where descriptors cannot be passed.
var ErrUnsupported = errors.New("handover: passing descriptors is not supported on this system")

// ErrProtocol wraps every way a received stream is malformed or exceeds
// the receiver's limits.
var ErrProtocol = errors.New("handover: protocol error")

// header encodes the stream's header.
func header(files []NamedFile, snapLen int) ([]byte, error) {
	var names []byte
	for _, f := range files {
		if len(f.Name) > MaxName {
			return nil, errors.New("handover: name longer than 255 bytes: " + f.Name[:32] + "...")
		}
		names = binary.BigEndian.AppendUint16(names, uint16(len(f.Name)))
		names = append(names, f.Name...)
	}
	b := append([]byte(magic), make([]byte, 12)...)
	binary.BigEndian.PutUint32(b[8:], uint32(len(files)))
	binary.BigEndian.PutUint32(b[12:], uint32(snapLen))
	binary.BigEndian.PutUint32(b[16:], uint32(len(names)))
	return append(b, names...), nil
}

// parseNames splits the names part of the header into count names.
func parseNames(b []byte, count int) ([]string, error) {
	names := make([]string, 0, count)
	for len(b) > 0 {
		if len(b) < 2 {
			return nil, errors.Join(ErrProtocol, errors.New("truncated name"))
		}
		n := int(binary.BigEndian.Uint16(b))
		if n > MaxName || len(b) < 2+n {
			return nil, errors.Join(ErrProtocol, errors.New("bad name length"))
		}
		names = append(names, string(b[2:2+n]))
		b = b[2+n:]
	}
	if len(names) != count {
		return nil, errors.Join(ErrProtocol, errors.New("name count does not match the file count"))
	}
	return names, nil
}
