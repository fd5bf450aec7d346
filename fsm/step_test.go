package fsm_test

import (
	"errors"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gopmd/gopmd/epmd/registry"
	"github.com/gopmd/gopmd/epmd/wire"
	"github.com/gopmd/gopmd/fsm"
)

// The connection under test is always ID 1, fd 5. Prior events may also
// drive helper connections 2..9: local, relaxed, fd = ID + 4.
const self registry.ConnID = 1

func helperCfg(id registry.ConnID) fsm.Config {
	return fsm.Config{ID: id, Fd: int(id) + 4, Local: true, Relaxed: true, Port: wire.DefaultPort}
}

var (
	local         = fsm.Config{ID: self, Fd: 5, Local: true, Port: wire.DefaultPort}
	localRelaxed  = fsm.Config{ID: self, Fd: 5, Local: true, Relaxed: true, Port: wire.DefaultPort}
	remote        = fsm.Config{ID: self, Fd: 5, Port: wire.DefaultPort}
	remoteRelaxed = fsm.Config{ID: self, Fd: 5, Relaxed: true, Port: wire.DefaultPort}
)

// prior is an event applied before the one under test.
type prior struct {
	conn registry.ConnID // self, or a helper connection
	ev   fsm.Event
}

type stepCase struct {
	name   string
	cfg    fsm.Config
	prior  []prior
	ev     fsm.Event
	want   []fsm.Action
	state  fsm.State
	owners map[string]registry.ConnID // registered names after the step
}

// Common prior sequences.
var (
	// helper 2 holds alpha (port 5555, High 6, counter 1001).
	alphaHeld = []prior{{2, alive2(node("alpha", 5555), 1000)}}
	// alpha was registered (counter 1001) and went away; it is remembered.
	alphaGone = []prior{{2, alive2(node("alpha", 5555), 1000)}, {2, fsm.PeerClosed{}}}
	// self holds alpha.
	selfAlpha = []prior{{self, alive2(node("alpha", 5555), 1000)}}
	// helper 2 holds alpha; self asked for alpha too and was refused.
	selfRefused = []prior{{2, alive2(node("alpha", 5555), 1000)}, {self, alive2(node("alpha", 7777), 1000)}}
)

// odd has every field away from the usual values, to show they are all
// stored and echoed (facts §4.2, beta of the stock transcript).
var odd = wire.Node{Name: "beta", Port: 6666, Type: wire.NodeHidden, Proto: 1, High: 5, Low: 3, Extra: "EXTRA\x00x"}

func registered(n wire.Node, creation uint32) fsm.Action {
	return fsm.RegisteredNode{Node: n, Creation: creation}
}

func with(n wire.Node, f func(*wire.Node)) wire.Node { f(&n); return n }

func sendX(result uint8, creation uint32) fsm.Action {
	return fsm.Send{Resp: &wire.Alive2XResp{Result: result, Creation: creation}}
}

func sendY(result uint8, creation uint16) fsm.Action {
	return fsm.Send{Resp: &wire.Alive2Resp{Result: result, Creation: creation}}
}

func closeFor(reason string) fsm.Action { return fsm.Close{Reason: reason} }

// resetFor is the close after a write failed: a reset.
func resetFor(reason string) fsm.Action { return fsm.Close{Reason: reason, Reset: true} }

var done = closeFor(fsm.ReasonDone)

func stepCases() []stepCase {
	refusedX := func(reason, detail string) []fsm.Action {
		return []fsm.Action{fsm.Refusal{Reason: reason, Detail: detail}, sendX(1, wire.ErrorCreation)}
	}
	refusedY := func(reason, detail string) []fsm.Action {
		return []fsm.Action{fsm.Refusal{Reason: reason, Detail: detail}, sendY(1, wire.ErrorCreation)}
	}
	dupDetail := "node name already occupied alpha"
	alpha := node("alpha", 5555)
	v := func(high uint16) wire.Node { return with(alpha, func(n *wire.Node) { n.High = high }) }
	smiley255 := rep("\U0001F600", 255) // 255 characters, 1020 bytes
	a255 := rep("a", 255)

	return []stepCase{
		// ALIVE2 success: the reply form follows HighestVersion only.
		{name: "alive2/v6_new_name", cfg: local, ev: alive2(alpha, 1000),
			want:  []fsm.Action{registered(alpha, 1001), sendX(0, 1001)},
			state: fsm.Registered, owners: map[string]registry.ConnID{"alpha": self}},
		{name: "alive2/v6_full_32bit_creation", cfg: local, ev: alive2(alpha, 0xF000_0000),
			want:  []fsm.Action{registered(alpha, 0xF000_0001), sendX(0, 0xF000_0001)},
			state: fsm.Registered, owners: map[string]registry.ConnID{"alpha": self}},
		{name: "alive2/v6_now_truncated_to_32bit", cfg: local, ev: alive2(alpha, 1<<32+41),
			want:  []fsm.Action{registered(alpha, 42), sendX(0, 42)},
			state: fsm.Registered, owners: map[string]registry.ConnID{"alpha": self}},
		{name: "alive2/v6_counter_below_4_becomes_4", cfg: local, ev: alive2(alpha, 0xFFFF_FFFF),
			want:  []fsm.Action{registered(alpha, 4), sendX(0, 4)},
			state: fsm.Registered, owners: map[string]registry.ConnID{"alpha": self}},
		{name: "alive2/v7_gets_x_resp", cfg: local, ev: alive2(v(7), 1000),
			want:  []fsm.Action{registered(v(7), 1001), sendX(0, 1001)},
			state: fsm.Registered, owners: map[string]registry.ConnID{"alpha": self}},
		{name: "alive2/v65535_gets_x_resp", cfg: local, ev: alive2(v(65535), 1000),
			want:  []fsm.Action{registered(v(65535), 1001), sendX(0, 1001)},
			state: fsm.Registered, owners: map[string]registry.ConnID{"alpha": self}},
		// 1001 % 3 + 1 = 3: old nodes get a 2-bit creation from the counter.
		{name: "alive2/v5_counter_mod_3_plus_1", cfg: local, ev: alive2(v(5), 1000),
			want:  []fsm.Action{registered(v(5), 1001), sendY(0, 3)},
			state: fsm.Registered, owners: map[string]registry.ConnID{"alpha": self}},
		{name: "alive2/v0_counter_mod_3_plus_1", cfg: local, ev: alive2(v(0), 1001),
			want:  []fsm.Action{registered(v(0), 1002), sendY(0, 1)},
			state: fsm.Registered, owners: map[string]registry.ConnID{"alpha": self}},
		{name: "alive2/v5_large_counter", cfg: local, ev: alive2(v(5), 0xF000_0000),
			want:  []fsm.Action{registered(v(5), 0xF000_0001), sendY(0, 0xF000_0001%3+1)},
			state: fsm.Registered, owners: map[string]registry.ConnID{"alpha": self}},
		// A remembered name gets its counter + 1 whatever the clock says.
		{name: "alive2/v6_reregistration", cfg: local, prior: alphaGone, ev: alive2(alpha, 5000),
			want:  []fsm.Action{registered(alpha, 1002), sendX(0, 1002)},
			state: fsm.Registered, owners: map[string]registry.ConnID{"alpha": self}},
		{name: "alive2/v5_reregistration", cfg: local, prior: alphaGone, ev: alive2(v(5), 5000),
			want:  []fsm.Action{registered(v(5), 1002), sendY(0, 1)},
			state: fsm.Registered, owners: map[string]registry.ConnID{"alpha": self}},
		{name: "alive2/relaxed_makes_no_difference", cfg: localRelaxed, ev: alive2(alpha, 1000),
			want:  []fsm.Action{registered(alpha, 1001), sendX(0, 1001)},
			state: fsm.Registered, owners: map[string]registry.ConnID{"alpha": self}},
		{name: "alive2/odd_fields_stored", cfg: local, ev: alive2(odd, 1000),
			want:  []fsm.Action{registered(odd, 1001), sendY(0, 3)},
			state: fsm.Registered, owners: map[string]registry.ConnID{"beta": self}},
		{name: "alive2/255_four_byte_chars", cfg: local, ev: alive2(node(smiley255, 1), 1000),
			want:  []fsm.Action{registered(node(smiley255, 1), 1001), sendX(0, 1001)},
			state: fsm.Registered, owners: map[string]registry.ConnID{smiley255: self}},
		{name: "alive2/255_chars", cfg: local, ev: alive2(node(a255, 1), 1000),
			want:  []fsm.Action{registered(node(a255, 1), 1001), sendX(0, 1001)},
			state: fsm.Registered, owners: map[string]registry.ConnID{a255: self}},
		{name: "alive2/extra_1020_bytes", cfg: local,
			ev:    alive2(with(alpha, func(n *wire.Node) { n.Extra = rep("\x00", 1020) }), 1000),
			want:  []fsm.Action{registered(with(alpha, func(n *wire.Node) { n.Extra = rep("\x00", 1020) }), 1001), sendX(0, 1001)},
			state: fsm.Registered, owners: map[string]registry.ConnID{"alpha": self}},
		{name: "alive2/empty_name_with_extra", cfg: local,
			ev:    alive2(with(node("", 1), func(n *wire.Node) { n.Extra = "x" }), 1000),
			want:  []fsm.Action{registered(with(node("", 1), func(n *wire.Node) { n.Extra = "x" }), 1001), sendX(0, 1001)},
			state: fsm.Registered, owners: map[string]registry.ConnID{"": self}},
		{name: "alive2/remembered_name_is_no_duplicate", cfg: local, prior: alphaGone, ev: alive2(node("alpha", 1), 7),
			want:  []fsm.Action{registered(node("alpha", 1), 1002), sendX(0, 1002)},
			state: fsm.Registered, owners: map[string]registry.ConnID{"alpha": self}},

		// ALIVE2 refused: reply result 1, creation 99, socket kept (no Close).
		{name: "refused/name_1021_bytes", cfg: local, ev: alive2(node(rep("a", 1021), 1), 1000),
			want:  refusedX(wire.ReasonNameTooLong, "node name is too long (1021) "+rep("a", 1021)),
			state: fsm.Refused},
		{name: "refused/name_1021_bytes_v5", cfg: local, ev: alive2v(rep("a", 1021), 1, 5, 1000),
			want:  refusedY(wire.ReasonNameTooLong, "node name is too long (1021) "+rep("a", 1021)),
			state: fsm.Refused},
		{name: "refused/name_1021_bytes_before_encoding", cfg: local, ev: alive2(node(rep("\xff", 1021), 1), 1000),
			want:  refusedX(wire.ReasonNameTooLong, "node name is too long (1021) "+rep("\xff", 1021)),
			state: fsm.Refused},
		{name: "refused/invalid_utf8", cfg: local, ev: alive2(node("\xff\xfe", 1), 1000),
			want:  refusedX(wire.ReasonBadNameEncoding, "invalid node name encoding"),
			state: fsm.Refused},
		{name: "refused/overlong_nul", cfg: local, ev: alive2(node("\xc0\x80", 1), 1000),
			want:  refusedX(wire.ReasonBadNameEncoding, "invalid node name encoding"),
			state: fsm.Refused},
		{name: "refused/surrogate", cfg: local, ev: alive2(node("\xed\xa0\x80", 1), 1000),
			want:  refusedX(wire.ReasonBadNameEncoding, "invalid node name encoding"),
			state: fsm.Refused},
		{name: "refused/invalid_utf8_v5", cfg: local, ev: alive2v("\xff", 1, 5, 1000),
			want:  refusedY(wire.ReasonBadNameEncoding, "invalid node name encoding"),
			state: fsm.Refused},
		{name: "refused/256_chars", cfg: local, ev: alive2(node(rep("a", 256), 1), 1000),
			want:  refusedX(wire.ReasonNameTooLong, "node name is too long (256) "+rep("a", 256)),
			state: fsm.Refused},
		{name: "refused/extra_1021_bytes", cfg: local,
			ev:    alive2(with(alpha, func(n *wire.Node) { n.Extra = rep("e", 1021) }), 1000),
			want:  refusedX(wire.ReasonExtraTooLong, "extra data is too long (1021) "+rep("e", 1021)),
			state: fsm.Refused},
		{name: "refused/duplicate", cfg: local, prior: alphaHeld, ev: alive2(node("alpha", 7777), 2000),
			want:  refusedX(fsm.ReasonDuplicate, dupDetail),
			state: fsm.Refused, owners: map[string]registry.ConnID{"alpha": 2}},
		{name: "refused/duplicate_v5", cfg: local, prior: alphaHeld, ev: alive2v("alpha", 7777, 5, 2000),
			want:  refusedY(fsm.ReasonDuplicate, dupDetail),
			state: fsm.Refused, owners: map[string]registry.ConnID{"alpha": 2}},
		{name: "refused/validation_before_duplicate", cfg: local,
			prior: []prior{{2, alive2(node("alpha", 1), 1000)}},
			ev:    alive2(with(alpha, func(n *wire.Node) { n.Extra = rep("e", 1021) }), 1000),
			want:  refusedX(wire.ReasonExtraTooLong, "extra data is too long (1021) "+rep("e", 1021)),
			state: fsm.Refused, owners: map[string]registry.ConnID{"alpha": 2}},

		// Local-only requests from a remote peer: silent close, relaxed or not.
		{name: "remote/alive2", cfg: remote, ev: alive2(alpha, 1000),
			want: []fsm.Action{closeFor(fsm.ReasonNotLocal)}, state: fsm.Closed},
		{name: "remote/alive2_relaxed", cfg: remoteRelaxed, ev: alive2(alpha, 1000),
			want: []fsm.Action{closeFor(fsm.ReasonNotLocal)}, state: fsm.Closed},
		{name: "remote/alive2_invalid_name", cfg: remote, ev: alive2(node("\xff", 1), 1000),
			want: []fsm.Action{closeFor(fsm.ReasonNotLocal)}, state: fsm.Closed},
		{name: "remote/dump", cfg: remote, prior: alphaHeld, ev: dump,
			want: []fsm.Action{closeFor(fsm.ReasonNotLocal)}, state: fsm.Closed,
			owners: map[string]registry.ConnID{"alpha": 2}},
		{name: "remote/dump_relaxed", cfg: remoteRelaxed, ev: dump,
			want: []fsm.Action{closeFor(fsm.ReasonNotLocal)}, state: fsm.Closed},
		{name: "remote/kill_empty", cfg: remote, ev: kill,
			want: []fsm.Action{closeFor(fsm.ReasonNotLocal)}, state: fsm.Closed},
		{name: "remote/kill_relaxed", cfg: remoteRelaxed, prior: alphaHeld, ev: kill,
			want: []fsm.Action{closeFor(fsm.ReasonNotLocal)}, state: fsm.Closed,
			owners: map[string]registry.ConnID{"alpha": 2}},
		{name: "remote/stop", cfg: remote, prior: alphaHeld, ev: stop("alpha"),
			want: []fsm.Action{closeFor(fsm.ReasonNotLocal)}, state: fsm.Closed,
			owners: map[string]registry.ConnID{"alpha": 2}},
		{name: "remote/stop_relaxed", cfg: remoteRelaxed, prior: alphaHeld, ev: stop("alpha"),
			want: []fsm.Action{closeFor(fsm.ReasonNotLocal)}, state: fsm.Closed,
			owners: map[string]registry.ConnID{"alpha": 2}},

		// PORT_PLEASE2: any peer; reply then close, or a silent close.
		{name: "port2/found_echoes_every_field", cfg: remote,
			prior: []prior{{2, alive2(odd, 1000)}}, ev: port2("beta"),
			want:  []fsm.Action{fsm.Send{Resp: &wire.Port2Resp{Node: odd}}, done},
			state: fsm.Closed, owners: map[string]registry.ConnID{"beta": 2}},
		{name: "port2/found_local", cfg: local, prior: alphaHeld, ev: port2("alpha"),
			want:  []fsm.Action{fsm.Send{Resp: &wire.Port2Resp{Node: alpha}}, done},
			state: fsm.Closed, owners: map[string]registry.ConnID{"alpha": 2}},
		{name: "port2/not_found", cfg: local, prior: alphaHeld, ev: port2("Alpha"),
			want:  []fsm.Action{fsm.Send{Resp: &wire.Port2Resp{Result: 1}}, done},
			state: fsm.Closed, owners: map[string]registry.ConnID{"alpha": 2}},
		{name: "port2/remembered_not_found", cfg: local, prior: alphaGone, ev: port2("alpha"),
			want:  []fsm.Action{fsm.Send{Resp: &wire.Port2Resp{Result: 1}}, done},
			state: fsm.Closed},
		{name: "port2/refused_registration_not_found", cfg: local,
			prior: []prior{{2, alive2(node(rep("a", 256), 1), 1000)}}, ev: port2(rep("a", 256)),
			want: []fsm.Action{closeFor(fsm.ReasonBadLookupName)}, state: fsm.Closed},
		{name: "port2/invalid_utf8", cfg: local, ev: port2("\xff"),
			want: []fsm.Action{closeFor(fsm.ReasonBadLookupName)}, state: fsm.Closed},
		{name: "port2/256_chars", cfg: local, ev: port2(rep("a", 256)),
			want: []fsm.Action{closeFor(fsm.ReasonBadLookupName)}, state: fsm.Closed},
		// Stock cannot resolve a 255-character name (validator counts the
		// NUL); gopmd does, deliberately.
		{name: "port2/255_chars_resolves", cfg: local,
			prior: []prior{{2, alive2(node(a255, 1), 1000)}}, ev: port2(a255),
			want:  []fsm.Action{fsm.Send{Resp: &wire.Port2Resp{Node: node(a255, 1)}}, done},
			state: fsm.Closed, owners: map[string]registry.ConnID{a255: 2}},
		{name: "port2/255_four_byte_chars_resolve", cfg: local,
			prior: []prior{{2, alive2(node(smiley255, 1), 1000)}}, ev: port2(smiley255),
			want:  []fsm.Action{fsm.Send{Resp: &wire.Port2Resp{Node: node(smiley255, 1)}}, done},
			state: fsm.Closed, owners: map[string]registry.ConnID{smiley255: 2}},
		{name: "port2/254_chars_unknown", cfg: local, ev: port2(rep("a", 254)),
			want: []fsm.Action{fsm.Send{Resp: &wire.Port2Resp{Result: 1}}, done}, state: fsm.Closed},

		// NAMES: configured port, newest first, any peer.
		{name: "names/empty", cfg: fsm.Config{ID: self, Port: 14369}, ev: names,
			want:  []fsm.Action{fsm.Send{Resp: &wire.NamesResp{Port: 14369}}, done},
			state: fsm.Closed},
		{name: "names/newest_first_configured_port", cfg: fsm.Config{ID: self, Port: 70000},
			prior: []prior{{2, alive2(alpha, 1000)}, {3, alive2(odd, 1000)}}, ev: names,
			want: []fsm.Action{fsm.Send{Resp: &wire.NamesResp{Port: 70000, Nodes: []wire.NameEntry{
				{Name: "beta", Port: 6666}, {Name: "alpha", Port: 5555}}}}, done},
			state: fsm.Closed, owners: map[string]registry.ConnID{"alpha": 2, "beta": 3}},
		{name: "names/gone_and_refused_not_listed", cfg: local,
			prior: []prior{
				{2, alive2(node("a", 1), 1)}, {3, alive2(node("b", 2), 1)}, {4, alive2(node("c", 3), 1)},
				{5, alive2(node("b", 9), 1)}, {3, fsm.PeerClosed{}},
			},
			ev: names,
			want: []fsm.Action{fsm.Send{Resp: &wire.NamesResp{Port: wire.DefaultPort, Nodes: []wire.NameEntry{
				{Name: "c", Port: 3}, {Name: "a", Port: 1}}}}, done},
			state: fsm.Closed, owners: map[string]registry.ConnID{"a": 2, "c": 4}},

		// DUMP: configured port, active newest first, then remembered oldest first.
		{name: "dump/empty", cfg: fsm.Config{ID: self, Local: true, Port: 14369}, ev: dump,
			want: []fsm.Action{fsm.Send{Resp: &wire.DumpResp{Port: 14369}}, done}, state: fsm.Closed},
		{name: "dump/active_and_remembered", cfg: fsm.Config{ID: self, Local: true, Port: 14369},
			prior: []prior{
				{2, alive2(node("a", 1), 1)}, {3, alive2(node("b", 2), 1)},
				{4, alive2(node("c", 3), 1)}, {5, alive2(node("d", 4), 1)},
				{3, fsm.PeerClosed{}}, {2, fsm.PeerClosed{}},
			},
			ev: dump,
			want: []fsm.Action{fsm.Send{Resp: &wire.DumpResp{Port: 14369,
				Active: []wire.DumpEntry{{Name: "d", Port: 4, Fd: 9}, {Name: "c", Port: 3, Fd: 8}},
				Old:    []wire.DumpEntry{{Name: "b", Port: 2, Fd: 7}, {Name: "a", Port: 1, Fd: 6}},
			}}, done},
			state: fsm.Closed, owners: map[string]registry.ConnID{"c": 4, "d": 5}},

		// KILL.
		{name: "kill/registered_not_relaxed", cfg: local, prior: alphaHeld, ev: kill,
			want: []fsm.Action{
				fsm.Refusal{Reason: fsm.ReasonKillRefused, Detail: "Disallowed EPMD_KILL_REQ, live nodes"},
				fsm.Send{Resp: &wire.KillResp{OK: false}}, done},
			state: fsm.Closed, owners: map[string]registry.ConnID{"alpha": 2}},
		{name: "kill/two_registered_not_relaxed", cfg: local,
			prior: []prior{{2, alive2(alpha, 1)}, {3, alive2(odd, 1)}}, ev: kill,
			want: []fsm.Action{
				fsm.Refusal{Reason: fsm.ReasonKillRefused, Detail: "Disallowed EPMD_KILL_REQ, live nodes"},
				fsm.Send{Resp: &wire.KillResp{OK: false}}, done},
			state: fsm.Closed, owners: map[string]registry.ConnID{"alpha": 2, "beta": 3}},
		{name: "kill/empty", cfg: local, ev: kill,
			want:  []fsm.Action{fsm.Send{Resp: &wire.KillResp{OK: true}}, fsm.Shutdown{}, done},
			state: fsm.Closed},
		{name: "kill/registered_relaxed", cfg: localRelaxed, prior: alphaHeld, ev: kill,
			want:  []fsm.Action{fsm.Send{Resp: &wire.KillResp{OK: true}}, fsm.Shutdown{}, done},
			state: fsm.Closed, owners: map[string]registry.ConnID{"alpha": 2}},
		{name: "kill/remembered_does_not_count", cfg: local, prior: alphaGone, ev: kill,
			want:  []fsm.Action{fsm.Send{Resp: &wire.KillResp{OK: true}}, fsm.Shutdown{}, done},
			state: fsm.Closed},
		{name: "kill/refused_socket_does_not_count", cfg: local,
			prior: []prior{{2, alive2(node(rep("a", 256), 1), 1)}}, ev: kill,
			want:  []fsm.Action{fsm.Send{Resp: &wire.KillResp{OK: true}}, fsm.Shutdown{}, done},
			state: fsm.Closed},

		// STOP.
		{name: "stop/not_relaxed", cfg: local, prior: alphaHeld, ev: stop("alpha"),
			want: []fsm.Action{closeFor(fsm.ReasonNotRelaxed)}, state: fsm.Closed,
			owners: map[string]registry.ConnID{"alpha": 2}},
		{name: "stop/not_relaxed_unknown", cfg: local, ev: stop("nobody"),
			want: []fsm.Action{closeFor(fsm.ReasonNotRelaxed)}, state: fsm.Closed},
		{name: "stop/registered", cfg: localRelaxed,
			prior: []prior{{2, alive2(alpha, 1)}, {3, alive2(odd, 1)}}, ev: stop("alpha"),
			want: []fsm.Action{
				fsm.UnregisteredNode{Name: "alpha"}, fsm.CloseConn{ID: 2},
				fsm.Send{Resp: &wire.StopResp{Stopped: true}}, done},
			state: fsm.Closed, owners: map[string]registry.ConnID{"beta": 3}},
		{name: "stop/unknown", cfg: localRelaxed, prior: alphaHeld, ev: stop("xxx42"),
			want:  []fsm.Action{fsm.Send{Resp: &wire.StopResp{Stopped: false}}, done},
			state: fsm.Closed, owners: map[string]registry.ConnID{"alpha": 2}},
		{name: "stop/remembered_is_unknown", cfg: localRelaxed, prior: alphaGone, ev: stop("alpha"),
			want:  []fsm.Action{fsm.Send{Resp: &wire.StopResp{Stopped: false}}, done},
			state: fsm.Closed},
		{name: "stop/empty_name", cfg: localRelaxed, ev: stop(""),
			want:  []fsm.Action{fsm.Send{Resp: &wire.StopResp{Stopped: false}}, done},
			state: fsm.Closed},
		{name: "stop/targets_holder_not_refused", cfg: localRelaxed,
			prior: []prior{{2, alive2(alpha, 1)}, {3, alive2(alpha, 1)}}, ev: stop("alpha"),
			want: []fsm.Action{
				fsm.UnregisteredNode{Name: "alpha"}, fsm.CloseConn{ID: 2},
				fsm.Send{Resp: &wire.StopResp{Stopped: true}}, done},
			state: fsm.Closed},

		// Other events before a request is complete.
		{name: "awaiting/malformed", cfg: local, ev: fsm.Malformed{Err: wire.ErrUnknownTag},
			want: []fsm.Action{closeFor(fsm.ReasonMalformed)}, state: fsm.Closed},
		{name: "awaiting/data", cfg: local, ev: fsm.Data{},
			want: []fsm.Action{closeFor(fsm.ReasonMalformed)}, state: fsm.Closed},
		{name: "awaiting/peer_closed", cfg: local, ev: fsm.PeerClosed{Err: io.ErrUnexpectedEOF},
			want: []fsm.Action{closeFor(fsm.ReasonPeerClosed)}, state: fsm.Closed},
		{name: "awaiting/timeout", cfg: local, ev: fsm.Timeout{},
			want: []fsm.Action{closeFor(fsm.ReasonTimeout)}, state: fsm.Closed},
		{name: "awaiting/write_failed", cfg: local, ev: fsm.WriteFailed{Err: io.ErrClosedPipe},
			want: []fsm.Action{resetFor(fsm.ReasonWriteFailed)}, state: fsm.Closed},
		{name: "awaiting/malformed_leaves_others_alone", cfg: local, prior: alphaHeld, ev: fsm.Malformed{},
			want: []fsm.Action{closeFor(fsm.ReasonMalformed)}, state: fsm.Closed,
			owners: map[string]registry.ConnID{"alpha": 2}},

		// Registered: no timeout; anything else ends the registration.
		{name: "registered/timeout", cfg: local, prior: selfAlpha, ev: fsm.Timeout{},
			want: nil, state: fsm.Registered, owners: map[string]registry.ConnID{"alpha": self}},
		{name: "registered/peer_closed", cfg: local, prior: selfAlpha, ev: fsm.PeerClosed{},
			want:  []fsm.Action{fsm.UnregisteredNode{Name: "alpha"}, closeFor(fsm.ReasonPeerClosed)},
			state: fsm.Closed},
		{name: "registered/read_error", cfg: local, prior: selfAlpha, ev: fsm.PeerClosed{Err: errors.New("connection reset")},
			want:  []fsm.Action{fsm.UnregisteredNode{Name: "alpha"}, closeFor(fsm.ReasonPeerClosed)},
			state: fsm.Closed},
		{name: "registered/data", cfg: local, prior: selfAlpha, ev: fsm.Data{},
			want:  []fsm.Action{fsm.UnregisteredNode{Name: "alpha"}, closeFor(fsm.ReasonData)},
			state: fsm.Closed},
		{name: "registered/write_failed", cfg: local, prior: selfAlpha, ev: fsm.WriteFailed{},
			want:  []fsm.Action{fsm.UnregisteredNode{Name: "alpha"}, resetFor(fsm.ReasonWriteFailed)},
			state: fsm.Closed},
		{name: "registered/malformed", cfg: local, prior: selfAlpha, ev: fsm.Malformed{},
			want:  []fsm.Action{fsm.UnregisteredNode{Name: "alpha"}, closeFor(fsm.ReasonMalformed)},
			state: fsm.Closed},
		{name: "registered/second_alive2", cfg: local, prior: selfAlpha, ev: alive2(node("other", 1), 2000),
			want:  []fsm.Action{fsm.UnregisteredNode{Name: "alpha"}, closeFor(fsm.ReasonData)},
			state: fsm.Closed},
		{name: "registered/names_request", cfg: local, prior: selfAlpha, ev: names,
			want:  []fsm.Action{fsm.UnregisteredNode{Name: "alpha"}, closeFor(fsm.ReasonData)},
			state: fsm.Closed},
		{name: "registered/others_stay", cfg: local,
			prior: []prior{{2, alive2(odd, 1)}, {self, alive2(alpha, 1)}}, ev: fsm.PeerClosed{},
			want:  []fsm.Action{fsm.UnregisteredNode{Name: "alpha"}, closeFor(fsm.ReasonPeerClosed)},
			state: fsm.Closed, owners: map[string]registry.ConnID{"beta": 2}},
		// STOP already removed the name: the late close must not report or
		// remove anything.
		{name: "registered/peer_closed_after_stop", cfg: local,
			prior: []prior{{self, alive2(alpha, 1)}, {2, stop("alpha")}}, ev: fsm.PeerClosed{},
			want: []fsm.Action{closeFor(fsm.ReasonPeerClosed)}, state: fsm.Closed},
		{name: "registered/timeout_after_stop", cfg: local,
			prior: []prior{{self, alive2(alpha, 1)}, {2, stop("alpha")}}, ev: fsm.Timeout{},
			want: nil, state: fsm.Registered},
		// ...nor remove whoever registered the name since.
		{name: "registered/peer_closed_after_stop_and_reregistration", cfg: local,
			prior: []prior{{self, alive2(alpha, 1)}, {2, stop("alpha")}, {3, alive2(alpha, 1)}},
			ev:    fsm.PeerClosed{},
			want:  []fsm.Action{closeFor(fsm.ReasonPeerClosed)},
			state: fsm.Closed, owners: map[string]registry.ConnID{"alpha": 3}},

		// Refused: no timeout; anything closes; the registry is untouched.
		// In particular the live holder of the refused name stays (stock
		// unregisters by name here, removing the other node).
		{name: "refused/timeout", cfg: local, prior: selfRefused, ev: fsm.Timeout{},
			want: nil, state: fsm.Refused, owners: map[string]registry.ConnID{"alpha": 2}},
		{name: "refused/peer_closed", cfg: local, prior: selfRefused, ev: fsm.PeerClosed{},
			want: []fsm.Action{closeFor(fsm.ReasonPeerClosed)}, state: fsm.Closed,
			owners: map[string]registry.ConnID{"alpha": 2}},
		{name: "refused/data", cfg: local, prior: selfRefused, ev: fsm.Data{},
			want: []fsm.Action{closeFor(fsm.ReasonData)}, state: fsm.Closed,
			owners: map[string]registry.ConnID{"alpha": 2}},
		{name: "refused/write_failed", cfg: local, prior: selfRefused, ev: fsm.WriteFailed{},
			want: []fsm.Action{resetFor(fsm.ReasonWriteFailed)}, state: fsm.Closed,
			owners: map[string]registry.ConnID{"alpha": 2}},
		{name: "refused/malformed", cfg: local, prior: selfRefused, ev: fsm.Malformed{},
			want: []fsm.Action{closeFor(fsm.ReasonMalformed)}, state: fsm.Closed,
			owners: map[string]registry.ConnID{"alpha": 2}},
		{name: "refused/second_alive2", cfg: local, prior: selfRefused, ev: alive2(node("gamma", 1), 1),
			want: []fsm.Action{closeFor(fsm.ReasonData)}, state: fsm.Closed,
			owners: map[string]registry.ConnID{"alpha": 2}},
		{name: "refused/bad_name_peer_closed", cfg: local,
			prior: []prior{{2, alive2(odd, 1)}, {self, alive2(node(rep("b", 256), 1), 1)}}, ev: fsm.PeerClosed{},
			want: []fsm.Action{closeFor(fsm.ReasonPeerClosed)}, state: fsm.Closed,
			owners: map[string]registry.ConnID{"beta": 2}},
	}
}

func TestConnStep(t *testing.T) {
	for _, tc := range stepCases() {
		t.Run(tc.name, func(t *testing.T) {
			if tc.cfg.ID != self {
				t.Fatalf("bad case: config ID %d, want %d", tc.cfg.ID, self)
			}
			reg := registry.New(registry.MaxRemembered)
			c := fsm.New(tc.cfg)
			conns := map[registry.ConnID]*fsm.Conn{self: c}
			for _, p := range tc.prior {
				pc := conns[p.conn]
				if pc == nil {
					pc = fsm.New(helperCfg(p.conn))
					conns[p.conn] = pc
				}
				step(t, pc, reg, p.ev)
			}
			got := step(t, c, reg, tc.ev)
			if d := cmp.Diff(tc.want, got, diffOpts...); d != "" {
				t.Errorf("actions (-want +got):\n%s", d)
			}
			if tc.want == nil && got != nil {
				t.Errorf("actions = %#v, want nil", got)
			}
			if s := c.State(); s != tc.state {
				t.Errorf("state = %v, want %v", s, tc.state)
			}
			if d := cmp.Diff(tc.owners, owners(reg), diffOpts...); d != "" {
				t.Errorf("registry owners (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.cfg, c.Config()); d != "" {
				t.Errorf("Config (-want +got):\n%s", d)
			}
		})
	}
}

// allEvents has one event of every kind, requests of every tag included.
func allEvents() []fsm.Event {
	return []fsm.Event{
		alive2(node("alpha", 1), 1), alive2(node("zeta", 1), 1), port2("alpha"), names, dump, kill,
		stop("alpha"), stop("zeta"), fsm.Malformed{}, fsm.Data{}, fsm.PeerClosed{}, fsm.Timeout{},
		fsm.WriteFailed{},
	}
}

// TestClosedAbsorbs closes a connection in each way there is, then feeds it
// every event: no actions, no state change, no registry change. The one
// exception comes first: when the closing step planned a reply, a
// WriteFailed for it turns the planned close into a reset (keeping a
// planned Shutdown), once.
func TestClosedAbsorbs(t *testing.T) {
	for _, tc := range stepCases() {
		if tc.state != fsm.Closed {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			reg := registry.New(registry.MaxRemembered)
			c := fsm.New(tc.cfg)
			conns := map[registry.ConnID]*fsm.Conn{self: c}
			for _, p := range append(tc.prior, prior{self, tc.ev}) {
				pc := conns[p.conn]
				if pc == nil {
					pc = fsm.New(helperCfg(p.conn))
					conns[p.conn] = pc
				}
				step(t, pc, reg, p.ev)
			}
			if c.State() != fsm.Closed {
				t.Fatalf("state = %v, want Closed", c.State())
			}
			var want []fsm.Action
			for _, a := range tc.want {
				if _, ok := a.(fsm.Send); ok {
					want = []fsm.Action{resetFor(fsm.ReasonWriteFailed)}
				}
			}
			for _, a := range tc.want {
				if _, ok := a.(fsm.Shutdown); ok && want != nil {
					want = append([]fsm.Action{fsm.Shutdown{}}, want...)
				}
			}
			if got := step(t, c, reg, fsm.WriteFailed{}); !cmp.Equal(got, want) {
				t.Errorf("WriteFailed after the closing step = %#v, want %#v", got, want)
			}
			before := reg.Live()
			beforeOld := reg.Remembered()
			for _, ev := range allEvents() {
				if got := step(t, c, reg, ev); got != nil {
					t.Errorf("Step(%#v) in Closed = %#v, want nil", ev, got)
				}
				if c.State() != fsm.Closed {
					t.Fatalf("Step(%#v) left Closed for %v", ev, c.State())
				}
				if _, ok := c.Name(); ok {
					t.Errorf("Name() ok in Closed")
				}
			}
			if d := cmp.Diff(before, reg.Live(), diffOpts...); d != "" {
				t.Errorf("registry changed in Closed (-before +after):\n%s", d)
			}
			if d := cmp.Diff(beforeOld, reg.Remembered(), diffOpts...); d != "" {
				t.Errorf("remembered records changed in Closed (-before +after):\n%s", d)
			}
		})
	}
}

func TestConnName(t *testing.T) {
	reg := registry.New(registry.MaxRemembered)
	a := fsm.New(local)
	if name, ok := a.Name(); ok || name != "" {
		t.Errorf("new conn: Name() = %q, %v; want \"\", false", name, ok)
	}
	step(t, a, reg, alive2(node("alpha", 1), 1))
	if name, ok := a.Name(); !ok || name != "alpha" {
		t.Errorf("registered: Name() = %q, %v; want alpha, true", name, ok)
	}
	// STOP removes the name from the registry, but the connection keeps
	// reporting it until its socket closes.
	step(t, fsm.New(helperCfg(2)), reg, stop("alpha"))
	if name, ok := a.Name(); !ok || name != "alpha" {
		t.Errorf("after STOP: Name() = %q, %v; want alpha, true", name, ok)
	}
	step(t, a, reg, fsm.PeerClosed{})
	if _, ok := a.Name(); ok {
		t.Errorf("closed: Name() ok")
	}

	r := fsm.New(local)
	step(t, r, reg, alive2(node("\xff", 1), 1))
	if _, ok := r.Name(); ok {
		t.Errorf("refused: Name() ok")
	}
}

func TestStateString(t *testing.T) {
	for s, want := range map[fsm.State]string{
		fsm.AwaitingRequest: "AwaitingRequest",
		fsm.Registered:      "Registered",
		fsm.Refused:         "Refused",
		fsm.Closed:          "Closed",
		fsm.State(9):        "State(9)",
	} {
		if got := s.String(); got != want {
			t.Errorf("State(%d).String() = %q, want %q", uint8(s), got, want)
		}
	}
}

// TestStepPanicsOnNilEvent: an event Step does not know is a programming
// error in the server, in every state.
func TestStepPanicsOnNilEvent(t *testing.T) {
	setups := map[string][]fsm.Event{
		"AwaitingRequest": nil,
		"Registered":      {alive2(node("alpha", 1), 1)},
		"Refused":         {alive2(node("\xff", 1), 1)},
		"Closed":          {fsm.Timeout{}},
	}
	for name, evs := range setups {
		t.Run(name, func(t *testing.T) {
			reg := registry.New(registry.MaxRemembered)
			c := fsm.New(local)
			for _, ev := range evs {
				step(t, c, reg, ev)
			}
			if c.State().String() != name {
				t.Fatalf("setup reached %v", c.State())
			}
			defer func() {
				if recover() == nil {
					t.Errorf("Step(nil) in %s did not panic", name)
				}
			}()
			c.Step(reg, nil)
		})
	}
	t.Run("nil request", func(t *testing.T) {
		defer func() {
			if recover() == nil {
				t.Errorf("Step(Received{nil}) did not panic")
			}
		}()
		fsm.New(local).Step(registry.New(1), fsm.Received{})
	})
}

// TestActionsNotAliased: the server carries out a Send after it has
// released the registry lock, possibly after other connections stepped.
// A reply must therefore not share memory that later steps change.
func TestActionsNotAliased(t *testing.T) {
	reg := registry.New(registry.MaxRemembered)
	step(t, fsm.New(helperCfg(2)), reg, alive2(node("alpha", 5555), 1))
	first := step(t, fsm.New(remote), reg, names)
	want := []fsm.Action{fsm.Send{Resp: &wire.NamesResp{Port: wire.DefaultPort,
		Nodes: []wire.NameEntry{{Name: "alpha", Port: 5555}}}}, done}
	if d := cmp.Diff(want, first, diffOpts...); d != "" {
		t.Fatalf("first NAMES (-want +got):\n%s", d)
	}
	// Another node registers and another client asks before the first
	// reply is written.
	step(t, fsm.New(helperCfg(3)), reg, alive2(node("beta", 6666), 1))
	step(t, fsm.New(helperCfg(4)), reg, alive2(node("gamma", 7777), 1))
	step(t, fsm.New(remote), reg, names)
	if d := cmp.Diff(want, first, diffOpts...); d != "" {
		t.Errorf("first NAMES reply changed by later steps (-want +got):\n%s", d)
	}
}
