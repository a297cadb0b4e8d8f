// Package maintenance decides when a table needs checkpoints, log cleanup,
// compaction and vacuum, and runs that work in the background, coalesced per
// table and off the commit path.
package maintenance

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Table properties the policy reads, with Delta's names where Delta has one.
const (
	PropCheckpointInterval   = "delta.checkpointInterval"
	PropLogRetention         = "delta.logRetentionDuration"
	PropDeletedFileRetention = "delta.deletedFileRetentionDuration"
	PropExpiredLogCleanup    = "delta.enableExpiredLogCleanup"
	PropOptimizeMinFiles     = "plantlake.autoOptimize.minFiles"
	PropOptimizeTargetSize   = "plantlake.autoOptimize.targetFileSize"
	PropVacuumInterval       = "plantlake.autoVacuum.interval"
	// PropOptimizeSortBy names the columns (comma-separated) compaction
	// orders a compacted file's rows by; none when absent.
	PropOptimizeSortBy = "plantlake.autoOptimize.sortBy"
)

// ErrBadProperty is returned (wrapped, naming the property) for a property
// value the policy cannot parse.
var ErrBadProperty = errors.New("bad table property")

// Policy is a table's maintenance policy.
type Policy struct {
	// CheckpointInterval: write a checkpoint once the latest version is this
	// many versions past the last checkpoint (Delta's default 10).
	CheckpointInterval int64
	// CheckpointAdaptive stretches the interval as checkpoints grow (see
	// CheckpointDue); true unless the table sets delta.checkpointInterval.
	CheckpointAdaptive bool
	// LogRetention: commits and checkpoints older than this (and older than
	// the newest checkpoint) are cleaned up (default 30 days).
	LogRetention time.Duration
	// ExpiredLogCleanup turns log cleanup on (default true).
	ExpiredLogCleanup bool
	// DeletedFileRetention: data files removed longer ago than this are
	// deleted by vacuum (default 7 days).
	DeletedFileRetention time.Duration
	// OptimizeMinFiles: compact a partition once it has at least this many
	// small files (0 turns auto-compaction off; default 50).
	OptimizeMinFiles int
	// OptimizeTargetSize is the size compaction aims for; files below half of
	// it count as small (default 128 MiB).
	OptimizeTargetSize int64
	// VacuumInterval is how often vacuum runs on a table (0 = never; default 1h).
	VacuumInterval time.Duration
	// OptimizeSortBy are the columns, comma-separated, compaction orders
	// rows by (default none: rows keep the input files' order).
	OptimizeSortBy string
}

// DefaultPolicy is the policy of a table that sets none of the properties.
func DefaultPolicy() Policy {
	return Policy{
		CheckpointInterval:   10,
		CheckpointAdaptive:   true,
		LogRetention:         30 * 24 * time.Hour,
		ExpiredLogCleanup:    true,
		DeletedFileRetention: 7 * 24 * time.Hour,
		OptimizeMinFiles:     50,
		OptimizeTargetSize:   128 << 20,
		VacuumInterval:       time.Hour,
	}
}

// Bounds of the adaptive checkpoint interval.
const (
	// TailActionsPerCommit: an adaptive interval lets as many commits
	// follow a checkpoint as its actions divided by this. A reader replays
	// a commit file for roughly the price of a hundred checkpoint rows, so
	// the JSON tail never costs it more than the checkpoint itself, and
	// the writer pays a constant share of a checkpoint per commit however
	// large the table's state grows.
	TailActionsPerCommit = 100
	// MaxAdaptiveInterval caps the adaptive interval.
	MaxAdaptiveInterval = 1000
)

// CheckpointDue reports whether a table at version needs a checkpoint, its
// newest being at lastCheckpoint (-1: none) with lastActions actions (0:
// unknown). A checkpoint holds every live file and every tombstone younger
// than the deleted-file retention: a table committed every 500 ms and
// compacted has about 170,000 tombstones after a day and 1.2 million after
// the default week, so a checkpoint every 10 versions would cost the writer
// more with every hour it runs. The adaptive interval is
// lastActions/TailActionsPerCommit, at least CheckpointInterval and at most
// MaxAdaptiveInterval.
func (p Policy) CheckpointDue(version, lastCheckpoint, lastActions int64) bool {
	every := p.CheckpointInterval
	if p.CheckpointAdaptive {
		every = max(every, min(MaxAdaptiveInterval, lastActions/TailActionsPerCommit))
	}
	return version-max(lastCheckpoint, 0) >= every
}

// PolicyFrom reads a table's properties over the defaults.
func PolicyFrom(props map[string]string) (Policy, error) {
	p := DefaultPolicy()
	var errs []error
	intProp := func(name string, dst *int64, minVal int64) {
		s, ok := props[name]
		if !ok {
			return
		}
		v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil || v < minVal {
			errs = append(errs, fmt.Errorf("%w: %s=%q: want an integer >= %d", ErrBadProperty, name, s, minVal))
			return
		}
		*dst = v
	}
	durProp := func(name string, dst *time.Duration) {
		s, ok := props[name]
		if !ok {
			return
		}
		d, err := ParseInterval(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: %s=%q: %w", ErrBadProperty, name, s, err))
			return
		}
		*dst = d
	}
	intProp(PropCheckpointInterval, &p.CheckpointInterval, 1)
	_, set := props[PropCheckpointInterval]
	p.CheckpointAdaptive = !set
	durProp(PropLogRetention, &p.LogRetention)
	durProp(PropDeletedFileRetention, &p.DeletedFileRetention)
	durProp(PropVacuumInterval, &p.VacuumInterval)
	if s, ok := props[PropExpiredLogCleanup]; ok {
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: %s=%q: want true or false", ErrBadProperty, PropExpiredLogCleanup, s))
		}
		p.ExpiredLogCleanup = b
	}
	minFiles := int64(p.OptimizeMinFiles)
	intProp(PropOptimizeMinFiles, &minFiles, 0)
	p.OptimizeMinFiles = int(minFiles)
	intProp(PropOptimizeTargetSize, &p.OptimizeTargetSize, 1)
	if s, ok := props[PropOptimizeSortBy]; ok {
		if slices.Contains(strings.Split(s, ","), "") || strings.TrimSpace(s) == "" {
			errs = append(errs, fmt.Errorf("%w: %s=%q: want column names, comma-separated", ErrBadProperty, PropOptimizeSortBy, s))
		}
		p.OptimizeSortBy = s
	}
	if len(errs) > 0 {
		return DefaultPolicy(), errors.Join(errs...)
	}
	return p, nil
}

// ParseInterval parses Delta's interval strings ("interval 30 days",
// "interval 1 week", "7 days") and Go durations ("36h").
func ParseInterval(s string) (time.Duration, error) {
	s = strings.TrimSpace(strings.ToLower(s))
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return d, nil
	}
	f := strings.Fields(strings.TrimPrefix(s, "interval"))
	if len(f) != 2 {
		return 0, fmt.Errorf("want \"interval <n> <unit>\"")
	}
	n, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad count %q", f[0])
	}
	units := map[string]time.Duration{
		"nanosecond": time.Nanosecond, "microsecond": time.Microsecond, "millisecond": time.Millisecond,
		"second": time.Second, "minute": time.Minute, "hour": time.Hour,
		"day": 24 * time.Hour, "week": 7 * 24 * time.Hour,
	}
	u, ok := units[strings.TrimSuffix(f[1], "s")]
	if !ok {
		return 0, fmt.Errorf("unknown unit %q", f[1])
	}
	return time.Duration(n) * u, nil
}
