package fsm

import (
	"strconv"

	"github.com/gopmd/gopmd/epmd/wire"
)

// The step log's syntax: what a server logs of each step, in the syntax of
// the transcripts in fsm/testdata, so that a log replays through Step
// (the fsm tests do it with a real daemon's log). A connection is named
// "c" and its ID.

// ConnName is a connection's name in the step log.
func ConnName(id uint64) string { return "c" + strconv.FormatUint(id, 10) }

// ConfigString renders a new connection's configuration as the transcript
// command "conn" takes it, after the name: "local relaxed port=4369 fd=7
// grace=250".
func ConfigString(cfg Config) string {
	s := "remote"
	if cfg.Local {
		s = "local"
	}
	if cfg.Relaxed {
		s += " relaxed"
	}
	return s + " port=" + strconv.FormatUint(uint64(cfg.Port), 10) + " fd=" + strconv.Itoa(cfg.Fd) +
		" grace=" + strconv.FormatInt(cfg.ProbeGrace, 10)
}

// EventString renders ev as a transcript command, after the connection's
// name: "recv alive2 name=alpha port=5555 type=77 proto=0 high=6 low=5
// extra=\"\" now=1000", "recv port2 name=alpha", "peerclosed", "probed
// at=16 gone=true". Malformed and PeerClosed lose their error (and
// PeerClosed its count of buffered bytes): replayed, they give the same
// state and registry, but a close's detail may differ.
func EventString(ev Event) string {
	switch ev := ev.(type) {
	case Received:
		switch r := ev.Req.(type) {
		case *wire.Alive2Req:
			return "recv alive2 name=" + strconv.Quote(r.Name) +
				" port=" + strconv.Itoa(int(r.Port)) + " type=" + strconv.Itoa(int(r.Type)) +
				" proto=" + strconv.Itoa(int(r.Proto)) + " high=" + strconv.Itoa(int(r.High)) +
				" low=" + strconv.Itoa(int(r.Low)) + " extra=" + strconv.Quote(r.Extra) +
				" now=" + strconv.FormatInt(ev.Now, 10)
		case *wire.PortPlease2Req:
			return "recv port2 name=" + strconv.Quote(r.Name)
		case *wire.NamesReq:
			return "recv names"
		case *wire.DumpReq:
			return "recv dump"
		case *wire.KillReq:
			return "recv kill"
		case *wire.StopReq:
			return "recv stop name=" + strconv.Quote(r.Name)
		}
		return "recv unknown"
	case Malformed:
		return "malformed"
	case Data:
		return "data"
	case PeerClosed:
		return "peerclosed"
	case Timeout:
		return "timeout"
	case WriteFailed:
		return "writefailed"
	case OwnerProbed:
		return "probed at=" + strconv.FormatInt(ev.At, 10) + " gone=" + strconv.FormatBool(ev.Gone)
	}
	return "unknown"
}

// ActionString renders an action on one line: a Send as the bytes it
// writes, in hex; a connection by its ConnName.
func ActionString(a Action) string {
	switch a := a.(type) {
	case Send:
		b, err := a.Resp.AppendBinary(nil)
		if err != nil {
			return "send error=" + strconv.Quote(err.Error())
		}
		return "send " + hexString(b)
	case Close:
		s := "close reason=" + a.Reason
		if a.Detail != "" {
			s += " detail=" + strconv.Quote(a.Detail)
		}
		if a.Reset {
			s += " reset"
		}
		return s
	case CloseConn:
		return "close_conn " + ConnName(uint64(a.ID))
	case Shutdown:
		return "shutdown"
	case RegisteredNode:
		return "registered name=" + strconv.Quote(a.Node.Name) + " port=" + strconv.Itoa(int(a.Node.Port)) +
			" creation=" + strconv.FormatUint(uint64(a.Creation), 10)
	case UnregisteredNode:
		return "unregistered name=" + strconv.Quote(a.Name)
	case Refusal:
		return "refusal reason=" + a.Reason + " detail=" + strconv.Quote(a.Detail)
	case ProbeOwner:
		return "probe_owner " + ConnName(uint64(a.ID))
	}
	return "unknown"
}

// hexString is encoding/hex's EncodeToString, which would pull fmt (and
// os) into fsm.
func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 2*len(b))
	for i, c := range b {
		out[2*i], out[2*i+1] = digits[c>>4], digits[c&15]
	}
	return string(out)
}
