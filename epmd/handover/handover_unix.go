//go:build unix

package handover

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"
)

// Send writes files and snapshot to c. The files stay open in this
// process (the kernel duplicates them into the receiver's table). A
// failure part way leaves the receiver with an incomplete stream, which
// its Receive reports.
func Send(c *net.UnixConn, files []NamedFile, snapshot []byte) error {
	h, err := header(files, len(snapshot))
	if err != nil {
		return err
	}
	if _, err := c.Write(h); err != nil {
		return fmt.Errorf("handover: sending the header: %w", err)
	}
	for i := 0; i < len(files); i += MaxBatch {
		batch := files[i:min(i+MaxBatch, len(files))]
		fds := make([]int, len(batch))
		for j, f := range batch {
			fds[j] = int(f.File.Fd())
		}
		n, oobn, err := c.WriteMsgUnix([]byte{'F'}, syscall.UnixRights(fds...), nil)
		if err == nil && (n != 1 || oobn == 0) {
			err = io.ErrShortWrite
		}
		if err != nil {
			return fmt.Errorf("handover: sending descriptors %d-%d: %w", i, i+len(batch)-1, err)
		}
	}
	if _, err := c.Write(snapshot); err != nil {
		return fmt.Errorf("handover: sending the snapshot: %w", err)
	}
	return nil
}

// Receive reads what Send wrote: at most maxFiles descriptors and a
// snapshot of at most maxSnapshot bytes. The descriptors come
// close-on-exec. On an error, every descriptor received so far is closed.
func Receive(c *net.UnixConn, maxFiles, maxSnapshot int) (files []NamedFile, snapshot []byte, err error) {
	var fds []int
	defer func() {
		if err != nil {
			for _, fd := range fds {
				syscall.Close(fd)
			}
		}
	}()
	h := make([]byte, 20)
	if _, err := io.ReadFull(c, h); err != nil {
		return nil, nil, fmt.Errorf("handover: reading the header: %w", err)
	}
	if string(h[:8]) != magic {
		return nil, nil, errors.Join(ErrProtocol, errors.New("not a handover stream"))
	}
	count := int(binary.BigEndian.Uint32(h[8:]))
	snapLen := int(binary.BigEndian.Uint32(h[12:]))
	namesLen := int(binary.BigEndian.Uint32(h[16:]))
	switch {
	case count > maxFiles:
		return nil, nil, errors.Join(ErrProtocol, fmt.Errorf("%d descriptors, more than %d", count, maxFiles))
	case snapLen > maxSnapshot:
		return nil, nil, errors.Join(ErrProtocol, fmt.Errorf("snapshot of %d bytes, more than %d", snapLen, maxSnapshot))
	case namesLen > count*(2+MaxName):
		return nil, nil, errors.Join(ErrProtocol, errors.New("names too long for the file count"))
	}
	nb := make([]byte, namesLen)
	if _, err := io.ReadFull(c, nb); err != nil {
		return nil, nil, fmt.Errorf("handover: reading the names: %w", err)
	}
	names, err := parseNames(nb, count)
	if err != nil {
		return nil, nil, err
	}
	oob := make([]byte, syscall.CmsgSpace(MaxBatch*4))
	b := make([]byte, 1)
	for len(fds) < count {
		want := min(MaxBatch, count-len(fds))
		n, oobn, flags, _, err := c.ReadMsgUnix(b, oob)
		if err != nil {
			return nil, nil, fmt.Errorf("handover: reading descriptors: %w", err)
		}
		got, perr := parseRights(oob[:oobn])
		fds = append(fds, got...) // whatever arrived is ours to close
		switch {
		case perr != nil:
			return nil, nil, errors.Join(ErrProtocol, perr)
		case n != 1 || b[0] != 'F':
			return nil, nil, errors.Join(ErrProtocol, errors.New("expected a batch of descriptors"))
		case flags&syscall.MSG_CTRUNC != 0:
			return nil, nil, errors.Join(ErrProtocol, errors.New("descriptors truncated (the receiver's file limit?)"))
		case len(got) != want:
			return nil, nil, errors.Join(ErrProtocol, fmt.Errorf("a batch of %d descriptors, want %d", len(got), want))
		}
	}
	snapshot = make([]byte, snapLen)
	if _, err := io.ReadFull(c, snapshot); err != nil {
		return nil, nil, fmt.Errorf("handover: reading the snapshot: %w", err)
	}
	files = make([]NamedFile, count)
	for i, fd := range fds {
		files[i] = NamedFile{Name: names[i], File: os.NewFile(uintptr(fd), names[i])}
	}
	return files, snapshot, nil
}

// parseRights returns the descriptors of every SCM_RIGHTS message in oob.
func parseRights(oob []byte) ([]int, error) {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	for _, m := range msgs {
		if m.Header.Level != syscall.SOL_SOCKET || m.Header.Type != syscall.SCM_RIGHTS {
			return fds, errors.New("unexpected control message type " + strconv.Itoa(int(m.Header.Type)))
		}
		got, err := syscall.ParseUnixRights(&m)
		fds = append(fds, got...)
		if err != nil {
			return fds, err
		}
	}
	return fds, nil
}
