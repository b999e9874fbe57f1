package logging

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	tests := []struct {
		format, level string
		wantErr       bool
	}{
		{"text", "info", false},
		{"json", "debug", false},
		{"journal", "warn", false},
		{"xml", "info", true},
		{"text", "loud", true},
	}
	for _, tt := range tests {
		_, err := New(&bytes.Buffer{}, tt.format, tt.level)
		if (err != nil) != tt.wantErr {
			t.Errorf("New(%q, %q) error = %v, wantErr %v", tt.format, tt.level, err, tt.wantErr)
		}
	}
}

func TestJSONLevelFilter(t *testing.T) {
	var buf bytes.Buffer
	l, _ := New(&buf, "json", "warn")
	l.Info("hidden")
	l.Warn("shown", "viewer", "phone")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("got %d lines, want 1: %q", len(lines), buf.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil || rec["viewer"] != "phone" {
		t.Fatalf("bad record %q: %v", lines[0], err)
	}
}

func TestJournalFieldNames(t *testing.T) {
	vars := map[string]string{}
	addField(vars, "", slog.String("capture.device", "/dev/video0"))
	addField(vars, "", slog.Group("peer", slog.Int("port", 4433)))
	addField(vars, "", slog.String("_hidden", "x"))
	want := map[string]string{"CAPTURE_DEVICE": "/dev/video0", "PEER_PORT": "4433", "HIDDEN": "x"}
	for k, v := range want {
		if vars[k] != v {
			t.Errorf("field %s = %q, want %q (all: %v)", k, vars[k], v, vars)
		}
	}
}
