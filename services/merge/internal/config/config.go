// Package config is merge's one typed configuration, read from flags whose
// defaults come from PLANTLAKE_* environment variables.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/plantlake/plantlake/servicekit/config"

	"github.com/plantlake/plantlake/services/merge/internal/goldsink"
	"github.com/plantlake/plantlake/services/merge/internal/mergeplan"
)

// Defaults of merge's own settings.
const (
	DefaultGRPCAddr    = ":7005"
	DefaultMetricsAddr = ":9105"
	DefaultKey         = "sensor_id,measurement,ts"
	DefaultStrategy    = string(mergeplan.FirstWins)
	// DefaultBatchMaxRows bounds a batch in a catch-up (at 28,000
	// readings/s a half-second batch is 14,000 rows): with 200,000 merge
	// reached 343–367 MiB after 25 s of backlog in the end-to-end
	// benchmark, with 50,000 218 MiB, and spent less CPU a reading doing it
	// (docs/decisions.md, Merge).
	DefaultBatchMaxRows = 50_000
	// DefaultBatchMaxBytes is the batch's estimated memory (about 200 bytes a
	// buffered row) at which it closes: a backstop behind the rows.
	DefaultBatchMaxBytes = 64 << 20
	// DefaultBatchMaxAge is chosen with ingest's and deserialize's for
	// gold's freshness and the commits' cost (docs/decisions.md, End-to-end
	// benchmark: batch ages).
	DefaultBatchMaxAge  = 500 * time.Millisecond
	DefaultPollInterval = time.Second
	DefaultMaxFileRows  = 256 << 10
	// DefaultMemoryLimit is the Go heap's soft limit (see ingest's).
	DefaultMemoryLimit = 160 << 20
	// DefaultGCPercent: see ingest's.
	DefaultGCPercent = 200
	// DefaultKeyCacheBytes bounds the cache of gold files' key hashes.
	DefaultKeyCacheBytes = goldsink.DefaultKeyCacheBytes
	// MaxBatchAge is the longest a batch may stay open (DESIGN: up to 15 minutes).
	MaxBatchAge = 15 * time.Minute
)

// ErrInvalid is wrapped by every validation error of merge's own flags.
var ErrInvalid = errors.New("invalid setting")

// Config is merge's configuration.
type Config struct {
	// Shared are the settings every service has (addresses, Kafka, catalog, logging).
	Shared config.Shared
	// Key are gold's key columns (--key).
	Key mergeplan.KeySpec
	// Strategy is what a key already in gold gets (--strategy).
	Strategy mergeplan.Strategy
	// BatchMaxRows, BatchMaxBytes and BatchMaxAge close a batch, whichever
	// comes first; a batch is whole bronze versions, so it may pass the
	// row bound by one version.
	BatchMaxRows  int
	BatchMaxBytes int
	BatchMaxAge   time.Duration
	// PollInterval is how often merge asks the catalog for new bronze
	// versions when no commit event woke it (--poll-interval).
	PollInterval time.Duration
	// MaxFileRows bounds the rows of a gold file merge writes (--max-file-rows).
	MaxFileRows int
	// KeyCacheBytes bounds the memory of the cache of gold files' key
	// hashes (--key-cache-bytes); 0 turns the cache off.
	KeyCacheBytes int64
	// RunOnce merges until bronze has no newer version, then exits (--run-once).
	RunOnce bool
	// Memory is the Go runtime's soft memory limit and collector
	// percentage (--memory-limit, --gc-percent).
	Memory config.Memory
}

// Load parses args (without the program name) and the environment into a
// Config and validates it. With -h it prints the usage to out and returns
// an error wrapping flag.ErrHelp.
func Load(args []string, out io.Writer) (Config, error) {
	fs := flag.NewFlagSet("merge", flag.ContinueOnError)
	fs.SetOutput(out)
	c := Config{Shared: config.Shared{GRPCAddr: DefaultGRPCAddr, MetricsAddr: DefaultMetricsAddr}}
	c.Shared.Register(fs, config.Kafka, config.Catalog)
	key := fs.String("key", DefaultKey, "gold's key columns, comma-separated (must include ts; a plant whose sensor ids repeat across lines adds line)")
	strategy := fs.String("strategy", DefaultStrategy, "a key already in gold: first_wins (skip the bronze row) or latest_wins (a newer bronze row replaces it)")
	fs.IntVar(&c.BatchMaxRows, "batch-max-rows", DefaultBatchMaxRows, "close the batch at this many bronze rows (whole versions: it may pass by one version)")
	fs.IntVar(&c.BatchMaxBytes, "batch-max-bytes", DefaultBatchMaxBytes, "close the batch when its rows hold about this many bytes")
	fs.DurationVar(&c.BatchMaxAge, "batch-max-age", DefaultBatchMaxAge, "close the batch this long after its first row (at most 15m)")
	fs.DurationVar(&c.PollInterval, "poll-interval", DefaultPollInterval, "ask the catalog for new bronze versions this often when no commit event came")
	fs.IntVar(&c.MaxFileRows, "max-file-rows", DefaultMaxFileRows, "most rows in one gold file merge writes (bounds a rewrite's memory)")
	fs.Int64Var(&c.KeyCacheBytes, "key-cache-bytes", DefaultKeyCacheBytes, "memory for the 64-bit key hashes of recent gold files (about 9 bytes a row), so that a batch reads only the files that may hold its keys (0: no cache, every candidate file is read)")
	fs.BoolVar(&c.RunOnce, "run-once", false, "merge until bronze has no newer version, then exit")
	c.Memory.Register(fs, DefaultMemoryLimit, DefaultGCPercent)
	if err := config.Parse(fs, args); err != nil {
		return Config{}, err
	}
	var errs []error
	spec, err := mergeplan.NewKeySpec(strings.Split(*key, ","))
	if err != nil {
		errs = append(errs, fmt.Errorf("%w: --key: %w", ErrInvalid, err))
	}
	c.Key = spec
	st, err := mergeplan.ParseStrategy(*strategy)
	if err != nil {
		errs = append(errs, fmt.Errorf("%w: --strategy: %w", ErrInvalid, err))
	}
	c.Strategy = st
	if err := errors.Join(append(errs, c.Validate())...); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Validate returns every problem of c's numeric settings, each naming its flag.
func (c *Config) Validate() error {
	errs := []error{c.Shared.Validate()}
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: --%s: %s", ErrInvalid, name, fmt.Sprintf(format, args...)))
	}
	if c.BatchMaxRows <= 0 {
		bad("batch-max-rows", "%d is not positive", c.BatchMaxRows)
	}
	if c.BatchMaxBytes <= 0 {
		bad("batch-max-bytes", "%d is not positive", c.BatchMaxBytes)
	}
	if c.BatchMaxAge <= 0 || c.BatchMaxAge > MaxBatchAge {
		bad("batch-max-age", "%s is not in (0, %s]", c.BatchMaxAge, MaxBatchAge)
	}
	if c.PollInterval <= 0 {
		bad("poll-interval", "%s is not positive", c.PollInterval)
	}
	if c.KeyCacheBytes < 0 {
		bad("key-cache-bytes", "%d is negative", c.KeyCacheBytes)
	}
	if c.MaxFileRows <= 0 {
		bad("max-file-rows", "%d is not positive", c.MaxFileRows)
	}
	errs = append(errs, c.Memory.Validate())
	return errors.Join(errs...)
}
