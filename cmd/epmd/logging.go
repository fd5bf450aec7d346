package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gopmd/gopmd/epmd/server"
)

// levelFor maps the number of -d options to the lowest level logged.
// Without -d the daemon logs Info and above: refusals and protocol errors,
// which stock epmd prints at its level 0.
func levelFor(debug int) slog.Level {
	switch {
	case debug <= 0:
		return slog.LevelInfo
	case debug == 1:
		return slog.LevelDebug
	case debug == 2:
		return server.LevelConn
	}
	return server.LevelTrace
}

// ctimeLayout is C's ctime() without its newline, as stock epmd prints it.
const ctimeLayout = "Mon Jan _2 15:04:05 2006"

// lineHandler is a slog.Handler that writes one line per record in stock
// epmd's format, so logs read (and scrape) as before:
//
//	epmd: Sun Nov 22 09:11:12 2026: message key=value ...\r\n
//
// on a terminal (stock ends its lines with CRLF), and "message key=value"
// to syslog, where the time and tag come from syslog itself.
//
// Logging cannot hurt the daemon: records go through a lineSink, which
// rate-limits the messages shown without -d and never blocks its caller
// (see lineSink).
type lineHandler struct {
	level slog.Leveler
	out   *lineSink
	attrs string // preformatted " key=value" pairs from WithAttrs
	group string // key prefix from WithGroup, "g." style
}

func newStderrHandler(w io.Writer, level slog.Level) *lineHandler {
	return &lineHandler{level: level, out: newLineSink(func(e logEntry) error {
		_, err := io.WriteString(w, "epmd: "+e.time.Format(ctimeLayout)+": "+e.msg+"\r\n")
		return err
	})}
}

// newJournalHandler writes to w, a stream connected to the systemd journal,
// one "<priority>message\n" line per record: journald takes the priority
// from the prefix and adds the time, host and "epmd[pid]" itself.
func newJournalHandler(w io.Writer, level slog.Level) *lineHandler {
	return &lineHandler{level: level, out: newLineSink(func(e logEntry) error {
		_, err := io.WriteString(w, "<"+strconv.Itoa(int(priority(e.level)))+">"+e.msg+"\n")
		return err
	})}
}

func newSyslogHandler(w syslogWriter, level slog.Level) *lineHandler {
	return &lineHandler{level: level, out: newLineSink(func(e logEntry) error {
		switch priority(e.level) {
		case logErr:
			return w.Err(e.msg)
		case logWarning:
			return w.Warning(e.msg)
		case logInfo:
			return w.Info(e.msg)
		}
		return w.Debug(e.msg)
	})}
}

// close writes what is still queued, waiting at most timeout for a
// blocked output, and stops the sink's writer.
func (h *lineHandler) close(timeout time.Duration) { h.out.close(timeout) }

func (h *lineHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.level.Level()
}

func (h *lineHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	b.WriteString(h.attrs)
	r.Attrs(func(a slog.Attr) bool {
		appendAttr(&b, h.group, a)
		return true
	})
	t := r.Time
	if t.IsZero() {
		t = time.Now()
	}
	h.out.log(logEntry{level: r.Level, time: t, msg: b.String()})
	return nil
}

func (h *lineHandler) WithAttrs(as []slog.Attr) slog.Handler {
	var b strings.Builder
	for _, a := range as {
		appendAttr(&b, h.group, a)
	}
	h2 := *h
	h2.attrs += b.String()
	return &h2
}

func (h *lineHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.group += name + "."
	return &h2
}

// appendAttr writes " key=value", quoting the value when it has spaces,
// quotes, '=' or anything unprintable (as slog's text handler does).
func appendAttr(b *strings.Builder, prefix string, a slog.Attr) {
	v := a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if v.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, ga := range v.Group() {
			appendAttr(b, p, ga)
		}
		return
	}
	b.WriteByte(' ')
	b.WriteString(prefix + a.Key)
	b.WriteByte('=')
	s := v.String()
	if needsQuote(s) {
		s = strconv.Quote(s)
	}
	b.WriteString(s)
}

func needsQuote(s string) bool {
	if s == "" {
		return true
	}
	for _, r := range s {
		if r == utf8.RuneError || r == '"' || r == '=' || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return true
		}
	}
	return false
}

// priority is the syslog severity of a level, as the syslog and journal
// sinks use it: errors LOG_ERR, warnings LOG_WARNING, Info (refusals,
// protocol errors, shutdown: stock's level-0 messages) LOG_INFO, and the
// -d levels LOG_DEBUG.
func priority(l slog.Level) int {
	switch {
	case l >= slog.LevelError:
		return logErr
	case l >= slog.LevelWarn:
		return logWarning
	case l >= slog.LevelInfo:
		return logInfo
	}
	return logDebug
}

// Syslog severities (RFC 5424), the same on every system.
const (
	logErr     = 3
	logWarning = 4
	logInfo    = 6
	logDebug   = 7
)

// isJournal reports whether w is the stream that $JOURNAL_STREAM
// ("DEVICE:INODE", set by systemd for a service whose stderr goes to the
// journal) describes. A child with a redirected stderr inherits the
// variable, so the device and inode must match.
func isJournal(w io.Writer, getenv func(string) (string, bool)) bool {
	js, ok := getenv("JOURNAL_STREAM")
	if !ok {
		return false
	}
	dev, ino, ok := strings.Cut(js, ":")
	if !ok {
		return false
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	d, i, ok := fileID(fi)
	return ok && strconv.FormatUint(d, 10) == dev && strconv.FormatUint(i, 10) == ino
}
