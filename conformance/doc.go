// Package conformance is gopmd's black-box conformance suite: scripted
// cases (testdata/*.txt) that pin the byte-level behaviour of the stock
// epmd, run against any epmd binary or a running daemon, with the stock
// epmd as the oracle.
//
// The suite knows only a binary to start (each case starts its own daemon
// on a free loopback port, with the case's flags, and kills it afterwards)
// or the address of a running one. It never imports the daemon's packages;
// it uses epmd/wire only to frame and parse bytes.
//
// Load parses the scripts (Scripts holds them, embedded), RunCase runs one
// case against one daemon, RunSuite runs them all in parallel, with an
// optional stock reference, and judges each: PASS, FAIL, SKIP, DIFF for
// a case that shows one of the deliberate differences of
// docs/differences.md (or of an expected-differences file), CRASH when
// the daemon died, BLOCKED when a case failed on a capability it is not
// about, TIMEOUT when a step, the case or the run went past its limit.
// Every wait is bounded, and each daemon's process group is killed when
// its case ends. Update re-records the scripts from stock epmd. The
// script language, the contract for the daemon under test and the ways to
// adapt one are described in docs/conformance.md.
package conformance
