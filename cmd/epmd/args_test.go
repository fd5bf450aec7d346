package main

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

func TestUsageGoldenIsStock(t *testing.T) {
	needStock(t)
	// Capture as the golden file was captured: epmd -h 2>&1 >/dev/null.
	cmd := exec.Command(stockBin, "-h")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Fatalf("stock epmd -h: exit %d (%v)", code, err)
	}
	golden, err := os.ReadFile("testdata/usage.golden")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stderr.Bytes(), golden) {
		t.Fatalf("testdata/usage.golden differs from the installed stock epmd's usage text:\n%s", stderr.Bytes())
	}
	if usageText != string(golden) {
		t.Fatal("usageText differs from the golden file")
	}
}

// TestUsage: every argument error prints the usage text on stderr, exit 1,
// exactly as stock does.
func TestUsage(t *testing.T) {
	t.Parallel()
	usage := result{stderr: usageText, code: 1}
	for _, args := range [][]string{
		{"-h"},
		{"--help"},
		{"-foo"},
		{"names"},
		{"-port"},
		{"-port", "0"},
		{"-port", "x"},
		{"-port", "4294967296", "-names"}, // atoi truncates to 32 bits: 0
		{"-port=4369"},
		{"-address"},
		{"-packet_timeout"},
		{"-packet_timeout", "0"},
		{"-packet_timeout", "x", "-names"},
		{"-delay_accept", "0"},
		{"-delay_write"},
		{"-names", "-port", "4369"}, // interactive options must be last
		{"-names", "x"},
		{"-started", "-d"},
		{"-dump", "-dump"},
		{"-kill", "x"},
		{"-stop"},
		{"-stop", "a", "b"},
		{"-d", "-bogus", "-names"},
		{"-port", "1", "-h", "-names"},
		{""},
	} {
		for _, im := range impls() {
			t.Run(im.name+"/"+strings.Join(args, "_"), func(t *testing.T) {
				t.Parallel()
				want(t, strings.Join(args, " "), runBin(t, im.bin, nil, args...), usage)
			})
		}
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	want(t, "-version", runBin(t, ourBin, nil, "-version"), result{stdout: "gopmd " + testVersion + "\n"})
	var out, errb bytes.Buffer
	if code := run([]string{"-version"}, noEnv, &out, &errb); code != 0 || out.String() != "gopmd devel\n" || errb.Len() != 0 {
		t.Fatalf("in-process -version: exit %d, %q, %q", code, out.String(), errb.String())
	}
}

func noEnv(string) (string, bool) { return "", false }

func TestRunUsageInProcess(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"-port", "0"}, noEnv, &out, &errb); code != 1 || out.Len() != 0 || errb.String() != usageText {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
	if !strings.Contains(usageText, "than default 4369\n") || len(usageText) != 2008 {
		t.Fatalf("usage text (%d bytes) is not stock's", len(usageText))
	}
}

func TestAtoi(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int
	}{
		{"", 0},
		{"x", 0},
		{"4369", 4369},
		{"  \t\n\v\f\r4369", 4369},
		{"+12", 12},
		{"-12", -12},
		{"12abc", 12},
		{"1 2", 1},
		{"- 1", 0},
		{"+-1", 0},
		{"0x10", 0},
		{"007", 7},
		{"70000", 70000},
		{"2147483647", 2147483647},
		{"2147483648", -2147483648},
		{"4294967296", 0},
		{"4294971665", 4369},
		{"9223372036854775807", -1},
		{"9223372036854775808", -1}, // saturates at LONG_MAX
		{"99999999999999999999999999999999999", -1}, // likewise
		{"-9223372036854775808", 0},
		{"-99999999999999999999999999999999", 0}, // LONG_MIN truncated
	} {
		if got := atoi(tt.in); got != tt.want {
			t.Errorf("atoi(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

// TestPortArguments covers the order of arguments, repeated options and
// ERL_EPMD_PORT, for our CLI and stock's against a daemon of each.
func TestPortArguments(t *testing.T) {
	t.Parallel()
	for _, dm := range impls() {
		t.Run(dm.name+"_daemon", func(t *testing.T) {
			t.Parallel()
			_, port := startDaemon(t, dm.bin, nil)
			idle := freePort(t) // nothing listens there
			p, q := strconv.Itoa(port), strconv.Itoa(idle)
			up := result{stdout: "epmd: up and running on port " + p + " with data:\n"}
			down := result{stderr: "epmd: Cannot connect to local epmd\n", code: 1}
			usage := result{stderr: usageText, code: 1}
			for _, tc := range []struct {
				env  []string
				args []string
				want result
			}{
				{nil, []string{"-port", p, "-names"}, up},
				{nil, []string{"-names", "-port", p}, usage},
				{nil, []string{"-port", q, "-port", p, "-names"}, up}, // last wins
				{nil, []string{"-port", p, "-port", q, "-names"}, down},
				{nil, []string{"-port", " +" + p + "junk", "-names"}, up}, // atoi
				{nil, []string{"-port", strconv.Itoa(port + 65536), "-names"}, up},
				{nil, []string{"-port", strconv.Itoa(port - 65536), "-names"}, up},
				{[]string{envPort + "=" + p}, []string{"-names"}, up},
				{[]string{envPort + "=" + q}, []string{"-port", p, "-names"}, up}, // flag wins
				{[]string{envPort + "=" + p}, []string{"-port", q, "-names"}, down},
				{[]string{envPort + "=" + p + "xyz"}, []string{"-names"}, up},
				{[]string{envPort + "=garbage"}, []string{"-names"}, down}, // port 0
				{[]string{envPort + "="}, []string{"-started"}, result{code: 1}},
				// Daemon options before an interactive one are ignored,
				// even an -address that would not parse.
				{nil, []string{"-d", "-d", "-daemon", "-relaxed_command_check", "-packet_timeout", "5",
					"-delay_accept", "1", "-delay_write", "1", "-address", "localhost", "-systemd", "-port", p, "-names"}, up},
				{[]string{envAddress + "=localhost", envRelaxed + "=1"}, []string{"-port", p, "-names"}, up},
			} {
				for _, cli := range impls() {
					what := cli.name + " " + strings.Join(tc.env, " ") + " epmd " + strings.Join(tc.args, " ")
					want(t, what, runBin(t, cli.bin, tc.env, tc.args...), tc.want)
				}
			}
		})
	}
}
