package tablesource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/plantlake/plantlake/delta"
	"github.com/plantlake/plantlake/delta/storage"
	"github.com/plantlake/plantlake/delta/storage/storeuri"
	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"
	"github.com/plantlake/plantlake/servicekit/kafkatopic"
)

// DefaultEventsTopic is the topic the catalog announces table commits on.
const DefaultEventsTopic = kafkatopic.TableCommits

// DefaultPollInterval is how often a waiting Next asks the catalog for new
// versions when no event woke it. An empty GetChanges is one in-memory
// lookup in the catalog, so a second costs nothing measurable, and it bounds
// the delay of a version whose event was lost (Kafka down) to a second.
const DefaultPollInterval = time.Second

// changesPage is how many versions one GetChanges call asks for.
const changesPage = 100

// Errors callers branch on.
var (
	// ErrFilesGone is wrapped by a Read error when a data file of a version
	// no longer exists (vacuumed before it was read). The message names the
	// version and the file. The rows of that version cannot be read any more:
	// the hop must stop and report it, never skip the version.
	ErrFilesGone = errors.New("tablesource: data file of an unread version is gone")
	// ErrInvalidConfig is wrapped by New's errors about the configuration.
	ErrInvalidConfig = errors.New("tablesource: invalid configuration")
	// ErrInvalidChanges is wrapped when the catalog's answer skips or repeats
	// a version.
	ErrInvalidChanges = errors.New("tablesource: catalog returned an invalid version sequence")
)

// Config says which table to follow and how.
type Config struct {
	// Table is the table followed, "schema.table".
	Table string
	// Brokers is Kafka's bootstrap server list for the wake-up events; empty
	// means no events, polling only.
	Brokers string
	// EventsTopic is the topic of the TableCommitEvents; DefaultEventsTopic
	// when empty.
	EventsTopic string
	// Kafka holds extra librdkafka settings for the events consumer (SASL,
	// TLS); they override the defaults.
	Kafka map[string]string
	// PollInterval is how often a waiting Next asks the catalog when no event
	// arrived; DefaultPollInterval when zero.
	PollInterval time.Duration
	// MaxRows bounds the rows of a batch (numRecords of the added files'
	// stats; files without stats count 0); 0 means no bound. The bound is
	// soft: a batch holds whole versions and ends with the version that
	// reaches it, so it may pass it by that one version.
	MaxRows int64
	// MaxBytes bounds the bytes of the added files of a batch, softly as
	// MaxRows; 0 means no bound.
	MaxBytes int64
}

func (c *Config) setDefaults() error {
	if c.Table == "" {
		return fmt.Errorf("%w: no table", ErrInvalidConfig)
	}
	if c.EventsTopic == "" {
		c.EventsTopic = DefaultEventsTopic
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	switch {
	case c.PollInterval < 0:
		return fmt.Errorf("%w: poll interval %v is negative", ErrInvalidConfig, c.PollInterval)
	case c.MaxRows < 0:
		return fmt.Errorf("%w: max rows %d is negative", ErrInvalidConfig, c.MaxRows)
	case c.MaxBytes < 0:
		return fmt.Errorf("%w: max bytes %d is negative", ErrInvalidConfig, c.MaxBytes)
	}
	return nil
}

// Stats counts what the follower did, for metrics and tests.
type Stats struct {
	// Listening is true while the events consumer is assigned to the topic.
	Listening bool
	// Events counts events about the table received; Wakeups those that
	// announced a version newer than the follower knew and woke Next.
	Events, Wakeups uint64
	// Polls counts GetChanges calls.
	Polls uint64
	// LatestVersion is the table's latest version as last seen, -1 before
	// the first GetChanges.
	LatestVersion int64
	// Announced is the newest version a commit event announced, -1 before
	// the first: it moves while Next is not called (a paused hop), so the
	// lag it gives grows with the backlog.
	Announced int64
}

// Follower follows one table. Next is called by one goroutine at a time;
// batches may be read concurrently with Next and with each other.
type Follower struct {
	cfg    Config
	client catalogv1.CatalogServiceClient
	log    *slog.Logger
	// wake holds one pending wake-up from an event; Next drains it before
	// asking the catalog, so no event that arrives later is lost.
	wake chan struct{}

	mu    sync.Mutex
	stats Stats

	tableMu sync.Mutex
	table   *delta.Table // opened at the first Read

	// asked is when Next last asked the catalog; only Next uses it.
	asked time.Time
}

// New returns a follower of cfg.Table reading through client. It contacts
// neither the catalog nor Kafka; Run listens for events.
func New(cfg Config, client catalogv1.CatalogServiceClient, log *slog.Logger) (*Follower, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if client == nil {
		return nil, fmt.Errorf("%w: no catalog client", ErrInvalidConfig)
	}
	if log == nil {
		log = slog.Default()
	}
	return &Follower{
		cfg:    cfg,
		client: client,
		log:    log.With("table", cfg.Table),
		wake:   make(chan struct{}, 1),
		stats:  Stats{LatestVersion: -1, Announced: -1},
	}, nil
}

// Stats returns a copy of the counters.
func (f *Follower) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

// Next returns the versions after version after (the position: the last
// version processed, -1 for none), whole and in order, bounded by MaxRows and
// MaxBytes. When there is none yet it waits up to wait for one, woken early
// by an event and asking the catalog every PollInterval; it returns an empty
// batch (Batch.Empty) when none came in time. Errors are the catalog's
// (a table that does not exist is codes.NotFound) or ctx's, wrapped.
//
// While events arrive, Next asks the catalog only when it has reason to (see
// needAsk): a hop calls Next every 100 ms while idle, and asking each time
// cost the hop and the catalog more than a percent of a core each.
func (f *Follower) Next(ctx context.Context, after int64, wait time.Duration) (Batch, error) {
	if after < -1 {
		return Batch{}, fmt.Errorf("%w: position %d is below -1", ErrInvalidConfig, after)
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	poll := time.NewTimer(f.cfg.PollInterval)
	defer poll.Stop()
	for {
		select { // a wake-up that came before this question is answered by it
		case <-f.wake:
		default:
		}
		if f.needAsk(after) {
			f.asked = time.Now()
			b, err := f.collect(ctx, after)
			if err != nil || !b.Empty() {
				return b, err
			}
		}
		poll.Reset(max(f.cfg.PollInterval-time.Since(f.asked), 0))
		select {
		case <-ctx.Done():
			return Batch{}, fmt.Errorf("tablesource: wait for versions of %s after %d: %w", f.cfg.Table, after, ctx.Err())
		case <-deadline.C:
			return Batch{FromVersion: after + 1, ToVersion: after, f: f}, nil
		case <-f.wake:
		case <-poll.C:
		}
	}
}

// needAsk reports whether Next must ask the catalog for the versions after
// after: always while no events arrive (Kafka down, the topic missing),
// when the catalog last said there are versions after after (a batch that
// ended at a bound), when an event announced a version newer than the
// catalog last said, and once every PollInterval in case an event was lost.
// Otherwise the catalog's answer would be the one it gave last time. The
// wake-up channel is drained before the check, so an event handled after it
// wakes the wait that follows.
func (f *Follower) needAsk(after int64) bool {
	f.mu.Lock()
	st := f.stats
	f.mu.Unlock()
	return !st.Listening || after < st.LatestVersion || st.Announced > st.LatestVersion ||
		f.asked.IsZero() || time.Since(f.asked) >= f.cfg.PollInterval
}

// collect reads the versions after after from the catalog until a bound is
// reached or the latest version is included.
func (f *Follower) collect(ctx context.Context, after int64) (Batch, error) {
	b := Batch{FromVersion: after + 1, ToVersion: after, f: f} // empty
	for {
		resp, err := f.client.GetChanges(ctx, &catalogv1.GetChangesRequest{
			Table: f.cfg.Table, StartVersion: b.ToVersion + 1, Limit: changesPage,
		})
		f.mu.Lock()
		f.stats.Polls++
		if err == nil && resp.GetLatestVersion() > f.stats.LatestVersion {
			f.stats.LatestVersion = resp.GetLatestVersion()
		}
		if err == nil {
			// The catalog's word beats an event's: an event announcing a
			// version the catalog does not have counts no longer.
			f.stats.Announced = min(f.stats.Announced, resp.GetLatestVersion())
		}
		f.mu.Unlock()
		if err != nil {
			return Batch{}, fmt.Errorf("tablesource: changes of %s from version %d: %w", f.cfg.Table, b.ToVersion+1, err)
		}
		for _, ch := range resp.GetChanges() {
			if ch.GetVersion() != b.ToVersion+1 {
				return Batch{}, fmt.Errorf("%w: %s: version %d after %d", ErrInvalidChanges, f.cfg.Table, ch.GetVersion(), b.ToVersion)
			}
			v, err := versionOf(ch)
			if err != nil {
				return Batch{}, fmt.Errorf("tablesource: %s: %w", f.cfg.Table, err)
			}
			b.Versions = append(b.Versions, v)
			b.ToVersion = v.Version
			b.Rows += v.Rows
			b.Bytes += v.Bytes
			if f.full(b) {
				return b, nil
			}
		}
		if len(resp.GetChanges()) == 0 || b.ToVersion >= resp.GetLatestVersion() {
			return b, nil
		}
	}
}

// full reports whether b reached a bound.
func (f *Follower) full(b Batch) bool {
	return (f.cfg.MaxRows > 0 && b.Rows >= f.cfg.MaxRows) || (f.cfg.MaxBytes > 0 && b.Bytes >= f.cfg.MaxBytes)
}

// versionOf keeps the dataChange adds of one version.
func versionOf(ch *catalogv1.VersionChange) (Version, error) {
	v := Version{Version: ch.GetVersion(), Operation: ch.GetOperation(), MetadataChanged: ch.GetMetadataChanged()}
	for _, a := range ch.GetAdds() {
		if !a.GetDataChange() {
			continue // rows already read in an earlier version (compaction)
		}
		rows, err := numRecords(a.GetStats())
		if err != nil {
			return Version{}, fmt.Errorf("version %d: stats of %s: %w", v.Version, a.GetPath(), err)
		}
		v.Files = append(v.Files, delta.Add{
			Path:             delta.CanonicalPath(a.GetPath(), ""),
			PartitionValues:  a.GetPartitionValues(),
			Size:             a.GetSize(),
			ModificationTime: a.GetModificationTime(),
			DataChange:       true,
			Stats:            a.GetStats(),
			Tags:             a.GetTags(),
		})
		v.Rows += rows
		v.Bytes += a.GetSize()
	}
	return v, nil
}

// numRecords returns the row count of an add's stats JSON, 0 when unknown.
func numRecords(stats string) (int64, error) {
	if stats == "" {
		return 0, nil
	}
	var s struct {
		NumRecords int64 `json:"numRecords"`
	}
	if err := json.Unmarshal([]byte(stats), &s); err != nil {
		return 0, err
	}
	return s.NumRecords, nil
}

// deltaTable returns the followed table opened at the location the catalog
// gives, opening it at the first call.
func (f *Follower) deltaTable(ctx context.Context) (*delta.Table, error) {
	f.tableMu.Lock()
	defer f.tableMu.Unlock()
	if f.table != nil {
		return f.table, nil
	}
	resp, err := f.client.GetTable(ctx, &catalogv1.GetTableRequest{Name: f.cfg.Table})
	if err != nil {
		return nil, fmt.Errorf("tablesource: get table %s: %w", f.cfg.Table, err)
	}
	store, err := storeuri.Open(ctx, resp.GetTable().GetLocation())
	if err != nil {
		return nil, fmt.Errorf("tablesource: table %s: %w", f.cfg.Table, err)
	}
	f.table = delta.Open(store, delta.WithLogger(f.log))
	return f.table, nil
}

// store is a helper for Read: the table's store and its latest snapshot.
func (f *Follower) snapshot(ctx context.Context) (storage.Store, *delta.Snapshot, error) {
	t, err := f.deltaTable(ctx)
	if err != nil {
		return nil, nil, err
	}
	snap, err := t.Snapshot(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("tablesource: snapshot of %s: %w", f.cfg.Table, err)
	}
	return t.Store(), snap, nil
}
