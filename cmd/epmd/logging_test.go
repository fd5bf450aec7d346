package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/gopmd/gopmd/epmd/server"
)

// TestLevels: the lowest level each number of -d options lets through.
func TestLevels(t *testing.T) {
	t.Parallel()
	all := []slog.Level{slog.LevelError, slog.LevelWarn, slog.LevelInfo, slog.LevelDebug, server.LevelConn, server.LevelTrace}
	for _, tc := range []struct {
		debug  int
		lowest slog.Level
	}{
		{0, slog.LevelInfo}, // errors, refusals, shutdown
		{1, slog.LevelDebug},
		{2, server.LevelConn},
		{3, server.LevelTrace},
		{7, server.LevelTrace},
	} {
		var buf bytes.Buffer
		h := newStderrHandler(&buf, levelFor(tc.debug))
		log := slog.New(h)
		want := 0
		for _, l := range all {
			log.Log(t.Context(), l, "at "+l.String())
			if l >= tc.lowest {
				want++
			}
		}
		h.close(5 * time.Second)
		if got := strings.Count(buf.String(), "\r\n"); got != want {
			t.Errorf("%d x -d: %d lines, want %d:\n%s", tc.debug, got, want, buf.String())
		}
	}
}

// TestLineFormat: stock's stderr line, one per message, attributes as
// key=value, quoted when needed.
func TestLineFormat(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	h := newStderrHandler(&buf, slog.LevelInfo)
	log := slog.New(h)
	log.Info("request refused", "conn", 2, "reason", "duplicate_name", "detail", "node name already occupied alpha")
	h.out.flush(5 * time.Second)
	got := stockTime.ReplaceAllString(buf.String(), "epmd: TIME: ")
	want := "epmd: TIME: request refused conn=2 reason=duplicate_name detail=\"node name already occupied alpha\"\r\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	buf.Reset()
	log.Info("registered node", "name", "a\nb")
	h.close(5 * time.Second)
	if strings.Count(buf.String(), "\n") != 1 {
		t.Errorf("a newline in a value split the line: %q", buf.String())
	}
}
