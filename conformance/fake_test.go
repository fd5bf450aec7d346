package conformance

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"time"
)

// fakeEnv names the variable that makes the test binary a fake epmd.
const fakeEnv = "CONFORMANCE_FAKE_EPMD"

// fakeEpmd is a deliberately poor epmd, for the harness's own tests. It
// knows -port and ignores every other flag (-daemon included: it stays in
// the foreground). mode says how it misbehaves:
//
//	y          answers ALIVE2 with the pre-OTP-23 'y' reply
//	panic      panics (exit status 2) on any ALIVE2
//	nonames    closes NAMES requests without a reply
//	mute       accepts connections and never reads or answers
//	stderrkid  starts a child that keeps its stderr open, then serves as y
//	detach     with -daemon, detaches (a copy of itself in a new session)
//	           and exits 0; the copy serves as y and ignores KILL_REQ
func fakeEpmd(mode string, args []string) {
	port := 4369
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "-port" {
			port, _ = strconv.Atoi(args[i+1])
		}
	}
	if mode == "detach" {
		// -daemon: start a copy of ourselves in a session of its own
		// and exit 0; the copy serves (as y) and ignores KILL_REQ.
		if os.Getenv(fakeEnv+"_CHILD") == "" {
			for _, a := range args {
				if a == "-daemon" {
					detachSelf(args)
					os.Exit(0)
				}
			}
		}
		mode = "nokill"
	}
	if mode == "stderrkid" {
		kid := exec.Command("sleep", "60")
		kid.Stderr = os.Stderr
		kid.Start()
		mode = "y"
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake epmd:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "fake epmd (%s) on %d\n", mode, port)
	var creation uint16
	for {
		c, err := ln.Accept()
		if err != nil {
			os.Exit(1)
		}
		if mode == "mute" {
			go func() { time.Sleep(time.Hour); c.Close() }()
			continue
		}
		var hdr [2]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			c.Close()
			continue
		}
		body := make([]byte, binary.BigEndian.Uint16(hdr[:]))
		if _, err := io.ReadFull(c, body); err != nil || len(body) == 0 {
			c.Close()
			continue
		}
		switch body[0] {
		case 'x':
			if mode == "panic" {
				panic("fake epmd: cannot handle ALIVE2")
			}
			creation = creation%3 + 1
			c.Write([]byte{'y', 0, 0, byte(creation)})
			go func() { io.Copy(io.Discard, c); c.Close() }()
			continue
		case 'z':
			c.Write([]byte{'w', 1})
		case 'n':
			if mode != "nonames" {
				c.Write(binary.BigEndian.AppendUint32(nil, uint32(port)))
			}
		}
		c.Close()
	}
}
