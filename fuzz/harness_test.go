package fuzz_test

import (
	"path"
	"reflect"
	"strings"
	"testing"

	"github.com/gopmd/gopmd/conformance"
)

// The parsers of the conformance harness take text from anyone testing an
// epmd: scripts (with their [stock] [otp>=27] conditions), expected-
// differences files, capability lists and command templates. None may
// panic or hang, and what they accept must mean one thing.

// FuzzConformanceScript parses arbitrary script text. What parses must
// parse again to the same cases (ParseFile is a function of its text).
func FuzzConformanceScript(f *testing.F) {
	f.Add("daemon\nopen c\nsend c alive2 name=a\n[stock otp<27] expect c alive2 v result=0 creation=now\n[gopmd] [otp>=27] expect c closed\n")
	f.Add("case a\ndifference 1\ndaemon -packet_timeout 2\nopen c\nsend c dribble 700ms 00 05 6e\n[stock otp>=29] expect c closed within 3s\n")
	f.Add("case b\nshared\ndaemon\nopen c\nsend c \"za\"\nexpect c bytes 77 01\n")
	f.Add("daemon\n[otp!=25] run -port $port -names\nexpect stdout re `^epmd: up`\n")
	f.Add("daemon\n[stock\n")
	f.Add("daemon\nsend c \"a\"*1048576 \"b\"*1048576\n")
	f.Fuzz(func(t *testing.T, text string) {
		if len(text) > 1<<14 {
			return
		}
		file, err := conformance.ParseFile("f.txt", text)
		if err != nil {
			return
		}
		again, err := conformance.ParseFile("f.txt", file.Text)
		if err != nil {
			t.Fatalf("parsed once, not twice: %v", err)
		}
		if len(again.Cases) != len(file.Cases) {
			t.Fatalf("%d cases, then %d", len(file.Cases), len(again.Cases))
		}
		for i, c := range file.Cases {
			if again.Cases[i].Name != c.Name || again.Cases[i].Line != c.Line || again.Cases[i].Difference != c.Difference {
				t.Fatalf("case %d: %+v, then %+v", i, c, again.Cases[i])
			}
		}
	})
}

// FuzzExpectedDifferences parses expected-differences files: every entry
// has a valid pattern and a reason without surrounding blanks, from a
// non-comment line.
func FuzzExpectedDifferences(f *testing.F) {
	f.Add("# mine\nstop/*   we never stop nodes\nalive2/v_for_high_6 answers y\n")
	f.Add("[ x\n")
	f.Add("a\tb\n\n  c   d  \r\n")
	f.Fuzz(func(t *testing.T, text string) {
		es, err := conformance.ParseExpected("e", text)
		if err != nil {
			return
		}
		lines := strings.Split(text, "\n")
		for _, e := range es {
			if _, err := path.Match(e.Pattern, ""); err != nil {
				t.Fatalf("bad pattern %q accepted", e.Pattern)
			}
			if e.Reason == "" || strings.TrimSpace(e.Reason) != e.Reason || e.Pattern == "" || strings.ContainsAny(e.Pattern, " \t") {
				t.Fatalf("entry %+v", e)
			}
			if e.Line < 1 || e.Line > len(lines) || !strings.Contains(lines[e.Line-1], e.Pattern) || strings.HasPrefix(strings.TrimSpace(lines[e.Line-1]), "#") {
				t.Fatalf("entry %+v does not come from its line", e)
			}
		}
	})
}

// FuzzCapabilities parses capability lists: what is accepted is a set of
// known keys or daemon flags, and listing it again gives the same set.
func FuzzCapabilities(f *testing.F) {
	f.Add("cli, dump -relaxed_command_check")
	f.Add("ipv6,,systemd\tdaemon-mode")
	f.Add("-")
	f.Fuzz(func(t *testing.T, s string) {
		cs, err := conformance.ParseCapabilities(s)
		if err != nil {
			return
		}
		var keys []string
		for k := range cs {
			if conformance.CapabilityTitle(k) == "" {
				t.Fatalf("key %q has no title", k)
			}
			keys = append(keys, k)
		}
		again, err := conformance.ParseCapabilities(strings.Join(keys, ","))
		if err != nil || !reflect.DeepEqual(again, cs) {
			t.Fatalf("%v, then %v, %v", cs, again, err)
		}
	})
}

// FuzzCommandTemplate splits command templates. Whatever it accepts,
// written back with every word single-quoted, splits to the same words.
func FuzzCommandTemplate(f *testing.F) {
	f.Add(`{epmd} {args}`)
	f.Add(`ERL_EPMD_PORT={port} erl -noshell -eval "epmd:main(init:get_plain_arguments())" -extra {args}`)
	f.Add(`'my epmd' --listen=127.0.0.1:{port} a\ b "q\"x\\y"`)
	f.Add(`x {prot}`)
	f.Fuzz(func(t *testing.T, s string) {
		words, err := conformance.ParseCommandTemplate(s)
		if err != nil {
			return
		}
		if len(words) == 0 {
			t.Fatal("no words and no error")
		}
		var quoted []string
		for _, w := range words {
			quoted = append(quoted, "'"+strings.ReplaceAll(w, "'", `'\''`)+"'")
		}
		again, err := conformance.ParseCommandTemplate(strings.Join(quoted, " "))
		if err != nil || !reflect.DeepEqual(again, words) {
			t.Fatalf("%q, then %q, %v", words, again, err)
		}
	})
}
