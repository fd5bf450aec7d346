package fuzz_test

import (
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
// (registered or refused), stock epmd read()s them, up to 3060, then
// unregisters and closes: the client sees EOF. gopmd only peeks at the
// socket (MSG_PEEK in epmd/server/poller.go, a 1-byte read without the
// poller) and closes it with the bytes unread, so the kernel answers with
// a reset and the client's read fails with ECONNRESET. Both unregister
// the node and send nothing more; only the end of the connection differed.
// Fixed: gopmd now consumes what arrived, in one read of up to 3059 bytes
// as stock does, before it closes (drain in epmd/server/poller.go).
func TestRegression_Differential_KeptSocketDataReset(t *testing.T) {
	bin := stockEpmdPath(t)
	for _, extra := range []string{"m", "more"} {
		known := runDifferential(t, bin, diffScript(
			rawStep(cat(longAlive2("kept"), extra)), rawStep(frame([]byte("n")))))
		if len(known) > 0 {
			t.Errorf("extra %q: %v: ours resets a kept socket that received bytes, stock reads them and sends EOF", extra, known)
		}
	}
}
