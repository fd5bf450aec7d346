package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gopmd/gopmd/epmd/client"
	"github.com/gopmd/gopmd/epmd/wire"
)

// The two attack workloads of the reliability doc (hostile clients that
// grow the daemon's memory or stall it), with the maximal registrations
// they need.

// maxNameChars is the length of a maximal node name in characters: 254,
// the longest that stock epmd can also look up (it registers 255 but
// cannot resolve it; docs/differences.md row 2).
const maxNameChars = wire.MaxNameChars - 1

// maxPad is the 4-byte character maximal names are padded with.
const maxPad = "\U00010000"

// maxName pads name (ASCII) to maxNameChars characters with 4-byte
// characters, so that it takes nearly wire.MaxSymLen bytes.
func maxName(name string) string {
	return name + strings.Repeat(maxPad, maxNameChars-len(name))
}

// maxExtra is the extra field of a maximal registration.
var maxExtra = strings.Repeat("x", wire.MaxSymLen)

// maxNode makes node maximal: the longest name and extra field.
func maxNode(node wire.Node) wire.Node {
	node.Name = maxName(node.Name)
	node.Extra = maxExtra
	return node
}

// memFigures are the daemon's memory figures of a hoard run, from
// /proc/PID/status (VmRSS, VmHWM) and /proc/net/sockstat (the kernel's
// TCP buffers, for the whole host).
type memFigures struct {
	RSSBeforeKiB  int64 `json:"rss_before_kib"`     // after the registrations, before the readers
	RSSPeakKiB    int64 `json:"rss_peak_kib"`       // highest VmRSS sampled while the readers held on
	RSSAfterKiB   int64 `json:"rss_after_kib"`      // settle time after the readers closed
	HWMKiB        int64 `json:"hwm_kib"`            // VmHWM at the end (since the daemon started)
	GrowthKiB     int64 `json:"growth_kib"`         // peak - before
	TCPMemBefore  int64 `json:"tcp_mem_kib_before"` // sockstat "TCP: mem", pages as KiB
	TCPMemPeak    int64 `json:"tcp_mem_kib_peak"`
	Samples       int   `json:"samples"`
	ReadersOpen   int   `json:"readers_open"`   // requests sent and left unread
	ReadersFailed int   `json:"readers_failed"` // connect or send failed
	Churned       int   `json:"churned"`        // table changes made before NAMES readers
	ChurnFailed   int   `json:"churn_failed"`
}

// idleFigures are the look-ups of a dumploop run measured without the
// DUMP loops, first.
type idleFigures struct {
	Ops    int64   `json:"ops"`
	Errors int64   `json:"errors"`
	P50us  float64 `json:"p50_us"`
	P99us  float64 `json:"p99_us"`
	MaxUs  float64 `json:"max_us"`
}

// hoardLoad opens f.Dump local DUMP readers and f.NamesReaders NAMES
// readers that never read their replies, each NAMES request preceded by a
// change of the table (a new maximal registration, closed once its reader
// is open), holds them f.SlowHold while look-ups run (c clients) and the
// daemon's VmRSS is sampled, then closes them and waits settle. The
// look-ups are the run's latencies.
func hoardLoad(ctx context.Context, cl *client.Client, t *target, f figure, prefix string, nodes int) (*loadResult, *memFigures) {
	m := &memFigures{}
	if t.Pid > 0 {
		if s, err := readMem(t.Pid); err == nil {
			m.RSSBeforeKiB = s.rss
			m.RSSPeakKiB = s.rss
		}
	}
	m.TCPMemBefore = tcpMemKiB()
	m.TCPMemPeak = m.TCPMemBefore

	// Sample VmRSS until the readers are closed.
	stopSampling := make(chan struct{})
	var samplerDone sync.WaitGroup
	var peakMu sync.Mutex
	if t.Pid > 0 {
		samplerDone.Add(1)
		go func() {
			defer samplerDone.Done()
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for {
				if s, err := readMem(t.Pid); err == nil {
					peakMu.Lock()
					m.RSSPeakKiB = max(m.RSSPeakKiB, s.rss)
					m.Samples++
					peakMu.Unlock()
				}
				if k := tcpMemKiB(); k > 0 {
					peakMu.Lock()
					m.TCPMemPeak = max(m.TCPMemPeak, k)
					peakMu.Unlock()
				}
				select {
				case <-stopSampling:
					return
				case <-tick.C:
				}
			}
		}()
	}

	// Open the readers, DUMP and NAMES alternately, and keep them.
	var conns []net.Conn
	var churn []*client.Registration
	churnFails := 0
	churnCl := *cl
	churnCl.Timeout = min(cl.Timeout, 2*time.Second)
	for i := 0; i < max(f.Dump, f.NamesReaders) && ctx.Err() == nil; i++ {
		if i < f.Dump {
			if c, err := unreadRequest(t.Addr, wire.TagDumpReq, f.Timeout); err == nil {
				conns = append(conns, c)
			} else {
				m.ReadersFailed++
			}
		}
		if i < f.NamesReaders {
			// Change the table first, so that this NAMES reply is a new
			// one. A daemon that has stopped answering makes each of
			// these wait its timeout: after three failures in a row the
			// rest go without.
			if churnFails < 3 {
				reg, err := churnCl.Register(ctx, maxNode(benchNode(prefix+"h"+strconv.Itoa(i), i)))
				if err == nil {
					churn = append(churn, reg)
					m.Churned++
					churnFails = 0
				} else {
					m.ChurnFailed++
					churnFails++
				}
			}
			if c, err := unreadRequest(t.Addr, wire.TagNamesReq, f.Timeout); err == nil {
				conns = append(conns, c)
			} else {
				m.ReadersFailed++
			}
			// The next change is the close of this registration.
			if n := len(churn); n > 1 {
				churn[n-2].Close()
			}
		}
	}
	m.ReadersOpen = len(conns)

	// Look-ups while the readers hold on.
	lf := f
	lf.Duration = f.SlowHold
	lr := lookupLoad(ctx, cl, lf, prefix, nodes)

	for _, c := range conns {
		c.Close()
	}
	closeAll(churn)
	close(stopSampling)
	samplerDone.Wait()
	if t.Pid > 0 {
		select {
		case <-ctx.Done():
		case <-time.After(f.Settle):
		}
		if s, err := readMem(t.Pid); err == nil {
			m.RSSAfterKiB = s.rss
			m.HWMKiB = s.hwm
		}
		m.GrowthKiB = m.RSSPeakKiB - m.RSSBeforeKiB
	}
	return lr, m
}

// unreadRequest connects with the smallest receive buffer, sends a
// request of one tag byte (NAMES, DUMP), and returns the connection
// without reading anything.
func unreadRequest(addr string, tag wire.Tag, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = setRcvBuf(fd, 1024)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	c.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte{0, 1, byte(tag)}); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// dumpLoopLoad measures look-ups twice: idle, then while f.Dump local
// clients ask DUMP in a loop, reading each reply to the end. The second
// phase is the run's latencies; the first is returned for comparison.
func dumpLoopLoad(ctx context.Context, cl *client.Client, f figure, prefix string, nodes int) (*loadResult, *idleFigures, int64) {
	idle := lookupLoad(ctx, cl, f, prefix, nodes)
	s := summarize(idle.lat)
	idf := &idleFigures{Ops: idle.ops, Errors: idle.errs.total(), P50us: us(s.P50), P99us: us(s.P99), MaxUs: us(s.Max)}

	stop := make(chan struct{})
	var dumps atomic.Int64
	var wg sync.WaitGroup
	// A DUMP of a large table takes long to read on a busy machine: the
	// loops get their own bound, not the look-ups' timeout.
	dcl := *cl
	dcl.Timeout = max(cl.Timeout, dumpLoopTimeout)
	for range f.Dump {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < 1_000_000; k++ {
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				if err := readDump(dcl.Addr, dcl.Timeout); err == nil {
					dumps.Add(1)
				} else {
					select {
					case <-stop:
						return
					case <-time.After(10 * time.Millisecond):
					}
				}
			}
		}()
	}
	// Let the loops start before measuring.
	time.Sleep(200 * time.Millisecond)
	lr := lookupLoad(ctx, cl, f, prefix, nodes)
	close(stop)
	wg.Wait()
	return lr, idf, dumps.Load()
}

// readDump asks addr for DUMP and reads the reply to its end, whatever its
// size (the client package stops at client.MaxReplySize, 16 MiB, below a
// DUMP of 19,000 maximal registrations).
func readDump(addr string, timeout time.Duration) error {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte{0, 1, byte(wire.TagDumpReq)}); err != nil {
		return err
	}
	n, err := io.Copy(io.Discard, c)
	if err == nil && n < 4 {
		err = fmt.Errorf("DUMP reply of %d bytes", n)
	}
	return err
}

// dumpLoopTimeout bounds each DUMP of a dumploop.
const dumpLoopTimeout = time.Minute

// memSample is a process's VmRSS and VmHWM, in KiB.
type memSample struct{ rss, hwm int64 }

func readMem(pid int) (memSample, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memSample{}, err
	}
	var s memSample
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmRSS":
			s.rss = n
		case "VmHWM":
			s.hwm = n
		}
	}
	if s.rss == 0 {
		return s, errors.New("no VmRSS")
	}
	return s, nil
}

// tcpMemKiB is the kernel's memory for TCP buffers, host-wide, from the
// "TCP: ... mem N" line of /proc/net/sockstat (N pages); 0 when unknown.
func tcpMemKiB() int64 {
	b, err := os.ReadFile("/proc/net/sockstat")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "TCP:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		for i := 0; i+1 < len(f); i += 2 {
			if f[i] == "mem" {
				n, _ := strconv.ParseInt(f[i+1], 10, 64)
				return n * int64(os.Getpagesize()) / 1024
			}
		}
	}
	return 0
}
