package main

import (
	"bytes"
	"testing"
)

func TestParseBytes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1", 1, true},
		{"16777216", 16 << 20, true},
		{"64K", 64 << 10, true},
		{"16M", 16 << 20, true},
		{"2g", 2 << 30, true},
		{"0", -1, true},
		{"0M", -1, true},
		{"", 0, false},
		{"M", 0, false},
		{"-1", 0, false},
		{"+1", 0, false},
		{" 1", 0, false},
		{"1T", 0, false},
		{"1.5M", 0, false},
		{"9223372036854775807", 1<<63 - 1, true},
		{"9223372036854775808", 0, false},
		{"8589934592G", 0, false},
	} {
		got, ok := parseBytes(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseBytes(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// TestMaxPendingOutputUsage: a missing or bad value of -max_pending_output
// is a usage error, as a bad value of stock's numeric options is.
func TestMaxPendingOutputUsage(t *testing.T) {
	for _, args := range [][]string{
		{"-max_pending_output"},
		{"-max_pending_output", "lots"},
		{"-max_pending_output", "-5"},
		{"-d", "-max_pending_output"},
	} {
		var out, errb bytes.Buffer
		if code := run(args, noEnv, &out, &errb); code != 1 || out.Len() != 0 || errb.String() != usageText {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, out.String(), errb.String())
		}
	}
}
