package logging

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	tests := []struct {
		name     string
		format   string
		level    slog.Level
		wantText string // substring of the output after one Info and one Debug record
		wantNot  string // substring that must not appear
	}{
		{name: "text info", format: "text", level: slog.LevelInfo, wantText: `level=INFO msg=hello service=svc n=1`, wantNot: "dropped"},
		{name: "text debug", format: "text", level: slog.LevelDebug, wantText: `msg=dropped`},
		{name: "json", format: "json", level: slog.LevelInfo, wantText: `"msg":"hello","service":"svc","n":1`, wantNot: "dropped"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			logger, err := New(&buf, tt.format, tt.level, "svc")
			if err != nil {
				t.Fatal(err)
			}
			logger.Info("hello", "n", 1)
			logger.Debug("dropped")
			out := buf.String()
			if !strings.Contains(out, tt.wantText) {
				t.Errorf("output %q lacks %q", out, tt.wantText)
			}
			if tt.wantNot != "" && strings.Contains(out, tt.wantNot) {
				t.Errorf("output %q has %q", out, tt.wantNot)
			}
		})
	}
}

func TestNewUnknownFormat(t *testing.T) {
	if _, err := New(&bytes.Buffer{}, "xml", slog.LevelInfo, "svc"); !errors.Is(err, ErrUnknownFormat) {
		t.Fatalf("New(xml) error = %v, want ErrUnknownFormat", err)
	}
}

func TestNewJSONIsValid(t *testing.T) {
	var buf bytes.Buffer
	logger, err := New(&buf, "json", slog.LevelInfo, "")
	if err != nil {
		t.Fatal(err)
	}
	logger.Warn("x", "k", "v")
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("output %q is not JSON: %v", buf.String(), err)
	}
	if rec["level"] != "WARN" || rec["k"] != "v" {
		t.Errorf("record = %v", rec)
	}
	if _, ok := rec["service"]; ok {
		t.Errorf("record has a service attribute with an empty service name: %v", rec)
	}
}
