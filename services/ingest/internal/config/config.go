// Package config is ingest's one typed configuration, read from flags whose
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
	"github.com/plantlake/plantlake/servicekit/kafkatopic"

	"github.com/plantlake/plantlake/services/ingest/internal/rawtable"
)

// Defaults of ingest's own settings.
const (
	DefaultGRPCAddr      = ":7003"
	DefaultMetricsAddr   = ":9103"
	DefaultTopics        = kafkatopic.Raw + "," + kafkatopic.Oversized
	DefaultGroup         = "plantlake-ingest"
	DefaultBatchMaxRows  = 500_000
	DefaultBatchMaxBytes = 16 << 20
	// DefaultMemoryLimit is the Go heap's soft limit: with it the garbage
	// collector works harder instead of letting the heap double past the
	// batch in flight, keeping the process under 256 MiB with librdkafka's
	// buffers.
	DefaultMemoryLimit = 100 << 20
	// DefaultGCPercent lets the heap grow to three times what is live
	// before a collection (Go's default: twice): the live heap is a batch
	// in flight, and at 100 % the collector took 10–16 % of the CPU; the
	// memory limit bounds what the trade costs.
	DefaultGCPercent = 200
	// DefaultBatchMaxAge is chosen with deserialize's and merge's for gold's
	// freshness and the commits' cost (docs/decisions.md, End-to-end
	// benchmark: batch ages).
	DefaultBatchMaxAge = 500 * time.Millisecond
	// MaxBatchAge is the longest a batch may stay open (DESIGN: up to 15 minutes).
	MaxBatchAge = 15 * time.Minute
)

// ErrInvalid is wrapped by every validation error of ingest's own flags.
var ErrInvalid = errors.New("invalid setting")

// Config is ingest's configuration.
type Config struct {
	// Shared are the settings every service has (addresses, Kafka, catalog, logging).
	Shared config.Shared
	// Topics are the Kafka topics to consume (--topics).
	Topics []string
	// Group is the Kafka consumer group (--group).
	Group string
	// BatchMaxRows, BatchMaxBytes and BatchMaxAge close a batch, whichever
	// comes first (--batch-max-rows, --batch-max-bytes, --batch-max-age).
	BatchMaxRows  int
	BatchMaxBytes int
	BatchMaxAge   time.Duration
	// RunOnce ingests until caught up with the end offsets seen at start,
	// commits and exits (--run-once).
	RunOnce bool
	// Memory is the Go runtime's soft memory limit and collector
	// percentage (--memory-limit, --gc-percent).
	Memory config.Memory
	// MaxTraceLinks caps the sampled records traced per batch (--max-trace-links).
	MaxTraceLinks int
	// KafkaRetention is the retention of a topic ingest creates because it
	// is missing (--kafka-retention); negative keeps records forever.
	KafkaRetention time.Duration
}

// Load parses args (without the program name) and the environment into a
// Config and validates it. With -h it prints the usage to out and returns
// an error wrapping flag.ErrHelp.
func Load(args []string, out io.Writer) (Config, error) {
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	fs.SetOutput(out)
	c := Config{Shared: config.Shared{GRPCAddr: DefaultGRPCAddr, MetricsAddr: DefaultMetricsAddr}}
	c.Shared.Register(fs, config.Kafka, config.Catalog)
	topics := fs.String("topics", DefaultTopics, "Kafka topics to ingest, comma-separated")
	fs.StringVar(&c.Group, "group", DefaultGroup, "Kafka consumer group")
	fs.IntVar(&c.BatchMaxRows, "batch-max-rows", DefaultBatchMaxRows, "close the batch at this many rows")
	fs.IntVar(&c.BatchMaxBytes, "batch-max-bytes", DefaultBatchMaxBytes, "close the batch at this many bytes of records (payload, key, headers)")
	fs.DurationVar(&c.BatchMaxAge, "batch-max-age", DefaultBatchMaxAge, "close the batch this long after its first record (at most 15m)")
	fs.BoolVar(&c.RunOnce, "run-once", false, "ingest until caught up with the end offsets seen at start, commit, exit")
	c.Memory.Register(fs, DefaultMemoryLimit, DefaultGCPercent)
	fs.IntVar(&c.MaxTraceLinks, "max-trace-links", 128, "most sampled records traced per batch (each gets a span linked to the batch's commit span)")
	fs.DurationVar(&c.KafkaRetention, "kafka-retention", kafkatopic.DefaultRetention, "retention of a topic ingest creates because it is missing (negative: forever)")
	if err := config.Parse(fs, args); err != nil {
		return Config{}, err
	}
	for _, t := range strings.Split(*topics, ",") {
		if t = strings.TrimSpace(t); t != "" {
			c.Topics = append(c.Topics, t)
		}
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Validate returns every problem of c, each naming its flag.
func (c *Config) Validate() error {
	errs := []error{c.Shared.Validate()}
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: --%s: %s", ErrInvalid, name, fmt.Sprintf(format, args...)))
	}
	if len(c.Topics) == 0 {
		bad("topics", "no topic")
	}
	if strings.TrimSpace(c.Group) == "" {
		bad("group", "empty")
	}
	if c.BatchMaxRows <= 0 {
		bad("batch-max-rows", "%d is not positive", c.BatchMaxRows)
	}
	if c.BatchMaxBytes <= 0 || c.BatchMaxBytes > rawtable.MaxBatchBytes {
		bad("batch-max-bytes", "%d is not in (0, %d]", c.BatchMaxBytes, rawtable.MaxBatchBytes)
	}
	if c.BatchMaxAge <= 0 || c.BatchMaxAge > MaxBatchAge {
		bad("batch-max-age", "%s is not in (0, %s]", c.BatchMaxAge, MaxBatchAge)
	}
	errs = append(errs, c.Memory.Validate())
	if c.KafkaRetention == 0 {
		bad("kafka-retention", "0; give a duration, or a negative one to keep records forever")
	}
	if c.MaxTraceLinks < 0 {
		bad("max-trace-links", "%d is negative", c.MaxTraceLinks)
	}
	return errors.Join(errs...)
}
