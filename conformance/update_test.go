package conformance

import (
	"context"
	"strings"
	"testing"
)

// TestUpdateRewritesFromStock re-records a script whose expectations are
// wrong and checks the rewritten text (and that expressions that already
// matched are kept as written).
func TestUpdateRewritesFromStock(t *testing.T) {
	path := requireStock(t)
	const script = `case c
daemon
open n
send n alive2 name=alpha port=5555
expect n alive2 y result=0 creation=now   # wrong tag
open q
send q "zalpha"
expect q bytes 77 01         # wrong
expect q open
open l
send l "n"
expect l bytes u32:$port "name alpha at port 5555\n"
expect l closed
expect names
  [stock] expect dump active alpha 5555 7 \
      active beta 1 *
run -port $port -names
expect stdout "nothing"
expect status 3
[gopmd] expect status 99
`
	f, err := ParseFile("up.txt", script)
	if err != nil {
		t.Fatal(err)
	}
	stock := Target{Path: path, Flavour: Stock}
	scripts, _, err := Update(context.Background(), stock, []*File{f}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	want := `case c
daemon
open n
send n alive2 name=alpha port=5555
expect n alive2 v result=0 creation=now  # wrong tag
open q
send q "zalpha"
expect q bytes 77 00 15 b3 4d 00 00 06 00 05 00 05 "alpha" 00 00  # wrong
expect q closed
open l
send l "n"
expect l bytes u32:$port "name alpha at port 5555\n"
expect l closed
expect names alpha 5555
  [stock] expect dump \
      active alpha 5555 *
run -port $port -names
expect stdout "epmd: up and running on port ${port} with data:\nname alpha at port 5555\n"
expect status 0
[gopmd] expect status 99
`
	if got := scripts["up.txt"]; got != want {
		t.Errorf("re-recorded script:\n%s\nwant:\n%s", got, want)
	}
	// The result parses and passes against stock.
	f2, err := ParseFile("up.txt", scripts["up.txt"])
	if err != nil {
		t.Fatal(err)
	}
	if o := RunCase(context.Background(), stock, f2.Cases[0], nil); o.Status != Pass {
		t.Errorf("re-recorded script fails against stock: %s", o.Reason)
	}
	if strings.Contains(scripts["up.txt"], "\t") {
		t.Error("tabs in output")
	}
}
