package handover

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestControlRoundTrip(t *testing.T) {
	for _, m := range []Control{
		{Kind: Hello, Pid: 4242, Version: "v1.2.3-4-gabcdef"},
		{Kind: Serving},
		{Kind: Failed, Reason: "restoring: server: no descriptor for gopmd-conn-7"},
	} {
		b := AppendControl(nil, m)
		got, err := ReadControl(bufio.NewReader(strings.NewReader(string(b))))
		if err != nil {
			t.Fatalf("%q: %v", b, err)
		}
		if diff := cmp.Diff(m, got); diff != "" {
			t.Errorf("%q (-sent +read):\n%s", b, diff)
		}
	}
}

func TestControlCleansAndCuts(t *testing.T) {
	b := AppendControl(nil, Control{Kind: Failed, Reason: strings.Repeat("é\n", 400)})
	if len(b) > MaxLine {
		t.Fatalf("line of %d bytes", len(b))
	}
	if _, err := ParseControl(b[:len(b)-1]); err != nil {
		t.Fatal(err)
	}
	got, err := ParseControl(AppendControl(nil, Control{Kind: Hello, Pid: 1, Version: "a b"})[:])
	if err == nil {
		t.Fatalf("a line with its newline parsed: %+v", got)
	}
	m, err := ReadControl(bufio.NewReader(strings.NewReader(string(AppendControl(nil, Control{Kind: Hello, Pid: 1, Version: "a b"})))))
	if err != nil || m.Version != "a?b" {
		t.Fatalf("%+v %v", m, err)
	}
}

func TestControlRefuses(t *testing.T) {
	for _, line := range []string{
		"", "HELLO 1 v", "GOPMD-UPGRADE ", "GOPMD-UPGRADE HELLO", "GOPMD-UPGRADE HELLO 1",
		"GOPMD-UPGRADE HELLO 01 v", "GOPMD-UPGRADE HELLO -1 v", "GOPMD-UPGRADE HELLO 1 v w",
		"GOPMD-UPGRADE SERVING now", "GOPMD-UPGRADE FAILED", "GOPMD-UPGRADE BYE",
		"GOPMD-UPGRADE SERVING\x00", strings.Repeat("x", MaxLine),
	} {
		if m, err := ParseControl([]byte(line)); !errors.Is(err, ErrControl) {
			t.Errorf("%q: %+v, %v", line, m, err)
		}
	}
	if _, err := ReadControl(bufio.NewReader(strings.NewReader("GOPMD-UPGRADE SERV"))); err != io.ErrUnexpectedEOF {
		t.Errorf("cut line: %v", err)
	}
	if _, err := ReadControl(bufio.NewReader(strings.NewReader(strings.Repeat("x", 2*MaxLine)))); !errors.Is(err, ErrControl) {
		t.Errorf("endless line: %v", err)
	}
}
