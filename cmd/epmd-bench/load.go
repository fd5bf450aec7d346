package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gopmd/gopmd/epmd/client"
)

// latencySummary condenses a run's latencies (successful operations only).
type latencySummary struct {
	Count int
	P50   time.Duration
	P99   time.Duration
	Max   time.Duration
	Mean  time.Duration
}

// summarize sorts lat in place and returns its nearest-rank percentiles.
func summarize(lat []time.Duration) latencySummary {
	if len(lat) == 0 {
		return latencySummary{}
	}
	slices.Sort(lat)
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	return latencySummary{
		Count: len(lat),
		P50:   percentile(lat, 50),
		P99:   percentile(lat, 99),
		Max:   lat[len(lat)-1],
		Mean:  sum / time.Duration(len(lat)),
	}
}

// percentile returns the nearest-rank p-th percentile of sorted values:
// the smallest value with at least p% of the values at or below it.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(sorted))+0.999999999) - 1
	rank = max(0, min(rank, len(sorted)-1))
	return sorted[rank]
}

// errTally counts errors by kind and keeps one example of each.
type errTally struct {
	mu      sync.Mutex
	counts  map[string]int64
	example map[string]string
}

func newErrTally() *errTally {
	return &errTally{counts: map[string]int64{}, example: map[string]string{}}
}

func (t *errTally) add(err error) {
	k := errKind(err)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.counts[k]++
	if _, ok := t.example[k]; !ok {
		msg := err.Error()
		if len(msg) > 200 {
			msg = msg[:200] + "..."
		}
		t.example[k] = msg
	}
}

func (t *errTally) total() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var n int64
	for _, c := range t.counts {
		n += c
	}
	return n
}

// snapshot returns copies of the counts and examples.
func (t *errTally) snapshot() (map[string]int64, map[string]string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return copyMap(t.counts), copyMap(t.example)
}

func copyMap[V any](m map[string]V) map[string]V {
	if len(m) == 0 {
		return nil
	}
	c := make(map[string]V, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// errKind classifies an error for the report.
func errKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, client.ErrRefused):
		return "registration refused"
	case errors.Is(err, client.ErrNotFound):
		return "not found"
	case errors.Is(err, client.ErrClosed):
		return "closed by daemon"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection reset"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "out of file descriptors"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "out of local ports"
	case errors.Is(err, errCheck):
		return "wrong reply"
	}
	s := err.Error()
	if i := strings.IndexByte(s, ':'); i > 0 && i < 40 {
		s = s[:i]
	}
	return s
}

// errCheck marks a reply that arrived but says the wrong thing (a look-up
// of a registered node answered "not found", a NAMES reply missing nodes).
var errCheck = errors.New("wrong reply")

func checkErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errCheck, fmt.Sprintf(format, args...))
}

// loadSpec bounds a load phase.
type loadSpec struct {
	conc        int           // concurrent workers
	n           int64         // operations to start at most
	dur         time.Duration // no operation starts after this much time
	stopOnError bool          // the first failure stops every worker
}

// loadResult is what a load phase measured.
type loadResult struct {
	lat     []time.Duration // successful operations
	ops     int64           // successful operations
	retries int64
	errs    *errTally
	elapsed time.Duration // start to the end of the last operation
	stopped error         // the failure that stopped the phase (stopOnError)
}

// opFunc performs one operation. worker is the worker's index, seq the
// operation's number (0, 1, ...). It returns how many times it had to
// retry and its error.
type opFunc func(ctx context.Context, worker int, seq int64) (retries int, err error)

// runLoad runs op from spec.conc workers until spec.n operations have been
// started, spec.dur has passed, or ctx is done. Operations that are running
// when the time is up finish (each bounded by its own timeout), so a stall
// shows up in the latencies rather than being cut off. Operations that fail
// because ctx was cancelled (the user interrupted the tool) are not counted.
func runLoad(ctx context.Context, spec loadSpec, op opFunc) *loadResult {
	res := &loadResult{errs: newErrTally()}
	var next, ops, retries atomic.Int64
	var stop atomic.Bool
	var stopOnce sync.Once
	start := time.Now()
	deadline := start.Add(spec.dur)
	lats := make([][]time.Duration, spec.conc)
	var wg sync.WaitGroup
	for w := range spec.conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			capHint := min(spec.n/int64(spec.conc)+1, 1<<16)
			lat := make([]time.Duration, 0, capHint)
			for !stop.Load() && ctx.Err() == nil && time.Now().Before(deadline) {
				seq := next.Add(1) - 1
				if seq >= spec.n {
					break
				}
				t0 := time.Now()
				r, err := op(ctx, w, seq)
				d := time.Since(t0)
				retries.Add(int64(r))
				if err != nil {
					if ctx.Err() != nil {
						break
					}
					res.errs.add(err)
					if spec.stopOnError {
						stopOnce.Do(func() { res.stopped = err })
						stop.Store(true)
					}
					continue
				}
				lat = append(lat, d)
				ops.Add(1)
			}
			lats[w] = lat
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.ops = ops.Load()
	res.retries = retries.Load()
	total := 0
	for _, l := range lats {
		total += len(l)
	}
	res.lat = make([]time.Duration, 0, total)
	for _, l := range lats {
		res.lat = append(res.lat, l...)
	}
	return res
}
