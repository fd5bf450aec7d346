//go:build unix

package main

import (
	"log/slog"
	"log/syslog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSyslogHandler: in the -daemon copy, messages go to syslog with the
// daemon facility, the tag "epmd" and a severity from their level.
func TestSyslogHandler(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "log")
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	w, err := syslog.Dial("unixgram", path, syslog.LOG_DAEMON|syslog.LOG_ERR, "epmd")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	log := slog.New(newSyslogHandler(w, levelFor(0)))
	log.Debug("not shown without -d")
	log.Info("request refused", "conn", 2, "reason", "duplicate_name")
	log.Error("error in accept")

	suffix := "epmd[" + strconv.Itoa(os.Getpid()) + "]: "
	for _, want := range []struct{ prio, msg string }{
		{"<30>", "request refused conn=2 reason=duplicate_name"}, // daemon.info
		{"<27>", "error in accept"},                              // daemon.err
	} {
		l.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 1024)
		n, err := l.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got := strings.TrimSuffix(string(buf[:n]), "\n")
		if !strings.HasPrefix(got, want.prio) || !strings.HasSuffix(got, suffix+want.msg) {
			t.Errorf("syslog message %q, want %s...%s%s", got, want.prio, suffix, want.msg)
		}
	}
}
