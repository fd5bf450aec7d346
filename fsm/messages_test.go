package fsm_test

import (
	"testing"

	"github.com/gopmd/gopmd/epmd/registry"
	"github.com/gopmd/gopmd/epmd/wire"
	"github.com/gopmd/gopmd/fsm"
)

// frameEvent turns raw bytes into the event the server would make, by the
// same framer and decoder.
func frameEvent(t *testing.T, raw []byte) fsm.Event {
	t.Helper()
	var f wire.Framer
	n := copy(f.Next(), raw)
	body, err := f.Advance(n)
	if err != nil {
		return fsm.Malformed{Err: err}
	}
	if body == nil {
		t.Fatalf("%x: incomplete frame", raw)
	}
	req, err := wire.DecodeRequest(body)
	if err != nil {
		return fsm.Malformed{Err: err}
	}
	return fsm.Received{Req: req, Now: 1000}
}

func framed(body string) []byte {
	return wire.AppendRawFrame(nil, uint16(len(body)), []byte(body))
}

// TestStockMessages pins the text of every close that stock epmd logs even
// without -d (dbg_printf level 0 in epmd_srv.c), word for word, so that
// operators' log searches keep working. The wording is OTP 29's, which
// names DUMP, KILL and STOP with an EPMD_ prefix ("Disallowed
// EPMD_KILL_REQ, live nodes"); OTP 25 and 27 write them without it
// (docs/epmd.md, conformance log/refusal_messages).
func TestStockMessages(t *testing.T) {
	local := fsm.Config{ID: 1, Fd: 7, Local: true, Port: 4369}
	relaxed := local
	relaxed.Relaxed = true
	remote := relaxed
	remote.Local = false
	alive2Body := func(nlen, elen string, rest string) string {
		return "x\x15\xb3M\x00\x00\x06\x00\x05" + nlen + rest + elen
	}
	tests := []struct {
		name string
		cfg  fsm.Config
		ev   fsm.Event
		want string
	}{
		{"length 0", local, frameEvent(t, []byte{0, 0}), "invalid packet size (0)"},
		{"length 65535", local, frameEvent(t, []byte{0xff, 0xff}), "invalid packet size (65535)"},
		{"pipelined", local, frameEvent(t, []byte{0, 1, 'n', 0, 1, 'n'}), "got 4 bytes in packet, expected 1"},
		{"garbage", local, frameEvent(t, framed("Q")), "got garbage "},
		{"legacy alive", local, frameEvent(t, framed("a")), "got garbage "},
		{"alive2 13 bytes", local, frameEvent(t, framed(alive2Body("\x00\x00", "\x00\x00", ""))), "packet to small for request ALIVE2_REQ (13)"},
		{"alive2 nlen", local, frameEvent(t, framed(alive2Body("\x00\x09", "\x00\x00", "ab"))), "Node name size error in ALIVE2_REQ"},
		{"alive2 elen", local, frameEvent(t, framed(alive2Body("\x00\x01", "\x00\x05", "a")+"x")), "Extra info size error in ALIVE2_REQ"},
		{"alive2 NUL", local, frameEvent(t, framed(alive2Body("\x00\x03", "\x00\x00", "a\x00b"))), "node name contains ascii 0 in ALIVE2_REQ"},
		{"alive2 remote", remote, frameEvent(t, framed(alive2Body("\x00\x01", "\x00\x00", "a"))), "ALIVE2_REQ from non local address"},
		{"alive2 remote malformed", remote, frameEvent(t, framed(alive2Body("\x00\x00", "\x00\x00", ""))), "ALIVE2_REQ from non local address"},
		{"port2 empty", local, frameEvent(t, framed("z")), "packet too small for request PORT2_REQ (1)"},
		{"port2 only NUL", local, frameEvent(t, framed("z\x00")), "packet too small for request PORT2_REQ (1)"},
		{"port2 NUL", local, frameEvent(t, framed("zfo\x00o")), "node name contains ascii 0 in PORT2_REQ"},
		{"port2 bad name", local, frameEvent(t, framed("z\xff")), "invalid node name in PORT2_REQ"},
		{"dump remote", remote, frameEvent(t, framed("d")), "EPMD_DUMP_REQ from non local address"},
		{"kill remote", remote, frameEvent(t, framed("k")), "EPMD_KILL_REQ from non local address"},
		{"stop remote", remote, frameEvent(t, framed("sfoo")), "EPMD_STOP_REQ from non local address"},
		{"stop strict", local, frameEvent(t, framed("sfoo")), "Disallowed EPMD_STOP_REQ, no relaxed_command_check"},
		{"stop strict short", local, frameEvent(t, framed("s")), "Disallowed EPMD_STOP_REQ, no relaxed_command_check"},
		{"stop remote short", remote, frameEvent(t, framed("s")), "EPMD_STOP_REQ from non local address"},
		{"stop short", relaxed, frameEvent(t, framed("s")), "packet too small for request EPMD_STOP_REQ (1)"},
		{"partial", local, fsm.PeerClosed{Buffered: 2}, "got partial packet only on file descriptor 7 (2)"},
		{"nothing", local, fsm.PeerClosed{}, "got partial packet only on file descriptor 7 (0)"},
		{"answered", local, frameEvent(t, framed("n")), ""},
		{"timeout", local, fsm.Timeout{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := registry.New(registry.MaxRemembered)
			acts := step(t, fsm.New(tt.cfg), reg, tt.ev)
			cl, ok := acts[len(acts)-1].(fsm.Close)
			if !ok {
				t.Fatalf("last action %#v, want Close", acts[len(acts)-1])
			}
			if cl.Detail != tt.want {
				t.Errorf("detail %q, want %q", cl.Detail, tt.want)
			}
		})
	}
}
