module github.com/gopmd/gopmd

go 1.26.0

require (
	github.com/coreos/go-systemd/v22 v22.7.0
	github.com/google/go-cmp v0.7.0
	pgregory.net/rapid v1.3.0
)

require golang.org/x/sys v0.50.0
