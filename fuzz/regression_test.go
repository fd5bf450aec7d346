package fuzz_test

import (
	"strings"
	"testing"

	"github.com/gopmd/gopmd/epmd/wire"
)

// Regression tests: each failure the targets found (or that a target pins
// after it was found otherwise) gets a named test, so that plain go test
// keeps checking it whatever happens to the corpus.

// TestRegression_Alive2EmptyNameAndExtra: stock epmd registers an empty
// name when the ALIVE2_REQ payload reaches its 14-byte minimum, which with
// Nlen 0 and Elen 0 only a junk byte after Elen can do (facts §4.1). The
// decoder accepted that payload as {Name: "", Extra: ""}, but AppendBinary
// refused the value ("empty name needs non-empty extra"), so the
// FuzzDecodeRequest property failed on the seed taken from that
// transcript. Fixed in epmd/wire/request.go, whose encoder now writes the
// value with one padding NUL, the 14-byte form stock accepts.
func TestRegression_Alive2EmptyNameAndExtra(t *testing.T) {
	body := cat(alive2Body(1, 'M', 0, 6, 5, 0, "", 0, ""), 0)
	req, err := wire.DecodeRequest(body)
	if err != nil {
		t.Fatalf("DecodeRequest(%q): %v", body, err)
	}
	if a, ok := req.(*wire.Alive2Req); !ok || a.Name != "" || a.Extra != "" {
		t.Fatalf("DecodeRequest(%q) = %#v, want an ALIVE2_REQ with empty name and extra", body, req)
	}
	checkDecodeRequest(t, body)
}

// TestRegression_NamesReplyOwnsItsEntries pins a bug FuzzConnTranscript
// finds within seconds when it is put back: the NAMES reply held the
// registry's scratch slice (registry.Names reuses it), and the server
// writes a reply after releasing the registry lock, so a later NAMES on
// another connection could rewrite a reply still being sent. Fixed in
// fsm/fsm.go before these targets existed (the reply copies the entries);
// the script registers "a", answers NAMES, re-registers "a" on another
// port and answers NAMES again, then checks the first reply is unchanged.
func TestRegression_NamesReplyOwnsItsEntries(t *testing.T) {
	const three = 1 << 2
	op := func(o, slot int) byte { return byte(o | slot<<4) }
	runConnScript(t, []byte{three, 0,
		op(opAlive2, 0), 0, 0, 0x30, 0x30, // conn 1 registers "a" on port 12336
		op(opNames, 1), // conn 2: NAMES lists it
		op(opPeerClosed, 0), op(opReopen, 0),
		op(opAlive2, 0), 0, 0, 0x30, 0x31, // conn 3 registers "a" on port 12337
		op(opNames, 2), // conn 4: NAMES, reusing the registry's scratch
	})
}

// TestRegression_Differential_KeptSocketDataReset: FuzzDifferential's
// first finding (its seed of a 3057-byte ALIVE2 frame followed by more
// bytes in the same write). When bytes arrive on a kept ALIVE2 socket
// (registered or refused), stock epmd read()s them, up to INBUF_SIZE =
// 3060, then unregisters and closes: the client sees EOF. gopmd only
// peeked at the socket (MSG_PEEK in epmd/server/poller.go, a 1-byte read
// without the poller) and closed it with the bytes unread, so the kernel
// answered with a reset and the client's read failed with ECONNRESET. Both
// unregistered the node and sent nothing more; only the end of the
// connection differed. Fixed in 83642b2: gopmd now consumes what arrived,
// in one read of up to 3059 bytes (drain in epmd/server/poller.go), before
// it closes (today keptReady in epmd/server/loop.go does it, with 3060).
// Exactly 3060 bytes still differed then: see the next test.
func TestRegression_Differential_KeptSocketDataReset(t *testing.T) {
	bin := stockEpmdPath(t)
	for _, n := range []int{1, 4, 3059, 3061, 4000} {
		runDifferential(t, bin, diffScript(
			rawStep(cat(longAlive2("kept"), strings.Repeat("m", n))), rawStep(frame([]byte("n")))))
	}
}

// TestRegression_Differential_KeptSocket3060Bytes: what the fix above
// left. Stock's read on a kept socket asks for INBUF_SIZE = 3060 bytes
// (epmd_srv.c, do_read: read(s->fd, s->buf, INBUF_SIZE); only request
// reads ask for INBUF_SIZE - 1), while gopmd's drain reads at most 3059.
// With exactly 3060 bytes pending, stock consumes them all and closes
// (EOF); gopmd leaves one byte unread and the kernel resets the
// connection. Any other count agrees (fewer: both read all; more: both
// leave bytes and reset). Open: reported, not fixed here. This test skips
// while the difference is exactly that, fails if it changes any other
// way, and passes once gopmd reads 3060 bytes there.
func TestRegression_Differential_KeptSocket3060Bytes(t *testing.T) {
	bin := stockEpmdPath(t)
	known := runDifferential(t, bin, diffScript(
		rawStep(cat(longAlive2("kept"), strings.Repeat("m", 3060))), rawStep(frame([]byte("n")))))
	if len(known) > 0 {
		t.Errorf("%v: with exactly 3060 bytes on a kept socket, stock reads them all and sends EOF; ours must too", known)
	}
}
