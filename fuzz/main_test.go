package fuzz_test

import (
	"flag"
	"os"
	"strings"
	"testing"
)

// defaultMinimizeTime replaces go test's default -fuzzminimizetime of 60s.
//
// The fuzz engine minimizes every new interesting input, not only failing
// ones, and with the same limit. In this package one execution costs about
// 100-200 µs (the coverage map covers net, the server and go-cmp), so
// minimizing an input of a hundred bytes takes tens of seconds, during which
// that worker fuzzes nothing: a 60-second run spent most of its time
// minimizing. Ten seconds still shrinks failures well. An explicit
// -fuzzminimizetime on the command line wins.
const defaultMinimizeTime = "10s"

// differentialMinimizeTime is the default when fuzzing FuzzDifferential,
// whose executions take about 100 ms (real sockets, two daemons, a 100 ms
// window for connections left open): at 10 s per new input, minimizing
// took most of a run.
const differentialMinimizeTime = "3s"

func TestMain(m *testing.M) {
	flag.Parse()
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.fuzzminimizetime" })
	if !given {
		d := defaultMinimizeTime
		if f := flag.Lookup("test.fuzz"); f != nil && strings.Contains(f.Value.String(), "FuzzDifferential") {
			d = differentialMinimizeTime
		}
		if err := flag.Set("test.fuzzminimizetime", d); err != nil {
			panic(err)
		}
	}
	code := m.Run()
	stopDifferentialDaemons() // FuzzDifferential's stock epmd
	os.Exit(code)
}
