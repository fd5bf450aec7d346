package fuzz_test

import (
	"strconv"
	"testing"

	"github.com/gopmd/gopmd/internal/oracle"
)

// TestDifferentialPerRelease replays FuzzDifferential's seeds (the stock
// transcripts of epmd-protocol-facts §14, and the framing and pipelining
// seeds) against the stock epmd of each newer OTP release as well: the
// installed OTP 25 epmd is FuzzDifferential's own oracle. A release that
// is not cached skips (fails under make test; see internal/oracle).
func TestDifferentialPerRelease(t *testing.T) {
	for _, rel := range oracle.Releases {
		t.Run("OTP"+strconv.Itoa(rel), func(t *testing.T) {
			bin := oracle.Epmd(t, rel)
			// The daemon pair is shared by the process: start one for
			// this release, and leave none behind for the next test.
			stopDifferentialDaemons()
			t.Cleanup(stopDifferentialDaemons)
			for i, seed := range differentialSeeds() {
				t.Run(strconv.Itoa(i), func(t *testing.T) {
					runDifferential(t, bin, seed)
				})
			}
		})
	}
}
