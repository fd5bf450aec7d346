package main

import (
	"cmp"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Limits of what the log may cost. Every level-0 message (shown without
// -d: refusals, protocol errors, shutdown) is written up to logBurst in a
// row; after that, one a logEvery; the others are counted, and their count
// is logged once the flood has lasted logSummaryAfter (then again each
// logSummaryAfter while it goes on) and at exit. A flood of aborted
// connections thus writes at most logBurst lines, then one line per
// second and a summary every 10 s, where stock writes one line per
// connection. The -d levels are not limited (they were asked for).
//
// Lines wait for the output in a queue of at most logQueueBytes; a line
// that does not fit (the output is blocked: a stderr pipe nobody reads, a
// stuck syslog) is dropped and counted, never waited for, and the count is
// logged once the output takes lines again.
const (
	logBurst        = 100
	logEvery        = time.Second
	logSummaryAfter = 10 * time.Second
	logQueueBytes   = 64 << 10
	logSummaryKinds = 4 // kinds of suppressed messages named in a summary
)

// levelNotice is the level of the daemon's own messages about its life
// ("terminating on SIGTERM"): logged as Info, never rate-limited.
const levelNotice = slog.LevelInfo + 2

// logEntry is one line to write.
type logEntry struct {
	level slog.Level
	time  time.Time
	msg   string
}

// lineSink queues lines for one writer goroutine, which writes them with
// write; the daemon never waits for its log output.
type lineSink struct {
	write func(logEntry) error
	now   func() time.Time

	mu      sync.Mutex
	queue   []logEntry
	bytes   int  // sum of the queued messages' lengths
	writing bool // the writer holds entries taken from the queue
	started bool
	closed  bool
	wake    chan struct{}   // cap 1: the queue has entries, or closed
	idle    []chan struct{} // closed when the queue is next empty and nothing is being written
	dropped int             // lines dropped since the last report

	// Rate limit of level-0 messages: a token bucket of logBurst tokens
	// refilled at one per logEvery.
	tokens     float64
	refilled   time.Time
	suppressed int            // messages suppressed since the last summary
	since      time.Time      // when the first of them was
	kinds      map[string]int // their counts by kind (see msgKind)
	summary    *time.Timer    // pending summary
}

func newLineSink(write func(logEntry) error) *lineSink {
	return &lineSink{write: write, now: time.Now, tokens: logBurst, wake: make(chan struct{}, 1)}
}

// log queues e unless the rate limit suppresses it or the queue is full.
func (s *lineSink) log(e logEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if e.level >= slog.LevelInfo && e.level != levelNotice && !s.allowLocked(e.msg) {
		return
	}
	s.enqueueLocked(e)
}

// allowLocked takes a token for a level-0 message, or counts it as
// suppressed and makes sure a summary will say so.
func (s *lineSink) allowLocked(msg string) bool {
	now := s.now()
	if s.refilled.IsZero() {
		s.refilled = now
	}
	if d := now.Sub(s.refilled); d > 0 {
		s.tokens = min(logBurst, s.tokens+float64(d)/float64(logEvery))
		s.refilled = now
	}
	if s.tokens >= 1 {
		s.tokens--
		return true
	}
	if s.suppressed == 0 {
		s.since = now
		s.kinds = map[string]int{}
		s.summary = time.AfterFunc(logSummaryAfter, s.summarize)
	}
	s.suppressed++
	k := msgKind(msg)
	if _, ok := s.kinds[k]; ok || len(s.kinds) < logSummaryKinds {
		s.kinds[k]++
	} else {
		s.kinds[""]++
	}
	return false
}

// summarize logs the count of suppressed messages (called by the summary
// timer, and at close).
func (s *lineSink) summarize() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.summarizeLocked()
}

func (s *lineSink) summarizeLocked() {
	if s.suppressed == 0 {
		return
	}
	now := s.now()
	var b strings.Builder
	b.WriteString("suppressed " + strconv.Itoa(s.suppressed) + " log messages in " +
		now.Sub(s.since).Round(time.Second).String() + " (more than " + strconv.Itoa(logBurst) +
		" in a row, then one a second):")
	named := make([]string, 0, len(s.kinds))
	for k := range s.kinds {
		if k != "" {
			named = append(named, k)
		}
	}
	// Largest counts first, then by kind, so the line is deterministic.
	slices.SortFunc(named, func(a, b string) int {
		if c := cmp.Compare(s.kinds[b], s.kinds[a]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	for i, k := range named {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(" " + strconv.Itoa(s.kinds[k]) + " " + strconv.Quote(k))
	}
	if n := s.kinds[""]; n > 0 {
		b.WriteString(", " + strconv.Itoa(n) + " others")
	}
	s.suppressed = 0
	s.kinds = nil
	if s.summary != nil {
		s.summary.Stop()
		s.summary = nil
	}
	s.enqueueLocked(logEntry{level: slog.LevelInfo, time: now, msg: b.String()})
}

// enqueueLocked queues e for the writer, or drops and counts it when the
// queue is full.
func (s *lineSink) enqueueLocked(e logEntry) {
	if s.closed {
		return
	}
	if s.bytes+len(e.msg) > logQueueBytes {
		s.dropped++
		return
	}
	s.queue = append(s.queue, e)
	s.bytes += len(e.msg)
	if !s.started {
		s.started = true
		go s.run()
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// run is the writer goroutine: it writes the queue in order, then reports
// what was dropped while it was blocked.
func (s *lineSink) run() {
	for range s.wake {
		for {
			s.mu.Lock()
			if len(s.queue) == 0 && s.dropped > 0 {
				n := s.dropped
				s.dropped = 0
				s.queue = append(s.queue, logEntry{level: slog.LevelWarn, time: s.now(),
					msg: "dropped " + strconv.Itoa(n) + " log messages: the log output was blocked"})
			}
			// The batch's bytes stay counted until it is written, so
			// that the queue and the batch together hold at most
			// logQueueBytes.
			batch := s.queue
			s.queue = nil
			s.writing = len(batch) > 0
			if len(batch) == 0 {
				for _, c := range s.idle {
					close(c)
				}
				s.idle = nil
				closed := s.closed
				s.mu.Unlock()
				if closed {
					return
				}
				break
			}
			s.mu.Unlock()
			n := 0
			for _, e := range batch {
				s.write(e) // a failed write is lost, as stock's is
				n += len(e.msg)
			}
			s.mu.Lock()
			s.bytes -= n
			s.mu.Unlock()
		}
	}
}

// flush waits until everything queued so far is written, at most timeout.
func (s *lineSink) flush(timeout time.Duration) bool {
	s.mu.Lock()
	if len(s.queue) == 0 && !s.writing && s.dropped == 0 {
		s.mu.Unlock()
		return true
	}
	c := make(chan struct{})
	s.idle = append(s.idle, c)
	s.mu.Unlock()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-c:
		return true
	case <-t.C:
		return false
	}
}

// close logs the pending summary, writes the queue (waiting at most
// timeout for a blocked output) and stops the writer; later messages are
// discarded.
func (s *lineSink) close(timeout time.Duration) {
	s.summarize()
	s.flush(timeout)
	s.mu.Lock()
	s.closed = true
	if s.started {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	s.mu.Unlock()
}

// msgKind is what a suppressed message is counted under in a summary: its
// first four words, with each run of digits masked as "#", so that "got partial packet only on
// file descriptor 7 (2)" and "... 9 (3)" count together.
func msgKind(msg string) string {
	words := strings.Fields(msg)
	if len(words) > 4 {
		words = words[:4]
	}
	k := strings.Join(words, " ")
	var b strings.Builder
	for i, r := range k {
		switch {
		case r < '0' || r > '9':
			b.WriteRune(r)
		case i == 0 || k[i-1] < '0' || k[i-1] > '9':
			b.WriteByte('#')
		}
	}
	return b.String()
}
