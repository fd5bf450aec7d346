package main

import (
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// recorder collects the lines a sink writes; hold blocks the writer until
// it is closed (when not nil).
type recorder struct {
	mu    sync.Mutex
	lines []logEntry
	hold  chan struct{}
}

func (r *recorder) write(e logEntry) error {
	if r.hold != nil {
		<-r.hold
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, e)
	return nil
}

func (r *recorder) msgs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.lines {
		out = append(out, e.msg)
	}
	return out
}

var summaryLine = regexp.MustCompile(`^suppressed (\d+) log messages in \S+ \(more than 100 in a row, then one a second\):(.*)$`)

// TestLogRateLimit: level-0 messages are written as they are up to the
// burst, then one a second; the rest are counted by kind in a summary;
// -d messages are never limited.
func TestLogRateLimit(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	s := newLineSink(rec.write)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	var want []string
	for i := range 250 {
		msg := "invalid packet size (" + strconv.Itoa(i) + ")"
		if i%2 == 1 {
			msg = "node name already occupied n" + strconv.Itoa(i)
		}
		s.log(logEntry{level: slog.LevelInfo, time: now, msg: msg})
		if i < logBurst {
			want = append(want, msg)
		}
		s.log(logEntry{level: slog.LevelDebug, time: now, msg: "debug " + strconv.Itoa(i)})
		want = append(want, "debug "+strconv.Itoa(i))
	}
	now = now.Add(3500 * time.Millisecond) // three tokens
	for i := range 5 {
		msg := "got garbage " + strconv.Itoa(i)
		s.log(logEntry{level: slog.LevelError, time: now, msg: msg})
		if i < 3 {
			want = append(want, msg)
		}
	}
	s.close(5 * time.Second)
	got := rec.msgs()
	if len(got) != len(want)+1 {
		t.Fatalf("%d lines, want %d and a summary:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	if diff := cmp.Diff(want, got[:len(want)]); diff != "" {
		t.Errorf("lines written (-want +got):\n%s", diff)
	}
	m := summaryLine.FindStringSubmatch(got[len(got)-1])
	if m == nil {
		t.Fatalf("last line %q is not a summary", got[len(got)-1])
	}
	if m[1] != "152" { // 150 Info + 2 Error suppressed
		t.Errorf("summary counts %s, want 152: %q", m[1], got[len(got)-1])
	}
	for _, kind := range []string{` 75 "invalid packet size (#)"`, ` 75 "node name already occupied"`, ` 2 "got garbage #"`} {
		if !strings.Contains(m[2], kind) {
			t.Errorf("summary %q lacks %q", m[2], kind)
		}
	}
}

// TestLogSummaryKinds: a summary names at most logSummaryKinds kinds, the
// most frequent first, and counts the rest as others.
func TestLogSummaryKinds(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	s := newLineSink(rec.write)
	s.tokens = 0
	now := time.Now()
	s.now = func() time.Time { return now }
	n := 0
	for k := range 6 {
		for range k + 1 {
			s.log(logEntry{level: slog.LevelInfo, msg: "kind" + string(rune('a'+k)) + " x"})
			n++
		}
	}
	s.close(5 * time.Second)
	got := rec.msgs()
	if len(got) != 1 {
		t.Fatalf("lines %q, want one summary", got)
	}
	want := "suppressed " + strconv.Itoa(n) + ` log messages in 0s (more than 100 in a row, then one a second): 4 "kindd x", 3 "kindc x", 2 "kindb x", 1 "kinda x", 11 others`
	if got[0] != want {
		t.Errorf("summary\n%q, want\n%q", got[0], want)
	}
}

// TestLogBlockedOutput: while the output is blocked, logging never waits;
// what does not fit in the queue is dropped, and the count is written once
// the output moves again.
func TestLogBlockedOutput(t *testing.T) {
	t.Parallel()
	rec := &recorder{hold: make(chan struct{})}
	s := newLineSink(rec.write)
	const total = 5000
	line := strings.Repeat("x", 90)
	done := make(chan struct{})
	go func() {
		for i := range total {
			s.log(logEntry{level: slog.LevelDebug, msg: line + strconv.Itoa(i)})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("logging waited for a blocked output")
	}
	close(rec.hold)
	if !s.flush(10 * time.Second) {
		t.Fatal("the queue was not written once the output moved")
	}
	got := rec.msgs()
	last := got[len(got)-1]
	var dropped int
	if _, err := fmt.Sscanf(last, "dropped %d log messages: the log output was blocked", &dropped); err != nil {
		t.Fatalf("last line %q: %v", last, err)
	}
	if written := len(got) - 1; written+dropped != total || dropped == 0 {
		t.Errorf("%d written + %d dropped, want %d in all, some dropped", written, dropped, total)
	}
	if max := logQueueBytes/len(line) + 2; len(got)-1 > max {
		t.Errorf("%d lines written, more than the queue holds (%d)", len(got)-1, max)
	}
	// Order is kept among the lines written.
	prev := -1
	for _, m := range got[:len(got)-1] {
		i, _ := strconv.Atoi(strings.TrimPrefix(m, line))
		if i <= prev {
			t.Fatalf("line %d after %d", i, prev)
		}
		prev = i
	}
	s.close(time.Second)
}

// TestLogCloseBounded: closing a sink whose output never moves returns
// after its timeout.
func TestLogCloseBounded(t *testing.T) {
	t.Parallel()
	rec := &recorder{hold: make(chan struct{})}
	defer close(rec.hold)
	s := newLineSink(rec.write)
	s.log(logEntry{level: slog.LevelInfo, msg: "stuck"})
	done := make(chan struct{})
	go func() { s.close(100 * time.Millisecond); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("close waited for a blocked output")
	}
}
