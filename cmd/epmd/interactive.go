package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/gopmd/gopmd/epmd/client"
	"github.com/gopmd/gopmd/epmd/wire"
)

// The interactive options copy stock epmd's command-line client
// (erts/epmd/src/epmd_cli.c) read for read, so that output and exit status
// are the same for every reply a daemon may give, including odd ones:
// NAMES and DUMP need the 4-byte header from a single read; KILL and STOP
// read exactly 2 and 7 bytes, and an early close shows as "<>" whatever
// came before it. Like stock, there is no timeout.
//
// Output goes through cStdout, buffered as C stdio buffers stock's stdout
// and flushed when the command ends, as stock's exit() flushes it.

// maxStopName is the longest name -stop sends (stock's 1024-byte buffer).
const maxStopName = 1000

// outBufSize is the read size stock uses while copying a reply (OUTBUF_SIZE).
const outBufSize = 3060

// dial connects to the local daemon, [::1] first, then 127.0.0.1, on the
// port stock would use: the configured value truncated to 16 bits.
func dial(port int, silent bool, stderr io.Writer) (net.Conn, bool) {
	c := client.NewLocal(int(uint16(port)))
	conn, err := c.Dial(context.Background())
	if err != nil {
		if !silent {
			io.WriteString(stderr, "epmd: Cannot connect to local epmd\n")
		}
		return nil, false
	}
	return conn, true
}

// send writes a frame as stock does (one write of the whole frame).
func send(conn net.Conn, frame []byte, stdout io.Writer) bool {
	if _, err := conn.Write(frame); err != nil {
		io.WriteString(stdout, "epmd: Can't write to epmd\n")
		return false
	}
	return true
}

// cliCall runs -names, -started (silent) and -dump.
func cliCall(port int, tag wire.Tag, silent bool, stdoutFile, stderr io.Writer) int {
	stdout := newCStdout(stdoutFile)
	defer stdout.Flush()
	conn, ok := dial(port, silent, stderr)
	if !ok {
		return 1
	}
	defer conn.Close()
	if !send(conn, wire.AppendRawFrame(nil, 1, []byte{byte(tag)}), stdout) {
		return 1
	}
	// One read must deliver the whole header, as in stock.
	var hdr [4]byte
	if n, _ := conn.Read(hdr[:]); n != len(hdr) {
		if !silent {
			io.WriteString(stdout, "epmd: no response from local epmd\n")
		}
		return 1
	}
	if !silent {
		// Printed with %d from a C int: the port reads as signed.
		fmt.Fprintf(stdout, "epmd: up and running on port %d with data:\n", int32(binary.BigEndian.Uint32(hdr[:])))
	}
	buf := make([]byte, outBufSize)
	for {
		n, err := conn.Read(buf)
		if n > 0 && !silent {
			stdout.Write(buf[:n]) // raw, NUL bytes of DUMP included
		}
		if err != nil || n == 0 {
			return 0
		}
	}
}

// readFill reads len(buf) bytes like stock's read_fill: it returns
// len(buf), 0 when the daemon closed first (however much had come), or -1
// on a read error.
func readFill(conn net.Conn, buf []byte) int {
	got := 0
	for got < len(buf) {
		n, err := conn.Read(buf[got:])
		got += n
		if got == len(buf) {
			break
		}
		if err == io.EOF {
			return 0
		}
		if err != nil {
			return -1
		}
	}
	return len(buf)
}

// answerError prints stock's message for a short or failed KILL/STOP reply.
func answerError(rval int, stdout io.Writer) int {
	if rval < 0 {
		io.WriteString(stdout, "epmd: failed to read answer from local epmd\n")
	} else {
		// Stock prints what read_fill returned, which is 0 bytes on EOF.
		io.WriteString(stdout, "epmd: local epmd responded with <>\n")
	}
	return 1
}

// cliKill runs -kill.
func cliKill(port int, stdoutFile, stderr io.Writer) int {
	stdout := newCStdout(stdoutFile)
	defer stdout.Flush()
	conn, ok := dial(port, false, stderr)
	if !ok {
		return 1
	}
	defer conn.Close()
	if !send(conn, wire.AppendRawFrame(nil, 1, []byte{byte(wire.TagKillReq)}), stdout) {
		return 1
	}
	var buf [2]byte
	if rval := readFill(conn, buf[:]); rval != len(buf) {
		return answerError(rval, stdout)
	}
	if string(buf[:]) == "OK" {
		io.WriteString(stdout, "Killed\n")
		return 0
	}
	io.WriteString(stdout, "Killing not allowed - living nodes in database.\n")
	return 1
}

// cliStop runs -stop NAME. The request is 's' and the name's bytes, with no
// NUL: an empty name is sent as a bare 's', which stock epmd drops.
func cliStop(port int, name string, stdoutFile, stderr io.Writer) int {
	stdout := newCStdout(stdoutFile)
	defer stdout.Flush()
	if i := strings.IndexByte(name, 0); i >= 0 {
		name = name[:i] // a C string: it ends at the first NUL
	}
	if len(name) > maxStopName {
		io.WriteString(stdout, "epmd: Name too long!")
		return 1
	}
	conn, ok := dial(port, false, stderr)
	if !ok {
		return 1
	}
	defer conn.Close()
	body := append([]byte{byte(wire.TagStopReq)}, name...)
	if !send(conn, wire.AppendRawFrame(nil, uint16(len(body)), body), stdout) {
		return 1
	}
	var buf [7]byte
	if rval := readFill(conn, buf[:]); rval != len(buf) {
		return answerError(rval, stdout)
	}
	// Printed with %s: a NUL ends the text.
	reply := buf[:]
	if i := bytes.IndexByte(reply, 0); i >= 0 {
		reply = reply[:i]
	}
	stdout.Write(append(reply, '\n'))
	return 0
}
