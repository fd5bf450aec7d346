package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// budget is one line of the budgets file: run target Name of package Pkg
// for Execs executions, with Env added to go test's environment. A target
// may have several lines (FuzzDifferential: one per reference daemon).
type budget struct {
	Pkg   string // as in pkgInfo.Rel: "./fuzz"
	Name  string
	Execs int64
	Env   []string // NAME=value
	Line  int
}

func (b budget) label() string {
	s := b.Name
	if len(b.Env) > 0 {
		s += " [" + strings.Join(b.Env, " ") + "]"
	}
	return s
}

var reEnv = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*=\S*$`)

// parseBudgets reads a budgets file: one target per line, as
//
//	<package dir> <FuzzTarget> <executions> [NAME=value ...]
//
// with # starting a comment. Executions may use _ as a digit separator.
func parseBudgets(r io.Reader, name string) ([]budget, error) {
	var out []budget
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		l := sc.Text()
		if i := strings.IndexByte(l, '#'); i >= 0 {
			l = l[:i]
		}
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if len(f) < 3 {
			return nil, fmt.Errorf("%s:%d: want <package dir> <FuzzTarget> <executions> [NAME=value ...]", name, n)
		}
		b := budget{Pkg: f[0], Name: f[1], Line: n}
		if b.Pkg != "." && !strings.HasPrefix(b.Pkg, "./") {
			return nil, fmt.Errorf("%s:%d: package dir %q must start with ./", name, n, b.Pkg)
		}
		b.Pkg = strings.TrimSuffix(b.Pkg, "/")
		if !hasTestName(b.Name, "Fuzz") {
			return nil, fmt.Errorf("%s:%d: %q is not a fuzz target name", name, n, b.Name)
		}
		x, err := strconv.ParseInt(strings.ReplaceAll(f[2], "_", ""), 10, 64)
		if err != nil || x <= 0 {
			return nil, fmt.Errorf("%s:%d: executions %q: want a positive count", name, n, f[2])
		}
		b.Execs = x
		for _, kv := range f[3:] {
			if !reEnv.MatchString(kv) {
				return nil, fmt.Errorf("%s:%d: %q: want NAME=value", name, n, kv)
			}
			b.Env = append(b.Env, kv)
		}
		out = append(out, b)
	}
	return out, sc.Err()
}

func readBudgets(path string) ([]budget, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseBudgets(f, path)
}
