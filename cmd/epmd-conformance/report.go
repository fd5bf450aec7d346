package main

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/gopmd/gopmd/conformance"
)

// caseReport is the JSON object of one case.
type caseReport struct {
	Case      string  `json:"case"`
	Status    string  `json:"status"` // pass, fail, diff, skip, crash, blocked, timeout
	File      string  `json:"file"`   // script file and the case's (or failing step's) line: "alive2.txt:12"
	Step      string  `json:"step,omitempty"`
	Want      string  `json:"want,omitempty"`
	Got       string  `json:"got,omitempty"`
	Reason    string  `json:"reason,omitempty"`
	BlockedBy string  `json:"blocked_by,omitempty"`
	NotRun    bool    `json:"not_run,omitempty"`
	Time      float64 `json:"time"` // seconds
	Reference string  `json:"reference,omitempty"`

	transcript []string
}

func newReport(r *conformance.Result) caseReport {
	o := r.Target
	line := r.Case.Line
	cr := caseReport{
		Case:   r.Case.Name,
		Status: strings.ToLower(string(r.Verdict)),
		Reason: r.Reason,
		NotRun: r.NotRun,
	}
	if r.Verdict == conformance.VerdictDiff && r.Expected != nil {
		cr.Reason = "expected: " + r.Expected.Reason
	} else if r.Verdict == conformance.VerdictDiff {
		cr.Reason = fmt.Sprintf("expected: differences.md #%d", r.Case.Difference)
	}
	if o != nil {
		if o.Line > 0 && r.Verdict != conformance.VerdictPass {
			line = o.Line
		}
		if r.Verdict != conformance.VerdictPass && r.Verdict != conformance.VerdictSkip {
			cr.Step, cr.Want, cr.Got = o.Step, o.Want, o.Observed
			if cr.Want == "" {
				cr.Want = o.Step
			}
		}
		cr.BlockedBy = r.BlockedBy
		cr.Time = o.Elapsed.Seconds()
		cr.transcript = o.Transcript
	}
	if r.Reference != nil {
		cr.Reference = strings.ToLower(r.Reference.Status.String())
	}
	cr.File = fmt.Sprintf("%s:%d", r.Case.File.Name, line)
	return cr
}

// summary is the last JSON object.
type summary struct {
	Summary   bool           `json:"summary"`
	Passed    int            `json:"passed"`
	Diff      int            `json:"diff"`
	Failed    int            `json:"failed"`
	Crashed   int            `json:"crashed"`
	Blocked   int            `json:"blocked"`
	TimedOut  int            `json:"timed_out"`
	Skipped   int            `json:"skipped"`
	BlockedBy map[string]int `json:"blocked_by"`
	OK        bool           `json:"ok"`
	Target    string         `json:"target"`
	Flavour   string         `json:"flavour"`
	Release   int            `json:"otp"`
	Reference string         `json:"reference,omitempty"`
	RefOTP    int            `json:"reference_otp,omitempty"`
	Time      float64        `json:"time"`
}

func newSummary(c conformance.Counts, cfg conformance.Config, elapsed time.Duration) summary {
	t := cfg.Target.Path
	if cfg.Target.Addr != "" {
		t = cfg.Target.Addr
	} else if cfg.Target.Command != nil {
		t = strings.Join(cfg.Target.Command, " ")
	}
	return summary{
		Summary: true, Passed: c.Passed, Diff: c.Diff, Failed: c.Failed, Crashed: c.Crashed,
		Blocked: c.Blocked, TimedOut: c.TimedOut, Skipped: c.Skipped, BlockedBy: c.ByCapability,
		OK: c.OK(), Target: t, Flavour: cfg.Target.Flavour, Release: cfg.Target.Release,
		Reference: cfg.Reference.Path, RefOTP: cfg.Reference.Release, Time: elapsed.Seconds(),
	}
}

func writeJSON(w io.Writer, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // plain structs of strings and numbers
	}
	w.Write(append(b, '\n'))
}

// JUnit XML, in the form CI systems read (Jenkins, GitLab, GitHub
// actions): one testsuite per script file.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Time     string      `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitProblem `xml:"failure,omitempty"`
	Error     *junitProblem `xml:"error,omitempty"`
	Skipped   *junitProblem `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",chardata"`
}

func secs(f float64) string { return fmt.Sprintf("%.3f", f) }

// writeJUnit writes the report: FAIL and BLOCKED are failures, CRASH and
// TIMEOUT errors, SKIP skipped; DIFF passes, with the reason in
// system-out.
func writeJUnit(path string, reports []caseReport, elapsed time.Duration) error {
	root := junitSuites{Name: "epmd-conformance", Time: secs(elapsed.Seconds())}
	index := map[string]int{}
	for _, r := range reports {
		file, _, _ := strings.Cut(r.File, ":")
		suite := strings.TrimSuffix(file, ".txt")
		i, ok := index[suite]
		if !ok {
			i = len(root.Suites)
			index[suite] = i
			root.Suites = append(root.Suites, junitSuite{Name: suite})
		}
		s := &root.Suites[i]
		jc := junitCase{Name: r.Case, Classname: "conformance." + suite, Time: secs(r.Time)}
		detail := r.Reason
		if r.Step != "" {
			detail = fmt.Sprintf("%s\nstep: %s\nwant: %s\ngot: %s", r.Reason, r.Step, r.Want, r.Got)
		}
		if len(r.transcript) > 0 {
			detail += "\n\ntranscript:\n" + strings.Join(r.transcript, "\n")
		}
		detail = xmlSafe(detail)
		msg := xmlSafe(firstLine(r.Reason))
		switch r.Status {
		case "fail", "blocked":
			jc.Failure = &junitProblem{Message: msg, Type: strings.ToUpper(r.Status), Text: detail}
			s.Failures++
		case "crash", "timeout":
			jc.Error = &junitProblem{Message: msg, Type: strings.ToUpper(r.Status), Text: detail}
			s.Errors++
		case "skip":
			jc.Skipped = &junitProblem{Message: msg}
			s.Skipped++
		case "diff":
			jc.SystemOut = xmlSafe(r.Reason)
		}
		s.Tests++
		t, _ := parseSecs(s.Time)
		s.Time = secs(t + r.Time)
		s.Cases = append(s.Cases, jc)
		root.Tests++
	}
	for _, s := range root.Suites {
		root.Failures += s.Failures
		root.Errors += s.Errors
		root.Skipped += s.Skipped
	}
	b, err := xml.MarshalIndent(root, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append([]byte(xml.Header), append(b, '\n')...), 0o644)
}

func parseSecs(s string) (float64, error) {
	var f float64
	_, err := fmt.Sscanf(s, "%g", &f)
	return f, err
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// xmlSafe drops the characters XML 1.0 cannot carry at all (control
// characters other than tab, newline and carriage return, invalid UTF-8);
// daemon output may hold any byte.
func xmlSafe(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t' || r == '\n' || r == '\r':
			return r
		case r < 0x20 || r == 0xFFFD || r == 0xFFFE || r == 0xFFFF:
			return '?'
		case r >= 0xD800 && r <= 0xDFFF:
			return '?'
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
}
