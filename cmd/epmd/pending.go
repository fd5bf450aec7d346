package main

import "strconv"

// parseBytes reads -max_pending_output's value: a whole number of bytes,
// optionally followed by K, M or G (KiB, MiB, GiB), or 0 for no cap. It
// reports false for anything else, negative numbers and overflow
// included. The result is what server.Config.MaxPendingOutput takes: -1
// for no cap.
func parseBytes(s string) (int64, bool) {
	shift := 0
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'K', 'k':
			shift = 10
		case 'M', 'm':
			shift = 20
		case 'G', 'g':
			shift = 30
		}
		if shift > 0 {
			s = s[:n-1]
		}
	}
	if s == "" || s[0] < '0' || s[0] > '9' {
		return 0, false // no sign, no space
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v > (1<<63-1)>>shift {
		return 0, false
	}
	if v == 0 {
		return -1, true
	}
	return v << shift, true
}
