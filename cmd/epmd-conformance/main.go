// Command epmd-conformance runs gopmd's scripted conformance suite against
// any epmd binary: the scripts are built in, so it works from anywhere.
//
// Usage:
//
//	epmd-conformance -epmd /path/to/epmd [-reference /path/to/stock/epmd] [-run PATTERN] [-v]
//
// Each case starts its own daemon on a free loopback port. With
// -reference, every case also runs against the stock epmd, and a case the
// stock daemon fails is reported as a broken script. It prints one line
// per case:
//
//	PASS name
//	FAIL name: why
//	DIFF name (expected: differences.md #N)
//	SKIP name: reason
//
// and then "N passed, N failed, N skipped" (DIFF counts as passed). The
// exit status is 1 if any case failed, 2 on a usage error.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"strings"

	"github.com/gopmd/gopmd/conformance"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("epmd-conformance", flag.ContinueOnError)
	fs.SetOutput(stderr)
	epmd := fs.String("epmd", "", "the epmd binary under test (required unless -addr)")
	ref := fs.String("reference", "", "the stock epmd to run every case against as well")
	addr := fs.String("addr", "", "test an already running epmd at 127.0.0.1:PORT instead (only cases that need no flags)")
	pattern := fs.String("run", "", "run only the cases whose name matches this regular expression")
	verbose := fs.Bool("v", false, "print each case's transcript")
	parallel := fs.Int("parallel", 8, "how many cases run at once")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: epmd-conformance -epmd /path/to/epmd [-reference /path/to/stock/epmd] [-run PATTERN] [-v]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 || (*epmd == "" && *addr == "") {
		fs.Usage()
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	cfg := conformance.Config{Parallel: *parallel, Goldens: conformance.Scripts}
	if *pattern != "" {
		re, err := regexp.Compile(*pattern)
		if err != nil {
			fmt.Fprintf(stderr, "epmd-conformance: -run: %v\n", err)
			return 2
		}
		cfg.Run = re
	}
	var err error
	if cfg.Target, err = target(ctx, *epmd); err != nil {
		fmt.Fprintf(stderr, "epmd-conformance: %v\n", err)
		return 2
	}
	cfg.Target.Addr = *addr
	if *ref != "" {
		if cfg.Reference, err = target(ctx, *ref); err != nil {
			fmt.Fprintf(stderr, "epmd-conformance: %v\n", err)
			return 2
		}
		if cfg.Reference.Flavour != conformance.Stock {
			fmt.Fprintf(stderr, "epmd-conformance: -reference %s is not a stock epmd (it answers -version)\n", *ref)
			return 2
		}
		if *addr != "" {
			fmt.Fprintln(stderr, "epmd-conformance: -reference and -addr do not go together")
			return 2
		}
	}
	files, err := conformance.Load(conformance.Scripts)
	if err != nil {
		fmt.Fprintf(stderr, "epmd-conformance: %v\n", err)
		return 2
	}
	results := conformance.RunSuite(ctx, cfg, conformance.Cases(files), func(r *conformance.Result) {
		fmt.Fprintln(stdout, r.Line())
		if *verbose {
			printTranscript(stdout, "", r.Target)
			if r.Reference != nil && (r.Verdict == conformance.VerdictFail || r.Reference.Status != conformance.Pass) {
				printTranscript(stdout, "stock: ", r.Reference)
			}
		}
	})
	passed, failed, skipped := conformance.Summary(results)
	fmt.Fprintf(stdout, "%d passed, %d failed, %d skipped\n", passed, failed, skipped)
	if failed > 0 {
		return 1
	}
	return 0
}

func target(ctx context.Context, path string) (conformance.Target, error) {
	if path == "" {
		return conformance.Target{Flavour: conformance.Gopmd}, nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return conformance.Target{}, err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return conformance.Target{}, fmt.Errorf("%s is not an executable file", path)
	}
	fl, err := conformance.DetectFlavour(ctx, path)
	if err != nil {
		return conformance.Target{}, err
	}
	return conformance.Target{Path: path, Flavour: fl}, nil
}

func printTranscript(w io.Writer, prefix string, o *conformance.Outcome) {
	if o == nil {
		return
	}
	for _, l := range o.Transcript {
		fmt.Fprintf(w, "    %s%s\n", prefix, strings.ReplaceAll(l, "\n", "\n    "+prefix))
	}
}
