package conformance

import (
	"bytes"
	"strings"
	"testing"
)

func TestByteExpr(t *testing.T) {
	v := vars{"port": 14369, "A": 7}
	for _, c := range []struct {
		src  string
		want []byte
	}{
		{`6e`, []byte{0x6e}},
		{`00 01 6e`, []byte{0, 1, 'n'}},
		{`0001 6E`, []byte{0, 1, 'n'}},
		{`"ab\x00" "c"`, []byte("ab\x00c")},
		{"`a\\nb`", []byte(`a\nb`)},
		{`"a"*3 00*2`, []byte("aaa\x00\x00")},
		{`u16:5555 u32:$port u8:$A+1`, []byte{0x15, 0xb3, 0, 0, 0x38, 0x21, 8}},
		{`"port ${port}!"`, []byte("port 14369!")},
		{`frame[ "n" ] frame[ 00*3 ]`, []byte{0, 1, 'n', 0, 3, 0, 0, 0}},
		{`frame[ frame[ "n" ] ]`, []byte{0, 3, 0, 1, 'n'}},
		{`alive2[ name=alpha port=5555 ]`, []byte("x\x15\xb3M\x00\x00\x06\x00\x05\x00\x05alpha\x00\x00")},
		{`alive2[ name="" type=H high=5 low=5 extra="EX" ]`, []byte("x\x13\x88H\x00\x00\x05\x00\x05\x00\x00\x00\x02EX")},
		{`alive2[ name=ab nlen=9 elen=1 trailer="z" ]`, []byte("x\x13\x88M\x00\x00\x06\x00\x05\x00\x09ab\x00\x01z")},
	} {
		toks, err := tokenize(c.src)
		if err != nil {
			t.Fatalf("%s: %v", c.src, err)
		}
		e, err := parseByteExpr(toks)
		if err != nil {
			t.Fatalf("%s: %v", c.src, err)
		}
		got, err := e.eval(v)
		if err != nil {
			t.Fatalf("%s: %v", c.src, err)
		}
		if !bytes.Equal(got, c.want) {
			t.Errorf("%s = % x, want % x", c.src, got, c.want)
		}
	}
}

func TestNumExpr(t *testing.T) {
	v := vars{"C": 1795338673, "Y": 3}
	for src, want := range map[string]int64{
		"5":           5,
		"0x10":        16,
		"'M'":         77,
		"$C+1":        1795338674,
		"($C+1)%3+1":  (1795338674)%3 + 1,
		"$Y%3+1":      1,
		"2*3+4":       10,
		"-1":          -1,
		"$C-$C":       0,
		"((($Y)))":    3,
		"70000%65536": 4464,
	} {
		got, err := numExpr(src).eval(v)
		if err != nil || got != want {
			t.Errorf("%s = %d, %v; want %d", src, got, err, want)
		}
	}
	for _, bad := range []string{"", "1+", "$nope", "(1", "1)", "5%0", "x"} {
		if _, err := numExpr(bad).eval(v); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{"open c\n", "before the daemon line"},
		{"daemon\ndaemon\n", "daemon line must come once"},
		{"daemon\nfrobnicate\n", "unknown step"},
		{"daemon\nsend c zz\n", "not a byte item"},
		{"daemon\nsend c \"abc\n", "unterminated"},
		{"daemon\nexpect c bytes\n", "needs bytes"},
		{"daemon\nexpect c alive2 q\n", "v|y"},
		{"daemon\nexpect c alive2 v color=red\n", "unknown alive2 expectation"},
		{"daemon\nexpect dump active a 1\n", "expect dump"},
		{"daemon\nexpect dump active a 1 fd\n", "fd rule"},
		{"daemon\nsend c alive2 port=1\n", "needs name="},
		{"daemon\nsend c alive2 name=a colour=1\n", "unknown alive2 field"},
		{"daemon\nsend c frame[ 00\n", "without ]"},
		{"daemon\nsleep soon\n", "invalid duration"},
		{"daemon\nexpect stdout re `(`\n", "missing closing"},
		{"difference x\ndaemon\n", "row number"},
		{"daemon\ncase b\ndaemon\n", "before the first case"},
		{"case a\ndaemon\ncase a\ndaemon\n", "defined twice"},
		{"case a\nopen c\n", "before the daemon line"},
		{"case a\ncase b\ndaemon\n", "no daemon line"},
		{"daemon\n[gopmd]\n", "without a step"},
	} {
		_, err := ParseFile("x.txt", c.src)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want it to mention %q", c.src, err, c.want)
		}
	}
}

func TestParseFile(t *testing.T) {
	f, err := ParseFile("two.txt", `# comment
case one   # trailing comment
difference 3
daemon -d ERL_X=1
open c ipv6
send c "a # not a comment" \
   00
[stock] expect c closed
[gopmd] expect c open for 2s

case two
daemon ERL_EPMD_RELAXED_COMMAND_CHECK= -port 70000
`)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Cases) != 2 || f.Cases[0].Name != "two/one" || f.Cases[1].Name != "two/two" {
		t.Fatalf("cases %+v", f.Cases)
	}
	one := f.Cases[0]
	if one.Difference != 3 || len(one.steps) != 4 {
		t.Errorf("case one: difference %d, %d steps", one.Difference, len(one.steps))
	}
	if s := one.steps[1].(*sendStep); s.src.first != 6 || s.src.last != 7 {
		t.Errorf("send spans lines %d-%d, want 6-7", s.src.first, s.src.last)
	}
	if got, _ := one.steps[1].(*sendStep).data.eval(nil); string(got) != "a # not a comment\x00" {
		t.Errorf("send data %q", got)
	}
	if one.steps[2].pos().cond.flavour != Stock || one.steps[3].pos().cond.flavour != Gopmd {
		t.Error("[stock]/[gopmd] prefixes not recorded")
	}
	two := f.Cases[1].daemon
	if two.fixedPort != 70000 || len(two.env) != 1 || two.env[0].name != "ERL_EPMD_RELAXED_COMMAND_CHECK" {
		t.Errorf("daemon line: %+v", two)
	}
}

// TestSuiteParses makes sure every script in testdata parses, and that the
// embedded copy is the same.
func TestSuiteParses(t *testing.T) {
	files := loadSuite(t)
	embedded, err := Load(Scripts)
	if err != nil {
		t.Fatal(err)
	}
	if len(Cases(files)) != len(Cases(embedded)) {
		t.Errorf("%d cases on disk, %d embedded", len(Cases(files)), len(Cases(embedded)))
	}
	seen := map[string]bool{}
	for _, c := range Cases(files) {
		if seen[c.Name] {
			t.Errorf("duplicate case name %s", c.Name)
		}
		seen[c.Name] = true
	}
}

func TestRenderBytes(t *testing.T) {
	v := vars{"port": 14369}
	for _, c := range []struct {
		in   []byte
		want string
	}{
		{[]byte{0, 0, 0x38, 0x21}, "u32:$port"},
		{append([]byte{0, 0, 0x38, 0x21}, "name a at port 14369\n"...), `u32:$port "name a at port ${port}\n"`},
		{[]byte{0x77, 0x01}, "77 01"},
		{[]byte("NOEXISTSTOPPED"), `"NOEXISTSTOPPED"`},
		{bytes.Repeat([]byte{0xff}, 10), "ff*10"},
		{bytes.Repeat([]byte("a"), 9), `"a"*9`},
	} {
		if got := renderBytes(c.in, v); got != c.want {
			t.Errorf("renderBytes(% x) = %s, want %s", c.in, got, c.want)
		}
		// What is rendered evaluates back to the input.
		toks, _ := tokenize(renderBytes(c.in, v))
		e, err := parseByteExpr(toks)
		if err != nil {
			t.Fatal(err)
		}
		if back, _ := e.eval(v); !bytes.Equal(back, c.in) {
			t.Errorf("round trip of % x gave % x", c.in, back)
		}
	}
}
