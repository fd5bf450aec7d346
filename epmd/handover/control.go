package handover

import (
	"bufio"
	"errors"
	"io"
	"strconv"
	"strings"
)

// The control messages of an in-place upgrade, one line each, sent by
// the new process to the old one on the socket that the handover stream
// (Send) travels the other way:
//
//	GOPMD-UPGRADE HELLO <pid> <version>   started, ready to receive
//	GOPMD-UPGRADE SERVING                 restored, serving: the old exits
//	GOPMD-UPGRADE FAILED <reason>         could not take over: the old resumes
//
// A line is at most MaxLine bytes, newline included; version and reason
// are printable ASCII (a version has no space).

// MaxLine is the longest control line.
const MaxLine = 512

const controlPrefix = "GOPMD-UPGRADE "

// Control kinds.
const (
	Hello   = "HELLO"
	Serving = "SERVING"
	Failed  = "FAILED"
)

// Control is one control message.
type Control struct {
	Kind    string
	Pid     int    // HELLO
	Version string // HELLO
	Reason  string // FAILED
}

// AppendControl appends m's line to b. Characters a line cannot carry
// (control characters, non-ASCII; a space in a version) become '?', and a
// reason is cut to fit.
func AppendControl(b []byte, m Control) []byte {
	b = append(b, controlPrefix...)
	b = append(b, m.Kind...)
	switch m.Kind {
	case Hello:
		v := clean(m.Version, true)
		if v == "" {
			v = "?"
		}
		b = append(b, ' ')
		b = strconv.AppendInt(b, int64(m.Pid), 10)
		b = append(b, ' ')
		b = append(b, v[:min(len(v), 64)]...)
	case Failed:
		r := clean(m.Reason, false)
		room := MaxLine - len(controlPrefix) - len(Failed) - 2
		b = append(b, ' ')
		b = append(b, r[:min(len(r), room)]...)
	}
	return append(b, '\n')
}

func clean(s string, noSpace bool) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r > '~' || (noSpace && r == ' ') {
			return '?'
		}
		return r
	}, s)
}

// ErrControl wraps every reason ParseControl refuses a line.
var ErrControl = errors.New("handover: bad control message")

// ParseControl parses one line, without its newline.
func ParseControl(line []byte) (Control, error) {
	bad := func(why string) (Control, error) {
		return Control{}, errors.Join(ErrControl, errors.New(why))
	}
	if len(line)+1 > MaxLine {
		return bad("line too long")
	}
	s := string(line)
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return bad("not printable ASCII")
		}
	}
	rest, ok := strings.CutPrefix(s, controlPrefix)
	if !ok {
		return bad("not a control line")
	}
	kind, args, _ := strings.Cut(rest, " ")
	switch kind {
	case Hello:
		p, v, ok := strings.Cut(args, " ")
		if !ok || v == "" || strings.Contains(v, " ") || len(v) > 64 {
			return bad("HELLO wants a pid and a version")
		}
		pid, err := strconv.Atoi(p)
		if err != nil || pid <= 0 || strconv.Itoa(pid) != p {
			return bad("HELLO with a bad pid")
		}
		return Control{Kind: Hello, Pid: pid, Version: v}, nil
	case Serving:
		if rest != Serving {
			return bad("SERVING takes no argument")
		}
		return Control{Kind: Serving}, nil
	case Failed:
		if !strings.HasPrefix(rest, Failed+" ") {
			return bad("FAILED wants a reason")
		}
		return Control{Kind: Failed, Reason: args}, nil
	}
	return bad("unknown kind")
}

// ReadControl reads one control line from r.
func ReadControl(r *bufio.Reader) (Control, error) {
	var line []byte
	for {
		b, err := r.ReadByte()
		if err != nil {
			if err == io.EOF && len(line) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return Control{}, err
		}
		if b == '\n' {
			return ParseControl(line)
		}
		line = append(line, b)
		if len(line) >= MaxLine {
			return Control{}, errors.Join(ErrControl, errors.New("line too long"))
		}
	}
}
