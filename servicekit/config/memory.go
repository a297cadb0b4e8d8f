package config

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime/debug"
)

// Memory is a service's settings for the Go runtime's memory: the soft
// limit of the heap and how far the heap grows past what is live before the
// collector runs. A service whose live heap is small (a batch in flight)
// spends a tenth of its CPU collecting at Go's default of 100 %; a higher
// percentage trades memory the service does not need for that CPU, and the
// limit keeps the trade inside the service's memory budget (the collector
// works harder near it instead of letting the heap grow past it).
type Memory struct {
	// Limit is the soft memory limit in bytes (--memory-limit); 0, or
	// GOMEMLIMIT in the environment, leaves the runtime's own setting.
	Limit int64
	// GCPercent is the collector's target heap growth in percent
	// (--gc-percent); 0, or GOGC in the environment, leaves the runtime's
	// own setting (100).
	GCPercent int
}

// Register adds --memory-limit and --gc-percent to fs with the given
// defaults.
func (m *Memory) Register(fs *flag.FlagSet, limit int64, gcPercent int) {
	fs.Int64Var(&m.Limit, "memory-limit", limit, "soft limit of the Go runtime's memory in bytes (0 or GOMEMLIMIT set: the runtime's default)")
	fs.IntVar(&m.GCPercent, "gc-percent", gcPercent, "heap growth past the live heap, in percent, before the garbage collector runs (0 or GOGC set: the runtime's default of 100)")
}

// ErrInvalidMemory is wrapped by Validate's errors.
var ErrInvalidMemory = errors.New("invalid memory setting")

// Validate checks the settings.
func (m Memory) Validate() error {
	var errs []error
	if m.Limit < 0 {
		errs = append(errs, fmt.Errorf("%w: --memory-limit: %d is negative", ErrInvalidMemory, m.Limit))
	}
	if m.GCPercent < 0 {
		errs = append(errs, fmt.Errorf("%w: --gc-percent: %d is negative", ErrInvalidMemory, m.GCPercent))
	}
	return errors.Join(errs...)
}

// Apply sets the runtime's soft memory limit and collector percentage,
// each unless it is 0 or the runtime's own variable (GOMEMLIMIT, GOGC) is
// set in the environment: an operator's variable wins.
func (m Memory) Apply() {
	if _, set := os.LookupEnv("GOMEMLIMIT"); m.Limit > 0 && !set {
		debug.SetMemoryLimit(m.Limit)
	}
	if _, set := os.LookupEnv("GOGC"); m.GCPercent > 0 && !set {
		debug.SetGCPercent(m.GCPercent)
	}
}
