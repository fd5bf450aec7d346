package main

import (
	"bytes"
	"crypto/sha256"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
)

// corpusHeader starts every file of a Go fuzz corpus.
var corpusHeader = []byte("go test fuzz v1\n")

// promotion is what promote would do for one target.
type promotion struct {
	from, to string   // cache directory, corpus directory
	cached   int      // files in the cache
	copy     []string // names (in from) of the inputs not in the corpus yet
	skipped  []string // not corpus files, or a name taken by other content
}

// planPromotion compares a target's cache directory with its committed
// corpus directory by content.
func planPromotion(from, to string) (promotion, error) {
	p := promotion{from: from, to: to}
	have := map[[32]byte]bool{}
	names := map[string]bool{}
	if es, err := os.ReadDir(to); err == nil {
		for _, e := range es {
			if !e.Type().IsRegular() {
				continue
			}
			b, err := os.ReadFile(filepath.Join(to, e.Name()))
			if err != nil {
				return p, err
			}
			have[sha256.Sum256(b)] = true
			names[e.Name()] = true
		}
	} else if !os.IsNotExist(err) {
		return p, err
	}
	es, err := os.ReadDir(from)
	if os.IsNotExist(err) {
		return p, nil
	}
	if err != nil {
		return p, err
	}
	for _, e := range es {
		if !e.Type().IsRegular() {
			continue
		}
		p.cached++
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			return p, err
		}
		sum := sha256.Sum256(b)
		switch {
		case have[sum]:
		case !bytes.HasPrefix(b, corpusHeader) || names[e.Name()]:
			p.skipped = append(p.skipped, e.Name())
		default:
			have[sum] = true
			p.copy = append(p.copy, e.Name())
		}
	}
	sort.Strings(p.copy)
	return p, nil
}

func (p promotion) apply() error {
	if len(p.copy) == 0 {
		return nil
	}
	if err := os.MkdirAll(p.to, 0o755); err != nil {
		return err
	}
	for _, n := range p.copy {
		b, err := os.ReadFile(filepath.Join(p.from, n))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(p.to, n), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func cmdPromote(args []string) error {
	fs := flag.NewFlagSet("promote", flag.ExitOnError)
	dry := fs.Bool("dry-run", false, "only say what would be copied")
	filter := fs.String("targets", "", "only targets whose \"<package dir>.<FuzzTarget>\" matches this regexp")
	fs.Parse(args)
	goCmd := goCommand()
	root, ts, _, err := discoverMatching(goCmd, *filter)
	if err != nil {
		return err
	}
	cache, err := goEnv(goCmd, "GOCACHE")
	if err != nil {
		return err
	}
	cfg := &runConfig{goCache: cache}
	total := 0
	for _, t := range ts {
		to := filepath.Join(t.Pkg.Dir, "testdata", "fuzz", t.Name)
		p, err := planPromotion(cfg.cacheDir(t), to)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, to)
		verb := "copied"
		if *dry {
			verb = "would copy"
		}
		fmt.Printf("fuzz-ci: %s: %d inputs in the cache, %s %d new to %s\n", t, p.cached, verb, len(p.copy), filepath.ToSlash(rel))
		for _, n := range p.skipped {
			fmt.Printf("fuzz-ci:     left out %s: not a corpus file, or its name is taken in %s\n", n, filepath.ToSlash(rel))
		}
		total += len(p.copy)
		if !*dry {
			if err := p.apply(); err != nil {
				return err
			}
		}
	}
	if total > 0 && !*dry {
		fmt.Println("fuzz-ci: replay them (go test -run='^Fuzz' ./...), then commit them with git add")
	}
	return nil
}

// discoverMatching is discover with the targets whose "<package
// dir>.<FuzzTarget>" matches filter (every target when it is empty); it
// also returns filter compiled (nil when empty).
func discoverMatching(goCmd, filter string) (string, []target, *regexp.Regexp, error) {
	var re *regexp.Regexp
	if filter != "" {
		var err error
		if re, err = regexp.Compile(filter); err != nil {
			return "", nil, nil, err
		}
	}
	root, ts, err := discover(goCmd, re)
	return root, ts, re, err
}
