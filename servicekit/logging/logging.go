// Package logging builds the *slog.Logger a plantlake service passes to its
// components: text or JSON on one writer, at a minimum level, tagged with
// the service name.
package logging

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
)

// ErrUnknownFormat is returned by New for a format other than "text" or "json".
var ErrUnknownFormat = errors.New("unknown log format")

// New returns a logger writing to w in format ("text" or "json") at level
// and above, with the attribute service=<service> on every record (none if
// service is empty).
func New(w io.Writer, format string, level slog.Leveler, service string) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch format {
	case "text":
		h = slog.NewTextHandler(w, opts)
	case "json":
		h = slog.NewJSONHandler(w, opts)
	default:
		return nil, fmt.Errorf("%w %q (want text or json)", ErrUnknownFormat, format)
	}
	logger := slog.New(h)
	if service != "" {
		logger = logger.With("service", service)
	}
	return logger, nil
}
