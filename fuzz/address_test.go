package fuzz_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gopmd/gopmd/epmd/server"
)

// FuzzAddressList compares server.ParseAddresses with a model of stock
// epmd's -address handling as OTP 29 does it (epmd_srv.c run(), facts
// §9.3; docs/epmd.md for OTP 25 and 27):
//
//   - tokens are what strtok(list, ", ") returns: runs of ',' and ' '
//     separate, and no token is empty;
//   - no token at all: nil, nil (Listen binds the wildcard addresses);
//   - each token is tried with inet_pton(AF_INET6), then
//     inet_pton(AF_INET): the model is a transcription of glibc's
//     inet_pton6 and inet_pton4, so no zone, no leading zeros in IPv4
//     octets, no host names. The first token neither accepts is the
//     error, `cannot parse IP address "TOKEN"`;
//   - every address is kept in order, the loopback ones, ::ffff:127.0.0.1
//     and duplicates included;
//   - the 14th address is the error "cannot listen on more than 14 IP
//     addresses", unless a bad token came first.
//
// Lists containing NUL are left out: they cannot come from a command line
// or an environment variable, and inet_pton would stop at the NUL.
func FuzzAddressList(f *testing.F) {
	for _, s := range []string{
		"", " ", ",, ,", "127.0.0.1", "::1", "127.0.0.1,::1", "127.0.0.2",
		"10.0.0.1, 192.168.1.1", "localhost", "1.2.3.4,localhost,5.6.7.8",
		"::ffff:127.0.0.1", "fe80::1%eth0", "0:0:0:0:0:0:0:1", "::0001",
		"01.2.3.4", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1::2::3", ":::", "1:2:3:4:5:6:7:8::",
		"::1:2:3:4:5:6:7", "::1:2:3:4:5:6:7:8", "1:2:3:4:5:6:1.2.3.4", "::1.2.3.4", "::01.2.3.4",
		"12345::", "::ffff:1.2.3.4", "1.1.1.1,1.1.1.1",
		strings.Repeat("10.0.0.1 ", 13), strings.Repeat("10.0.0.1,", 14),
		strings.Repeat("10.0.0.1,", 14) + "bad", strings.Repeat("10.0.0.1,", 13) + "bad",
		strings.Repeat("127.0.0.1,::1,", 20) + "1.2.3.4",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, list string) {
		if strings.IndexByte(list, 0) >= 0 {
			return
		}
		got, err := server.ParseAddresses(list)
		want, wantErr := modelParseAddresses(list)
		if (err == nil) != (wantErr == "") || (err != nil && err.Error() != wantErr) {
			t.Fatalf("ParseAddresses(%q) error = %v, model says %q", list, err, wantErr)
		}
		if err != nil {
			var pe *server.ParseError
			if !errors.As(err, &pe) || got != nil {
				t.Fatalf("ParseAddresses(%q) = %v, %v (%T): want nil and a *server.ParseError", list, got, err, err)
			}
			return
		}
		if (got == nil) != (want == nil) {
			t.Fatalf("ParseAddresses(%q) = %#v, model %#v: nil and empty differ", list, got, want)
		}
		if d := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
			t.Fatalf("ParseAddresses(%q) (-model +got):\n%s", list, d)
		}
	})
}

// modelParseAddresses is stock epmd's loop, with glibc's inet_pton. It
// returns the error text stock prints, or "".
func modelParseAddresses(list string) ([]netip.Addr, string) {
	tokens := strtok(list, ", ")
	if len(tokens) == 0 {
		return nil, ""
	}
	addrs := []netip.Addr{}
	for _, tok := range tokens {
		var a netip.Addr
		if b, ok := inetPton6(tok); ok {
			a = netip.AddrFrom16(b)
		} else if b, ok := inetPton4(tok); ok {
			a = netip.AddrFrom4(b)
		} else {
			return nil, `cannot parse IP address "` + tok + `"`
		}
		addrs = append(addrs, a)
		if len(addrs) >= 14 {
			return nil, "cannot listen on more than 14 IP addresses"
		}
	}
	return addrs, ""
}

// strtok splits s as repeated strtok(s, delims) calls do.
func strtok(s, delims string) []string {
	var out []string
	for s != "" {
		i := strings.IndexFunc(s, func(r rune) bool { return !strings.ContainsRune(delims, r) })
		if i < 0 {
			break
		}
		s = s[i:]
		j := strings.IndexAny(s, delims)
		if j < 0 {
			j = len(s)
		}
		out = append(out, s[:j])
		s = s[j:]
	}
	return out
}

// inetPton4 is glibc's inet_pton4 (resolv/inet_pton.c): four decimal
// octets, no leading zeros, each at most 255, nothing else.
func inetPton4(src string) ([4]byte, bool) {
	var tmp [4]byte
	tp, octets, sawDigit := 0, 0, false
	for i := 0; i < len(src); i++ {
		ch := src[i]
		switch {
		case ch >= '0' && ch <= '9':
			n := uint(tmp[tp])*10 + uint(ch-'0')
			if sawDigit && tmp[tp] == 0 {
				return tmp, false
			}
			if n > 255 {
				return tmp, false
			}
			tmp[tp] = byte(n)
			if !sawDigit {
				if octets++; octets > 4 {
					return tmp, false
				}
				sawDigit = true
			}
		case ch == '.' && sawDigit:
			if octets == 4 {
				return tmp, false
			}
			tp++
			tmp[tp] = 0
			sawDigit = false
		default:
			return tmp, false
		}
	}
	if octets < 4 {
		return tmp, false
	}
	return tmp, true
}

// inetPton6 is glibc's inet_pton6 (resolv/inet_pton.c, glibc 2.26 and
// later): up to eight groups of one to four hex digits, one "::", an
// optional dotted IPv4 tail where two groups fit; no zone.
func inetPton6(src string) ([16]byte, bool) {
	var tmp [16]byte
	tp, colonp := 0, -1
	if src == "" {
		return tmp, false
	}
	i := 0
	if src[0] == ':' {
		i++
		if i == len(src) || src[i] != ':' {
			return tmp, false
		}
	}
	curtok := i
	xdigits := 0
	val := uint(0)
	for i < len(src) {
		ch := src[i]
		i++
		if d := hexDigit(ch); d >= 0 {
			if xdigits == 4 {
				return tmp, false
			}
			val = val<<4 | uint(d)
			if val > 0xffff {
				return tmp, false
			}
			xdigits++
			continue
		}
		if ch == ':' {
			curtok = i
			if xdigits == 0 {
				if colonp >= 0 {
					return tmp, false
				}
				colonp = tp
				continue
			} else if i == len(src) {
				return tmp, false
			}
			if tp+2 > 16 {
				return tmp, false
			}
			tmp[tp], tmp[tp+1] = byte(val>>8), byte(val)
			tp += 2
			xdigits, val = 0, 0
			continue
		}
		if ch == '.' && tp+4 <= 16 {
			if v4, ok := inetPton4(src[curtok:]); ok {
				copy(tmp[tp:], v4[:])
				tp += 4
				xdigits = 0
				break
			}
		}
		return tmp, false
	}
	if xdigits > 0 {
		if tp+2 > 16 {
			return tmp, false
		}
		tmp[tp], tmp[tp+1] = byte(val>>8), byte(val)
		tp += 2
	}
	if colonp >= 0 {
		if tp == 16 { // "::" would expand to nothing
			return tmp, false
		}
		n := tp - colonp
		copy(tmp[16-n:], tmp[colonp:tp])
		for k := colonp; k < 16-n; k++ {
			tmp[k] = 0
		}
		tp = 16
	}
	if tp != 16 {
		return tmp, false
	}
	return tmp, true
}

func hexDigit(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}
