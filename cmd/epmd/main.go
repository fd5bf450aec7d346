// Command epmd is gopmd's Erlang Port Mapper Daemon, a drop-in replacement
// for the stock C epmd: the same options, environment variables, exit
// codes, interactive output and usage text, byte for byte.
//
// Arguments are read left to right as stock epmd reads them. Interactive
// options (-names, -started, -dump, -kill, -stop NAME) run as soon as they
// are met, so options they depend on (-port) must come first, and they must
// end the command line. Without one, epmd runs the daemon. The one option
// stock epmd lacks is -version.
package main

import (
	_ "embed"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/gopmd/gopmd/epmd/wire"
)

// version is set at build time: go build -ldflags "-X main.version=v1.2.3"
// (make build does). When it is not, -version falls back on the build
// information; see versionString.
var version string

// versionString is what -version prints after "gopmd ": the version set
// with -ldflags when there is one; else the main module's version recorded
// by the go command (v1.2.3 for "go install
// github.com/gopmd/gopmd/cmd/epmd@v1.2.3", a pseudo-version for @latest
// between tags or for a build in a git checkout); else "devel".
func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// Environment variables read by stock epmd, and our own marker for the
// process that -daemon starts.
const (
	envPort    = "ERL_EPMD_PORT"
	envAddress = "ERL_EPMD_ADDRESS"
	envRelaxed = "ERL_EPMD_RELAXED_COMMAND_CHECK"
	// envDaemonChild marks the detached copy started by -daemon.
	envDaemonChild = "GOPMD_DAEMON_CHILD"
)

//go:embed testdata/usage.golden
var usageGolden string

// usageText is stock epmd's usage text. It prints its compiled-in default
// port through a %d, which is put back here from wire.DefaultPort.
var usageText = func() string {
	const stockDefault = "than default 4369\n"
	if strings.Count(usageGolden, stockDefault) != 1 {
		panic("epmd: usage text lost its default port line")
	}
	return strings.Replace(usageGolden, stockDefault, "than default "+strconv.Itoa(wire.DefaultPort)+"\n", 1)
}()

func main() {
	os.Exit(run(os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr))
}

// options is what the command line and the environment configure.
type options struct {
	port          int // atoi value, unchecked: listeners use it modulo 65536
	addresses     string
	hasAddresses  bool
	debug         int
	relaxed       bool
	daemon        bool
	daemonChild   bool
	systemd       bool
	packetTimeout int // seconds, atoi value; 0 = default
	delayAccept   int
	delayWrite    int
	// maxPendingOutput is -max_pending_output, in bytes: 0 when not
	// given (the server's default), -1 for no cap.
	maxPendingOutput int64
	args             []string // the arguments as given, for the detached copy

	getenv func(string) (string, bool)
}

// run is the whole program: it parses args as stock epmd does, runs an
// interactive command or the daemon, and returns the exit status.
func run(args []string, getenv func(string) (string, bool), stdout, stderr io.Writer) int {
	o := options{port: wire.DefaultPort, getenv: getenv}
	if v, ok := getenv(envPort); ok {
		o.port = atoi(v)
	}
	o.addresses, o.hasAddresses = getenv(envAddress)
	_, o.relaxed = getenv(envRelaxed)
	_, o.daemonChild = getenv(envDaemonChild)

	usage := func() int {
		io.WriteString(stderr, usageText)
		return 1
	}
	// number reads the value of a numeric option at args[i+1]: missing,
	// or 0 by atoi, is a usage error.
	number := func(i int, dst *int) bool {
		if i+1 >= len(args) {
			return false
		}
		*dst = atoi(args[i+1])
		return *dst != 0
	}

	for i := 0; i < len(args); {
		left := len(args) - i // stock's argc at this point
		switch a := args[i]; a {
		case "-d", "-debug":
			o.debug++
			i++
		case "-packet_timeout":
			if !number(i, &o.packetTimeout) {
				return usage()
			}
			i += 2
		case "-delay_accept":
			if !number(i, &o.delayAccept) {
				return usage()
			}
			i += 2
		case "-delay_write":
			if !number(i, &o.delayWrite) {
				return usage()
			}
			i += 2
		case "-max_pending_output":
			// A gopmd option: stock epmd has none (usage, exit 1).
			if i+1 >= len(args) {
				return usage()
			}
			n, ok := parseBytes(args[i+1])
			if !ok {
				return usage()
			}
			o.maxPendingOutput = n
			i += 2
		case "-daemon":
			o.daemon = true
			i++
		case "-relaxed_command_check":
			o.relaxed = true
			i++
		case "-address":
			if left == 1 {
				return usage()
			}
			o.addresses, o.hasAddresses = args[i+1], true
			i += 2
		case "-port":
			if !number(i, &o.port) {
				return usage()
			}
			i += 2
		case "-systemd":
			o.systemd = true
			i++
		case "-kill":
			if left != 1 {
				return usage()
			}
			return cliKill(o.port, stdout, stderr)
		case "-names", "-started", "-dump":
			if left != 1 {
				return usage()
			}
			tag := wire.TagNamesReq
			if a == "-dump" {
				tag = wire.TagDumpReq
			}
			// -started is -names printing nothing but "Can't write".
			return cliCall(o.port, tag, a == "-started", stdout, stderr)
		case "-stop":
			if left != 2 {
				return usage()
			}
			return cliStop(o.port, args[i+1], stdout, stderr)
		case "-version":
			fmt.Fprintf(stdout, "gopmd %s\n", versionString())
			return 0
		default:
			return usage()
		}
	}
	o.args = args
	return daemon(o, stderr)
}

// atoi is C's atoi, (int)strtol(s, NULL, 10) with glibc: leading white
// space, an optional sign, then digits up to the first non-digit; no digits
// gives 0; overflow saturates at the 64-bit long limits, and the result is
// then truncated to a 32-bit int (so "4294967296" is 0, and a huge number
// is -1).
func atoi(s string) int {
	i := 0
	for i < len(s) && (s[i] == ' ' || (s[i] >= '\t' && s[i] <= '\r')) {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	var v uint64 // magnitude, saturated at 1<<63, just past the int64 range
	const limit = 1 << 63
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		d := uint64(s[i] - '0')
		if v > (limit-d)/10 {
			v = limit
		} else {
			v = v*10 + d
		}
	}
	var l int64
	switch {
	case neg && v >= limit:
		l = -1 << 63
	case neg:
		l = -int64(v)
	case v >= limit:
		l = 1<<63 - 1
	default:
		l = int64(v)
	}
	return int(int32(l))
}

// seconds turns an atoi value of stock's unsigned seconds options into a
// duration: a negative value wraps to a huge unsigned number of seconds.
func seconds(n int) time.Duration {
	return time.Duration(uint32(int32(n))) * time.Second
}
