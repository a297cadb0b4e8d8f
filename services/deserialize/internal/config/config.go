// Package config is deserialize's one typed configuration, read from flags
// whose defaults come from PLANTLAKE_* environment variables.
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

	"github.com/plantlake/plantlake/services/deserialize/internal/parse"
)

// Defaults of deserialize's own settings.
const (
	DefaultGRPCAddr    = ":7004"
	DefaultMetricsAddr = ":9104"
	DefaultSourceTable = "raw.plant_sensor_readings"
	DefaultEventsTopic = kafkatopic.TableCommits
	DefaultPlant       = "plant"
	// DefaultBatchMaxRows keeps a catch-up batch's bronze columns (about
	// 225 bytes a row) well inside the memory limit: at 500,000 rows the
	// garbage collector took 37% of the CPU and RSS passed 256 MiB
	// (services/deserialize/bench). Live traffic closes batches by age.
	DefaultBatchMaxRows  = 100_000
	DefaultBatchMaxBytes = 64 << 20
	// DefaultBatchMaxAge is short: a batch is whole raw versions, each
	// already half a second of readings (ingest's default), so waiting
	// longer only adds to gold's freshness (docs/decisions.md, the
	// end-to-end benchmark: the three hops' ages are chosen together).
	DefaultBatchMaxAge  = 100 * time.Millisecond
	DefaultPollInterval = time.Second
	DefaultMemoryLimit  = 128 << 20
	// DefaultGCPercent: see ingest's.
	DefaultGCPercent = 200
	// MaxBatchAge is the longest a batch may stay open.
	MaxBatchAge = 15 * time.Minute
	// MaxBatchBytes bounds --batch-max-bytes: Arrow's 32-bit offsets.
	MaxBatchBytes = 1 << 30
)

// ErrInvalid is wrapped by every validation error of deserialize's own flags.
var ErrInvalid = errors.New("invalid setting")

// Config is deserialize's configuration.
type Config struct {
	// Shared are the settings every service has.
	Shared config.Shared
	// SourceTable is the raw table followed (--source-table).
	SourceTable string
	// EventsTopic is where the catalog announces commits (--events-topic).
	EventsTopic string
	// PollInterval is how often the catalog is asked for new raw versions
	// when no event came (--poll-interval).
	PollInterval time.Duration
	// RulesFile is the rules file (--rules); empty: the built-in defaults
	// (services/deserialize/rules.default.yaml documents them).
	RulesFile string
	// TopicPattern maps MQTT topic levels to plant, line, device and
	// measurement (--topic-pattern); Plant is the plant when the pattern has
	// no {plant} (--plant).
	TopicPattern string
	Plant        string
	// BatchMaxRows, BatchMaxBytes and BatchMaxAge close a batch (raw rows,
	// raw bytes, age), whichever comes first; a batch is whole raw versions.
	BatchMaxRows  int
	BatchMaxBytes int
	BatchMaxAge   time.Duration
	// RunOnce derives until caught up with raw, commits and exits.
	RunOnce bool
	// Memory is the Go runtime's soft memory limit and collector
	// percentage (--memory-limit, --gc-percent).
	Memory config.Memory
}

// Load parses args (without the program name) and the environment into a
// Config and validates it. With -h it prints the usage to out and returns
// an error wrapping flag.ErrHelp.
func Load(args []string, out io.Writer) (Config, error) {
	fs := flag.NewFlagSet("deserialize", flag.ContinueOnError)
	fs.SetOutput(out)
	c := Config{Shared: config.Shared{GRPCAddr: DefaultGRPCAddr, MetricsAddr: DefaultMetricsAddr}}
	c.Shared.Register(fs, config.Kafka, config.Catalog)
	fs.StringVar(&c.SourceTable, "source-table", DefaultSourceTable, "the raw table to follow")
	fs.StringVar(&c.EventsTopic, "events-topic", DefaultEventsTopic, "Kafka topic of the catalog's table commit events (wake-ups)")
	fs.DurationVar(&c.PollInterval, "poll-interval", DefaultPollInterval, "how often to ask the catalog for new raw versions when no event came")
	fs.StringVar(&c.RulesFile, "rules", "", "validation rules file (YAML or JSON); empty: the built-in defaults (see rules.default.yaml); reloaded on SIGHUP or ReloadRules")
	fs.StringVar(&c.TopicPattern, "topic-pattern", parse.DefaultTopicPattern, "MQTT topic levels: literal words, {plant}, {line}, {device}, {measurement}, +")
	fs.StringVar(&c.Plant, "plant", DefaultPlant, "the plant column's value when the topic pattern has no {plant}")
	fs.IntVar(&c.BatchMaxRows, "batch-max-rows", DefaultBatchMaxRows, "close the batch at this many raw rows (whole raw versions: it may pass by one version)")
	fs.IntVar(&c.BatchMaxBytes, "batch-max-bytes", DefaultBatchMaxBytes, "close the batch at this many bytes of raw payloads")
	fs.DurationVar(&c.BatchMaxAge, "batch-max-age", DefaultBatchMaxAge, "close the batch this long after its first raw version (at most 15m)")
	fs.BoolVar(&c.RunOnce, "run-once", false, "derive until caught up with raw, commit, exit")
	c.Memory.Register(fs, DefaultMemoryLimit, DefaultGCPercent)
	if err := config.Parse(fs, args); err != nil {
		return Config{}, err
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
	if !strings.Contains(c.SourceTable, ".") {
		bad("source-table", "%q is not schema.table", c.SourceTable)
	}
	if c.PollInterval <= 0 {
		bad("poll-interval", "%s is not positive", c.PollInterval)
	}
	if _, err := parse.NewTopicPattern(c.TopicPattern, c.Plant); err != nil {
		bad("topic-pattern", "%v", err)
	}
	if c.BatchMaxRows <= 0 {
		bad("batch-max-rows", "%d is not positive", c.BatchMaxRows)
	}
	if c.BatchMaxBytes <= 0 || c.BatchMaxBytes > MaxBatchBytes {
		bad("batch-max-bytes", "%d is not in (0, %d]", c.BatchMaxBytes, MaxBatchBytes)
	}
	if c.BatchMaxAge <= 0 || c.BatchMaxAge > MaxBatchAge {
		bad("batch-max-age", "%s is not in (0, %s]", c.BatchMaxAge, MaxBatchAge)
	}
	errs = append(errs, c.Memory.Validate())
	return errors.Join(errs...)
}
