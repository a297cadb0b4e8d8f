// Package service wires the catalog together: configuration from flags and
// PLANTLAKE_* variables, the engine, the gRPC adapter, the Kafka event
// publisher and the servicekit servers.
package service

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/plantlake/plantlake/servicekit/config"
	"github.com/plantlake/plantlake/services/catalog/internal/events"
	"github.com/plantlake/plantlake/services/catalog/internal/server"
	"github.com/plantlake/plantlake/services/catalog/internal/warehouse"
)

// Default listen addresses (DESIGN.md section 3).
const (
	DefaultGRPCAddr    = ":7001"
	DefaultMetricsAddr = ":9101"
)

// Config is the catalog's configuration.
type Config struct {
	// Shared holds the servicekit settings: addresses, Kafka, warehouse, auth.
	Shared config.Shared
	// CommitTopic is where table commits are announced.
	CommitTopic string
	// Announce turns the Kafka announcements on.
	Announce bool
	// MaxGroupCommit bounds how many waiting blind appends share one version.
	MaxGroupCommit int
	// AutoMaintenance turns policy-driven checkpoints, log cleanup,
	// compaction and vacuum on.
	AutoMaintenance bool
	// MaintenanceWorkers bounds concurrent maintenance jobs.
	MaintenanceWorkers int
	// MaintenanceInterval is how often every table is looked at for
	// time-based maintenance.
	MaintenanceInterval time.Duration
	// MaxOptimizeFiles bounds the input files of one compaction.
	MaxOptimizeFiles int
	// MaxOptimizeBytes bounds the input bytes of one compaction (it holds
	// its input in memory).
	MaxOptimizeBytes int64
	// StitchMinRowGroupRows is the fewest rows the row groups of a
	// compaction's files must average for their column chunks to be copied
	// instead of their rows rewritten (0: datafile's default, 2,048;
	// negative: never).
	StitchMinRowGroupRows int64
	// MinVacuumRetention is the smallest retention a Vacuum call may ask for.
	MinVacuumRetention time.Duration
	// MaxCommitActions bounds the adds, removes and txns of one commit.
	MaxCommitActions int
	// UnixSocket, when set, is a path where the catalog serves gRPC on a
	// Unix socket too (--unix-socket), for the hops on the same machine
	// (--catalog-addr unix:///path): mode 0660, a dead process's socket
	// replaced, removed on stop.
	UnixSocket string
	// Memory is the Go runtime's soft memory limit and collector
	// percentage (--memory-limit, --gc-percent).
	Memory config.Memory
}

// DefaultMemoryLimit is the catalog's soft memory limit: the collector
// works harder near it instead of letting the heap double past a large
// request being decoded, which keeps the process under 256 MiB.
const DefaultMemoryLimit = 192 << 20

// DefaultGCPercent is the catalog's collector percentage: Go's own. The
// catalog holds a compaction's output file in memory, so its heap swings
// by tens of MiB, and its CPU per reading is small (see docs/decisions.md).
const DefaultGCPercent = 100

// ParseConfig reads the configuration from args and the environment. With
// -h it returns flag.ErrHelp after printing the usage.
func ParseConfig(args []string) (*Config, error) {
	cfg := &Config{Shared: config.Shared{GRPCAddr: DefaultGRPCAddr, MetricsAddr: DefaultMetricsAddr}}
	fs := flag.NewFlagSet("catalog", flag.ContinueOnError)
	cfg.Shared.Register(fs, config.Kafka, config.Warehouse)
	fs.StringVar(&cfg.CommitTopic, "commit-topic", events.DefaultTopic, "Kafka topic that announces table commits")
	fs.BoolVar(&cfg.Announce, "announce", true, "announce table commits on Kafka")
	fs.IntVar(&cfg.MaxGroupCommit, "max-group-commit", 256, "most blind appends committed together as one version (1: no grouping)")
	fs.BoolVar(&cfg.AutoMaintenance, "auto-maintenance", true, "checkpoint, clean up, compact and vacuum tables by their properties")
	fs.IntVar(&cfg.MaintenanceWorkers, "maintenance-workers", 1, "maintenance jobs running at once")
	fs.DurationVar(&cfg.MaintenanceInterval, "maintenance-interval", time.Minute, "how often every table is checked for time-based maintenance (vacuum)")
	fs.IntVar(&cfg.MaxOptimizeFiles, "max-optimize-files", 1000, "most files one compaction reads")
	fs.DurationVar(&cfg.MinVacuumRetention, "min-vacuum-retention", time.Hour, "smallest retention a Vacuum call may ask for (shorter ones could delete files of commits in flight)")
	fs.Int64Var(&cfg.MaxOptimizeBytes, "max-optimize-bytes", 64<<20, "most bytes of files one compaction reads (it holds them in memory)")
	fs.Int64Var(&cfg.StitchMinRowGroupRows, "stitch-min-row-group-rows", 0, "fewest rows a compaction's input row groups average for it to copy their column chunks instead of rewriting their rows (0: 2,048; negative: never)")
	fs.StringVar(&cfg.UnixSocket, "unix-socket", "", "also serve gRPC on a Unix socket at this path (mode 0660; a stale socket is replaced; removed on stop): hops on this machine dial unix:///path, skipping TCP")
	cfg.Memory.Register(fs, DefaultMemoryLimit, DefaultGCPercent)
	fs.IntVar(&cfg.MaxCommitActions, "max-commit-actions", server.DefaultMaxCommitActions, "most adds, removes and txns one commit may carry (more: InvalidArgument)")
	if err := config.Parse(fs, args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%w: unexpected arguments %q", config.ErrInvalid, fs.Args())
	}
	return cfg, cfg.validate()
}

func (c *Config) validate() error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: --%s: %s", config.ErrInvalid, name, fmt.Sprintf(format, args...)))
	}
	if c.CommitTopic == "" {
		bad("commit-topic", "empty")
	}
	if c.MaxGroupCommit < 1 {
		bad("max-group-commit", "%d is less than 1", c.MaxGroupCommit)
	}
	if c.MaintenanceWorkers < 1 {
		bad("maintenance-workers", "%d is less than 1", c.MaintenanceWorkers)
	}
	if c.MaintenanceInterval <= 0 {
		bad("maintenance-interval", "%v is not positive", c.MaintenanceInterval)
	}
	if c.MaxOptimizeFiles < 2 {
		bad("max-optimize-files", "%d is less than 2", c.MaxOptimizeFiles)
	}
	if c.MinVacuumRetention < 0 {
		bad("min-vacuum-retention", "%v is negative", c.MinVacuumRetention)
	}
	errs = append(errs, c.Memory.Validate())
	if c.MaxCommitActions < 1 {
		bad("max-commit-actions", "%d is less than 1", c.MaxCommitActions)
	}
	if c.MaxOptimizeBytes < 1<<20 {
		bad("max-optimize-bytes", "%d is less than 1 MiB", c.MaxOptimizeBytes)
	}
	if _, err := WarehouseDir(c.Shared.Warehouse); err != nil {
		bad("warehouse", "%v", err)
	}
	return errors.Join(append(errs, c.Shared.Validate())...)
}

// WarehouseDir turns --warehouse into what the catalog opens: a folder
// (from a path or a file:// URI) or an object-store URI (s3://, abfss://,
// az://), which is returned unchanged.
func WarehouseDir(w string) (string, error) {
	scheme, err := warehouse.Check(w)
	if err != nil {
		return "", err
	}
	if scheme != "file" || !strings.Contains(w, "://") {
		return w, nil
	}
	u, err := url.Parse(w)
	if err != nil {
		return "", err
	}
	return u.Path, nil
}
