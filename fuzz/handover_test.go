package fuzz_test

import (
	"bufio"
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gopmd/gopmd/epmd/handover"
)

// FuzzHandoverControl: the upgrade's control lines. ParseControl never
// panics; what it accepts, AppendControl writes back byte for byte, and
// ReadControl reads the same message from that line.
func FuzzHandoverControl(f *testing.F) {
	for _, m := range []handover.Control{
		{Kind: handover.Hello, Pid: 4242, Version: "v1.2.3"},
		{Kind: handover.Serving},
		{Kind: handover.Failed, Reason: "timed out"},
	} {
		b := handover.AppendControl(nil, m)
		f.Add(b[:len(b)-1])
	}
	f.Add([]byte("GOPMD-UPGRADE HELLO 0 v"))
	f.Add([]byte("GOPMD-UPGRADE FAILED "))
	f.Fuzz(func(t *testing.T, line []byte) {
		m, err := handover.ParseControl(line)
		if err != nil {
			return
		}
		b := handover.AppendControl(nil, m)
		if !bytes.Equal(b[:len(b)-1], line) {
			t.Fatalf("%q parsed as %+v, written back as %q", line, m, b)
		}
		got, err := handover.ReadControl(bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			t.Fatalf("%q: %v", b, err)
		}
		if diff := cmp.Diff(m, got); diff != "" {
			t.Fatalf("(-parsed +read):\n%s", diff)
		}
	})
}
