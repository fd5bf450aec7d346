package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"go/ast"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

const rapidPath = "pgregory.net/rapid"

// propTests returns the names of p's rapid property tests: each
// TestXxx(*testing.T) whose body calls rapid.Check or rapid.MakeCheck.
func propTests(p *pkgInfo) ([]string, error) {
	if !slices.Contains(p.TestImport, rapidPath) {
		return nil, nil
	}
	return testFuncs(p, func(fd *ast.FuncDecl, names map[string]string) bool {
		if !hasTestName(fd.Name.Name, "Test") || !singleParam(fd, names["testing"], "T") || fd.Body == nil {
			return false
		}
		rapid := names[rapidPath]
		if rapid == "" {
			return false
		}
		found := false
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || found {
				return !found
			}
			if sel, ok := call.Fun.(*ast.SelectorExpr); ok {
				if id, ok := sel.X.(*ast.Ident); ok && id.Name == rapid && (sel.Sel.Name == "Check" || sel.Sel.Name == "MakeCheck") {
					found = true
				}
			}
			return true
		})
		return found
	})
}

var reTestEnd = regexp.MustCompile(`^--- (PASS|FAIL|SKIP): (\S+) \(([0-9.]+)s\)$`)

func cmdProps(args []string) error {
	fs := flag.NewFlagSet("props", flag.ExitOnError)
	checks := fs.Int("checks", 100, "rapid checks per property test (-rapid.checks; rapid's default is 100)")
	verbose := fs.Bool("v", false, "copy go test's output")
	fs.Parse(args)
	if *checks < 1 || fs.NArg() > 0 {
		fs.Usage()
		os.Exit(2)
	}
	goCmd := goCommand()
	root, err := moduleRoot(goCmd)
	if err != nil {
		return err
	}
	pkgs, err := listPackages(goCmd, root, nil)
	if err != nil {
		return err
	}
	begin := time.Now()
	failed, ran := 0, 0
	for _, p := range pkgs {
		tests, err := propTests(p)
		if err != nil {
			return err
		}
		if len(tests) == 0 {
			continue
		}
		ran += len(tests)
		run := "^(" + strings.Join(tests, "|") + ")$"
		cmd := exec.Command(goCmd, "test", "-count=1", "-v", "-run="+run, p.Rel,
			// After the package: go test takes what follows a flag it
			// does not know for the test binary's arguments.
			"-rapid.checks="+strconv.Itoa(*checks))
		cmd.Dir = root
		start := time.Now()
		out, err := cmd.CombinedOutput()
		took := time.Since(start)
		if *verbose {
			os.Stdout.Write(out)
		}
		// One line per top-level test, from go test -v's "--- PASS: TestX (1.23s)".
		seen := map[string]string{}
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			if m := reTestEnd.FindStringSubmatch(sc.Text()); m != nil && slices.Contains(tests, m[2]) {
				seen[m[2]] = m[1]
				fmt.Printf("props-ci: %-4s %s.%s: %d checks in %ss\n", strings.ToLower(m[1]), p.Rel, m[2], *checks, m[3])
			}
		}
		bad := err != nil
		for _, t := range tests {
			switch seen[t] {
			case "PASS":
			case "":
				fmt.Printf("props-ci: %s.%s: no result in go test's output\n", p.Rel, t)
				bad = true
			default: // FAIL, or SKIP: nothing skips in CI
				bad = true
			}
		}
		fmt.Printf("props-ci: %s: %d tests, %s with the build\n", p.Rel, len(tests), took.Round(time.Second))
		if bad {
			failed++
			if !*verbose {
				os.Stdout.Write(out)
			}
		}
	}
	fmt.Printf("props-ci: %d property tests at %d checks each, %d packages failed, %s\n", ran, *checks, failed, time.Since(begin).Round(time.Second))
	if ran == 0 {
		return fmt.Errorf("no rapid property tests found")
	}
	if failed > 0 {
		return fmt.Errorf("%d packages failed", failed)
	}
	return nil
}
