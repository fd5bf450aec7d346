package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Workloads.
const (
	wLookup = "lookup"   // PORT_PLEASE2 on a new connection each, names drawn from the registered ones
	wNames  = "names"    // NAMES, read to EOF
	wChurn  = "churn"    // register, close, register the same name again
	wHold   = "hold"     // open and hold registrations until -nodes or the first failure
	wSlow   = "slow"     // look-ups while slow clients dribble bytes and leave NAMES replies unread
	wHoard  = "hoard"    // DUMP and NAMES readers that never read, table churn; the daemon's memory
	wDump   = "dumploop" // look-ups idle, then while clients ask DUMP in a loop
)

var workloads = []string{wLookup, wNames, wChurn, wHold, wSlow, wHoard, wDump}

// figure is one measured configuration: a workload and its parameters.
type figure struct {
	Workload string        `json:"workload"`
	Nodes    int           `json:"nodes"` // registered beforehand; for hold, how many to hold
	Conc     int           `json:"concurrency"`
	N        int64         `json:"max_ops"`
	Duration time.Duration `json:"max_duration_ns"`
	Timeout  time.Duration `json:"timeout_ns"`
	Slow     int           `json:"slow_clients,omitempty"`
	SlowHold time.Duration `json:"slow_hold_ns,omitempty"`
	Dribble  time.Duration `json:"dribble_ns,omitempty"`
	// Max makes the nodes registered beforehand maximal: 254-character
	// names of 4-byte characters, 1020-byte extra fields.
	Max          bool `json:"maximal_nodes,omitempty"`
	Dump         int  `json:"dump_clients,omitempty"`  // hoard: DUMP readers; dumploop: DUMP loops
	NamesReaders int  `json:"names_readers,omitempty"` // hoard: NAMES readers, each after a table change
	// Settle is how long hoard waits after closing its readers before
	// reading the daemon's memory again.
	Settle time.Duration `json:"settle_ns,omitempty"`
}

// String names the figure in reports, with the parameters that matter for
// its workload.
func (f figure) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s nodes=%d c=%d", f.Workload, f.Nodes, f.Conc)
	if f.Workload == wSlow {
		fmt.Fprintf(&b, " slow=%d", f.Slow)
	}
	if f.Max {
		b.WriteString(" max")
	}
	switch f.Workload {
	case wHoard:
		fmt.Fprintf(&b, " dump=%d nreaders=%d", f.Dump, f.NamesReaders)
	case wDump:
		fmt.Fprintf(&b, " dump=%d", f.Dump)
	}
	return b.String()
}

// limits describes the bounds, for the report.
func (f figure) limits() string {
	if f.Workload == wHold {
		return fmt.Sprintf("until %d held, the first failure or %s", f.Nodes, f.Duration)
	}
	if f.Workload == wHoard {
		return fmt.Sprintf("readers held %s, look-ups n<=%d meanwhile", f.SlowHold, f.N)
	}
	if f.Workload == wDump {
		return fmt.Sprintf("n<=%d, <=%s idle, then the same beside the DUMP loops", f.N, f.Duration)
	}
	return fmt.Sprintf("n<=%d, <=%s", f.N, f.Duration)
}

// parseFigure reads a figure spec, WORKLOAD[:key=value,...], on top of the
// defaults in base. Keys: nodes, c, n, duration (or d), timeout, slow,
// hold, dribble.
func parseFigure(spec string, base figure) (figure, error) {
	f := base
	name, params, _ := strings.Cut(spec, ":")
	f.Workload = name
	if !validWorkload(name) {
		return f, fmt.Errorf("figure %q: unknown workload %q (want one of %s)", spec, name, strings.Join(workloads, ", "))
	}
	if params == "" {
		return f.normalize(), f.check()
	}
	for _, kv := range strings.Split(params, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return f, fmt.Errorf("figure %q: %q is not key=value", spec, kv)
		}
		var err error
		switch k {
		case "nodes":
			f.Nodes, err = strconv.Atoi(v)
		case "c":
			f.Conc, err = strconv.Atoi(v)
		case "n":
			f.N, err = strconv.ParseInt(v, 10, 64)
		case "duration", "d":
			f.Duration, err = time.ParseDuration(v)
		case "timeout":
			f.Timeout, err = time.ParseDuration(v)
		case "slow":
			f.Slow, err = strconv.Atoi(v)
		case "hold":
			f.SlowHold, err = time.ParseDuration(v)
		case "dribble":
			f.Dribble, err = time.ParseDuration(v)
		case "settle":
			f.Settle, err = time.ParseDuration(v)
		case "max":
			f.Max, err = strconv.ParseBool(v)
		case "dump":
			f.Dump, err = strconv.Atoi(v)
		case "nreaders":
			f.NamesReaders, err = strconv.Atoi(v)
		default:
			return f, fmt.Errorf("figure %q: unknown key %q (want nodes, c, n, duration, timeout, slow, hold, dribble, settle, max, dump, nreaders)", spec, k)
		}
		if err != nil {
			return f, fmt.Errorf("figure %q: %s: %w", spec, k, err)
		}
	}
	return f.normalize(), f.check()
}

// normalize clears the parameters the workload does not use.
func (f figure) normalize() figure {
	if f.Workload != wSlow && f.Workload != wHoard {
		f.SlowHold = 0
	}
	if f.Workload != wSlow {
		f.Dribble = 0
	}
	if f.Workload != wHoard {
		f.Settle = 0
	}
	if f.Workload != wSlow {
		f.Slow = 0
	}
	if f.Workload != wHoard && f.Workload != wDump {
		f.Dump = 0
	}
	if f.Workload != wHoard {
		f.NamesReaders = 0
	}
	return f
}

func validWorkload(w string) bool {
	for _, x := range workloads {
		if w == x {
			return true
		}
	}
	return false
}

// check rejects parameters that would make a run unbounded or meaningless.
func (f figure) check() error {
	switch {
	case f.Nodes < 0:
		return fmt.Errorf("%s: nodes must be >= 0", f.Workload)
	case f.Conc < 1 || f.Conc > 4096:
		return fmt.Errorf("%s: c must be 1..4096", f.Workload)
	case f.N < 1:
		return fmt.Errorf("%s: n must be >= 1", f.Workload)
	case f.Duration <= 0 || f.Duration > time.Hour:
		return fmt.Errorf("%s: duration must be in (0, 1h]", f.Workload)
	case f.Timeout <= 0 || f.Timeout > 10*time.Minute:
		return fmt.Errorf("%s: timeout must be in (0, 10m]", f.Workload)
	case f.Workload == wSlow && (f.Slow < 0 || f.Slow > 4096):
		return fmt.Errorf("slow: slow must be 0..4096")
	case f.Workload == wSlow && (f.SlowHold <= 0 || f.Dribble <= 0):
		return fmt.Errorf("slow: hold and dribble must be > 0")
	case f.Workload == wHold && f.Nodes < 1:
		return fmt.Errorf("hold: nodes must be >= 1")
	case f.Max && f.Workload != wLookup && f.Workload != wHoard && f.Workload != wDump:
		return fmt.Errorf("%s: max goes with lookup, hoard and dumploop", f.Workload)
	case f.Dump < 0 || f.Dump > 4096 || f.NamesReaders < 0 || f.NamesReaders > 4096:
		return fmt.Errorf("%s: dump and nreaders must be 0..4096", f.Workload)
	case f.Workload == wHoard && (f.SlowHold <= 0 || f.SlowHold > 10*time.Minute || f.Settle <= 0 || f.Settle > time.Minute):
		return fmt.Errorf("hoard: hold must be in (0, 10m], settle in (0, 1m]")
	}
	return nil
}
