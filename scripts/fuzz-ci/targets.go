package main

import (
	"bufio"
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// pkgInfo is a package of the module as go list sees it.
type pkgInfo struct {
	ImportPath string
	Dir        string
	Rel        string   // "./fuzz": Dir relative to the module root
	TestFiles  []string // _test.go files of both the package and its _test package
	TestImport []string // what those files import
}

// target is one fuzz target: a func FuzzXxx(*testing.F) in a package's
// test files.
type target struct {
	Pkg  *pkgInfo
	Name string
}

func (t target) String() string { return t.Name + " (" + t.Pkg.Rel + ")" }

// listPackages runs go list on patterns (./... by default) from root, the
// module's directory.
func listPackages(goCmd, root string, patterns []string) ([]*pkgInfo, error) {
	if len(patterns) == 0 {
		patterns = []string{"./..."}
	}
	const sep = "\x1f"
	format := strings.Join([]string{
		"{{.ImportPath}}", "{{.Dir}}",
		`{{join .TestGoFiles ","}}`, `{{join .XTestGoFiles ","}}`,
		`{{join .TestImports ","}}`, `{{join .XTestImports ","}}`,
	}, sep)
	args := append([]string{"list", "-f", format}, patterns...)
	cmd := exec.Command(goCmd, args...)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list: %v\n%s", err, stderr.Bytes())
	}
	var pkgs []*pkgInfo
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Split(sc.Text(), sep)
		if len(f) != 6 {
			return nil, fmt.Errorf("go list: unexpected line %q", sc.Text())
		}
		p := &pkgInfo{ImportPath: f[0], Dir: f[1]}
		rel, err := filepath.Rel(root, p.Dir)
		if err != nil {
			return nil, err
		}
		p.Rel = "./" + filepath.ToSlash(rel)
		if rel == "." {
			p.Rel = "."
		}
		for _, names := range []string{f[2], f[3]} {
			for _, n := range splitComma(names) {
				p.TestFiles = append(p.TestFiles, filepath.Join(p.Dir, n))
			}
		}
		p.TestImport = append(splitComma(f[4]), splitComma(f[5])...)
		pkgs = append(pkgs, p)
	}
	return pkgs, sc.Err()
}

func splitComma(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// findTargets returns every fuzz target of pkgs, sorted by package and
// name: each top-level func whose name is Fuzz followed by nothing or a
// non-lower-case letter (go test's rule) taking a single *testing.F.
func findTargets(pkgs []*pkgInfo) ([]target, error) {
	var out []target
	for _, p := range pkgs {
		names, err := testFuncs(p, isFuzzFunc)
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			out = append(out, target{Pkg: p, Name: n})
		}
	}
	return out, nil
}

// testFuncs returns the sorted names of the top-level functions of p's test
// files that keep says to keep. keep gets the name under which the
// function's file imports "testing" and pgregory.net/rapid ("" if not).
func testFuncs(p *pkgInfo, keep func(fd *ast.FuncDecl, imports map[string]string) bool) ([]string, error) {
	fset := token.NewFileSet()
	var names []string
	for _, file := range p.TestFiles {
		f, err := parser.ParseFile(fset, file, nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		imports := map[string]string{"testing": importName(f, "testing"), rapidPath: importName(f, rapidPath)}
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if ok && fd.Recv == nil && keep(fd, imports) {
				names = append(names, fd.Name.Name)
			}
		}
	}
	sort.Strings(names)
	return names, nil
}

// importName returns the name under which f imports path ("" if it does
// not).
func importName(f *ast.File, path string) string {
	for _, im := range f.Imports {
		if strings.Trim(im.Path.Value, `"`) != path {
			continue
		}
		if im.Name != nil {
			return im.Name.Name
		}
		return path[strings.LastIndex(path, "/")+1:]
	}
	return ""
}

// isFuzzFunc reports whether fd is a fuzz target: FuzzXxx(f *testing.F).
func isFuzzFunc(fd *ast.FuncDecl, imports map[string]string) bool {
	return hasTestName(fd.Name.Name, "Fuzz") && singleParam(fd, imports["testing"], "F")
}

// hasTestName is go test's rule for Test, Fuzz, Benchmark names: the
// prefix, then nothing or a character that is not a lower-case letter.
func hasTestName(name, prefix string) bool {
	if !strings.HasPrefix(name, prefix) {
		return false
	}
	rest := name[len(prefix):]
	return rest == "" || !(rest[0] >= 'a' && rest[0] <= 'z')
}

// singleParam reports whether fd takes exactly one parameter of type
// *testing.<typ> and returns nothing.
func singleParam(fd *ast.FuncDecl, testingName, typ string) bool {
	if testingName == "" || fd.Type.Results != nil || fd.Type.TypeParams != nil {
		return false
	}
	ps := fd.Type.Params.List
	if len(ps) != 1 || len(ps[0].Names) > 1 {
		return false
	}
	star, ok := ps[0].Type.(*ast.StarExpr)
	if !ok {
		return false
	}
	sel, ok := star.X.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	id, ok := sel.X.(*ast.Ident)
	return ok && id.Name == testingName && sel.Sel.Name == typ
}
