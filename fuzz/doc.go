// Package fuzz holds gopmd's native Go fuzz targets. It has no code of its
// own: the targets live in _test.go files (go test -fuzz finds them only
// there) and drive the exported API of epmd/wire, epmd/registry, fsm and
// epmd/server.
//
// Each target's committed seed corpus is in testdata/fuzz/FuzzXxx/, and
// plain go test replays it together with the f.Add seeds. Run one target
// for a while with
//
//	go test -run='^$' -fuzz='^FuzzDecodeRequest$' -fuzztime=10m ./fuzz
//
// or all of them in turn with make fuzz FUZZTIME=10m; make fuzz-ci runs
// every target of the module for its count of executions, as CI does.
// docs/fuzzing.md says what each target checks and how long each has run.
package fuzz
