package conformance

import (
	"embed"
	"io/fs"
)

//go:embed testdata
var testdata embed.FS

// Scripts is the suite's script directory (conformance/testdata), built
// into every program that imports this package: the *.txt scripts and the
// golden files they refer to.
var Scripts fs.FS = mustSub(testdata, "testdata")

func mustSub(f fs.FS, dir string) fs.FS {
	s, err := fs.Sub(f, dir)
	if err != nil {
		panic(err)
	}
	return s
}
