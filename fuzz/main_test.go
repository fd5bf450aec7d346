package fuzz_test

import (
	"flag"
	"os"
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

func TestMain(m *testing.M) {
	flag.Parse()
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.fuzzminimizetime" })
	if !given {
		if err := flag.Set("test.fuzzminimizetime", defaultMinimizeTime); err != nil {
			panic(err)
		}
	}
	os.Exit(m.Run())
}
