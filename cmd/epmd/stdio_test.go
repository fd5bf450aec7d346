//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// writeLog records the size of every write it gets, and the bytes.
type writeLog struct {
	sizes []int
	all   bytes.Buffer
}

func (w *writeLog) Write(p []byte) (int, error) {
	w.sizes = append(w.sizes, len(p))
	return w.all.Write(p)
}

// TestCStdoutPolicy pins the write sizes glibc's stdout produces for
// sequences of writes (the figures follow _IO_new_file_xsputn: see
// cStdout), in both modes.
func TestCStdoutPolicy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		size    int
		lineBuf bool
		writes  []int  // sizes of the writes made (no newlines)
		text    string // then writes of these "|"-separated strings
		want    []int  // sizes of the writes that reach the file, Flush included
	}{
		{name: "small_writes_one_flush", size: 4096, writes: []int{46, 25, 25}, want: []int{96}},
		{name: "header_then_blocks", size: 4096, writes: []int{46, 3060, 3060, 3060, 3060, 2304},
			want: []int{4096, 4096, 4096, 2302}},
		{name: "first_write_blocks_go_direct", size: 4096, writes: []int{10000}, want: []int{8192, 1808}},
		{name: "exact_fill_waits", size: 4096, writes: []int{4096}, want: []int{4096}},
		{name: "fill_then_one_more", size: 4096, writes: []int{100, 3996, 1}, want: []int{4096, 1}},
		{name: "overflow_writes_blocks_direct", size: 4096, writes: []int{100, 9000}, want: []int{4096, 4096, 908}},
		{name: "bufsiz", size: bufsiz, writes: []int{46, 3060, 3060, 3060}, want: []int{8192, 1034}},
		{name: "nothing", size: 4096, want: nil},
		{name: "line_no_newline_kept", size: 1024, lineBuf: true, text: "epmd: up|and", want: []int{11}},
		{name: "line_flushes_at_last_newline", size: 1024, lineBuf: true,
			text: "header\n|name a\nname b\npartial", want: []int{7, 14, 7}},
		{name: "line_kept_text_joins_next_line", size: 1024, lineBuf: true,
			text: "name |a\n", want: []int{7}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &writeLog{}
			c := &cStdout{w: w, allocate: func() (int, bool) { return tc.size, tc.lineBuf }}
			var want bytes.Buffer
			put := func(p []byte) {
				want.Write(p)
				if n, err := c.Write(p); n != len(p) || err != nil {
					t.Fatalf("Write(%d bytes) = %d, %v", len(p), n, err)
				}
			}
			for i, n := range tc.writes {
				put(bytes.Repeat([]byte{byte('a' + i)}, n))
			}
			if tc.text != "" {
				for _, s := range strings.Split(tc.text, "|") {
					put([]byte(s))
				}
			}
			if err := c.Flush(); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, w.sizes); diff != "" {
				t.Errorf("write sizes (-want +got):\n%s", diff)
			}
			if !bytes.Equal(w.all.Bytes(), want.Bytes()) {
				t.Errorf("bytes out differ from bytes in")
			}
		})
	}
}

// TestCStdoutLineBufferedKeepsPartialLine: before Flush, a line-buffered
// stream has written out whole lines only.
func TestCStdoutLineBufferedKeepsPartialLine(t *testing.T) {
	t.Parallel()
	w := &writeLog{}
	c := &cStdout{w: w, allocate: func() (int, bool) { return 1024, true }}
	c.Write([]byte("epmd: up and running on port 4369 with data:\n"))
	c.Write([]byte("name a at port 1\nname b"))
	if got := w.all.String(); got != "epmd: up and running on port 4369 with data:\nname a at port 1\n" {
		t.Errorf("written before Flush: %q", got)
	}
	c.Flush()
	if got := w.all.String(); !strings.HasSuffix(got, "\nname b") {
		t.Errorf("Flush did not write the partial line: %q", got)
	}
}

// TestStdioMode: glibc's buffer for a pipe is its st_blksize (4096 on
// Linux), and a terminal is line-buffered.
func TestStdioMode(t *testing.T) {
	t.Parallel()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(w.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	wantSize := bufsiz
	if st.Blksize > 0 && st.Blksize < bufsiz {
		wantSize = int(st.Blksize)
	}
	if size, line := stdioMode(w); size != wantSize || line {
		t.Errorf("pipe: size %d, line-buffered %v; want %d, false", size, line, wantSize)
	}
	if size, line := stdioMode(&bytes.Buffer{}); size != bufsiz || line {
		t.Errorf("buffer: size %d, line-buffered %v; want %d, false", size, line, bufsiz)
	}
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	if _, line := stdioMode(devNull); line {
		t.Error("/dev/null (a character device, not a terminal) is line-buffered")
	}
	pty, tty := openPty(t)
	if pty == nil {
		return
	}
	defer pty.Close()
	defer tty.Close()
	if _, line := stdioMode(tty); !line {
		t.Error("a terminal is not line-buffered")
	}
}

// openPty opens a pseudo-terminal pair, or skips when there is none.
func openPty(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		t.Skipf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		m.Close()
		t.Skipf("ptsname: %v", err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Skipf("opening the terminal: %v", err)
	}
	return m, s
}

// cliWrites runs bin with args and its stdout on a SOCK_SEQPACKET socket,
// which keeps the boundary of every write(2): it returns the size of each
// write the command made, and the bytes.
func cliWrites(t *testing.T, bin string, args ...string) ([]int, string) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	rd, wr := os.NewFile(uintptr(fds[0]), "stdout-reader"), os.NewFile(uintptr(fds[1]), "stdout")
	defer rd.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = baseEnv()
	cmd.Stdout = wr
	if err := cmd.Start(); err != nil {
		wr.Close()
		t.Fatal(err)
	}
	wr.Close()
	var sizes []int
	var all strings.Builder
	buf := make([]byte, 1<<16)
	for {
		n, err := rd.Read(buf)
		if n > 0 {
			sizes = append(sizes, n)
			all.Write(buf[:n])
		}
		if err != nil || n == 0 {
			break
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%s %q: %v", bin, args, err)
	}
	return sizes, all.String()
}

// TestCLIWritesAsStock runs -names and -dump of ours and of stock, with
// stdout on a socket that keeps write boundaries, against one daemon: both
// must make the same writes. With few nodes the whole output is one write
// (OTP's epmd_SUITE names_stdout reads just one chunk of it); with many,
// it comes in buffer-sized blocks.
func TestCLIWritesAsStock(t *testing.T) {
	t.Parallel()
	needStock(t)
	for _, nodes := range []int{2, 150} {
		t.Run(fmt.Sprintf("%d_nodes", nodes), func(t *testing.T) {
			t.Parallel()
			_, port := startDaemon(t, ourBin, nil)
			for i := range nodes {
				register(t, port, fmt.Sprintf("node_with_a_longish_name_%04d", i), uint16(10000+i))
			}
			for _, req := range []string{"-names", "-dump"} {
				oursSizes, oursOut := cliWrites(t, ourBin, "-port", strconv.Itoa(port), req)
				stockSizes, stockOut := cliWrites(t, stockBin, "-port", strconv.Itoa(port), req)
				if oursOut != stockOut {
					t.Errorf("%s: output differs from stock's", req)
				}
				if diff := cmp.Diff(stockSizes, oursSizes); diff != "" {
					t.Errorf("%s: write sizes (-stock +ours):\n%s", req, diff)
				}
				if nodes == 2 && len(oursSizes) != 1 {
					t.Errorf("%s: %d writes for a short output, want 1", req, len(oursSizes))
				}
				if nodes > 100 && len(oursSizes) < 2 {
					t.Errorf("%s: %d write(s) for %d bytes, want several", req, len(oursSizes), len(oursOut))
				}
			}
		})
	}
}

// TestCLIOneChunkOnPipe is OTP epmd_SUITE's names_stdout check: the
// first read from a pipe holds the header and the node line.
func TestCLIOneChunkOnPipe(t *testing.T) {
	t.Parallel()
	_, port := startDaemon(t, ourBin, nil)
	register(t, port, "alpha", 5555)
	for range 20 {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(ourBin, "-port", strconv.Itoa(port), "-names")
		cmd.Env = baseEnv()
		cmd.Stdout = w
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		w.Close()
		buf := make([]byte, 4096)
		n, _ := r.Read(buf)
		cmd.Wait()
		r.Close()
		want := "epmd: up and running on port " + strconv.Itoa(port) + " with data:\nname alpha at port 5555\n"
		if got := string(buf[:n]); got != want {
			t.Fatalf("first read from the pipe: %q, want %q", got, want)
		}
	}
}
