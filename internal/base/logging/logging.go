// Package logging builds the process's slog.Logger: human text on a
// terminal, JSON for machines, or native journald fields under systemd.
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/coreos/go-systemd/v22/journal"
)

// New returns a logger writing to w in the given format ("text", "json" or
// "journal") at the given level ("debug", "info", "warn", "error").
// "journal" falls back to text when journald is not reachable.
func New(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "journal":
		if !journal.Enabled() {
			return slog.New(slog.NewTextHandler(w, opts)), nil
		}
		return slog.New(&journalHandler{level: lvl}), nil
	}
	return nil, fmt.Errorf("log format %q: want text, json or journal", format)
}

// Discard returns l, or a logger that drops everything when l is nil, so
// components can take an optional logger.
func Discard(l *slog.Logger) *slog.Logger {
	if l != nil {
		return l
	}
	return slog.New(slog.DiscardHandler)
}

// journalHandler sends each record to journald with its attributes as
// structured fields (CAPTURE_DEVICE=..., VIEWER=...), so `journalctl
// VIEWER=phone` filters on them.
type journalHandler struct {
	level  slog.Level
	attrs  []slog.Attr
	prefix string
}

func (h *journalHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *journalHandler) Handle(_ context.Context, r slog.Record) error {
	vars := map[string]string{}
	for _, a := range h.attrs {
		addField(vars, "", a)
	}
	r.Attrs(func(a slog.Attr) bool {
		addField(vars, h.prefix, a)
		return true
	})
	return journal.Send(r.Message, priority(r.Level), vars)
}

func (h *journalHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr{}, h.attrs...), prefixed(h.prefix, attrs)...)
	return &c
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.prefix = h.prefix + name + "_"
	return &c
}

func prefixed(prefix string, attrs []slog.Attr) []slog.Attr {
	out := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		out[i] = slog.Attr{Key: prefix + a.Key, Value: a.Value}
	}
	return out
}

// addField maps an attribute to a journald field name: upper case, only
// A-Z, 0-9 and underscore, not starting with an underscore.
func addField(vars map[string]string, prefix string, a slog.Attr) {
	if a.Value.Kind() == slog.KindGroup {
		for _, g := range a.Value.Group() {
			addField(vars, prefix+a.Key+"_", g)
		}
		return
	}
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_':
			return r
		}
		return '_'
	}, prefix+a.Key)
	name = strings.TrimLeft(name, "_")
	if name == "" {
		return
	}
	vars[name] = a.Value.Resolve().String()
}

func priority(l slog.Level) journal.Priority {
	switch {
	case l >= slog.LevelError:
		return journal.PriErr
	case l >= slog.LevelWarn:
		return journal.PriWarning
	case l >= slog.LevelInfo:
		return journal.PriInfo
	}
	return journal.PriDebug
}
