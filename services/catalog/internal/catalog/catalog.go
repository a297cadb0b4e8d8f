// Package catalog is the catalog's engine: it owns the Delta logs of every
// table in a warehouse, validates and serializes commits per table (grouping
// waiting blind appends into one version), checks conflicts, announces new
// versions, and schedules maintenance. It keeps no state but the logs: all it
// holds in memory is rebuilt from them on first use.
package catalog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plantlake/plantlake/delta"
	"github.com/plantlake/plantlake/delta/storage"
	"github.com/plantlake/plantlake/services/catalog/internal/maintenance"
	"github.com/plantlake/plantlake/services/catalog/internal/warehouse"
)

// CommitEvent describes a new table version, for announcements.
type CommitEvent struct {
	Table        string
	Location     string
	Version      int64
	Operation    string
	Timestamp    time.Time
	FilesAdded   int64
	FilesRemoved int64
	RowsAdded    int64
	BytesAdded   int64
}

// Announcer is told about every new table version and, at start, about
// every table's latest version. Announce must not block.
type Announcer interface {
	Announce(CommitEvent)
}

// DefaultMaxOptimizeMemory is Config.MaxOptimizeMemory's default: with the
// sorted copy and the encoded file, a compaction stays near 100 MiB, and the
// catalog under 256 MiB (the end-to-end benchmark saw 323 MiB when only the
// 64 MiB of file bytes bounded it).
const DefaultMaxOptimizeMemory = 32 << 20

// Config configures a Catalog.
type Config struct {
	// Warehouse is the warehouse: a folder, or an object-store URI that
	// warehouse.Open takes (s3://, abfss://, az://).
	Warehouse string
	// MaxGroup bounds how many blind appends share one version (default 256).
	MaxGroup int
	// MaintenanceWorkers bounds concurrent maintenance jobs (default 1).
	MaintenanceWorkers int
	// MaintenanceTick is how often every table is looked at for time-based
	// maintenance such as vacuum (default 1 minute; negative turns it off).
	MaintenanceTick time.Duration
	// AutoMaintenance turns the policy-driven background maintenance on.
	AutoMaintenance bool
	// MaxOptimizeFiles bounds the input files of one compaction (default 1000).
	MaxOptimizeFiles int
	// MaxOptimizeBytes bounds the input bytes of one compaction, which reads
	// its input into memory (default 64 MiB).
	MaxOptimizeBytes int64
	// MaxOptimizeMemory bounds the decoded rows one compaction holds
	// (default 32 MiB; sorting by the table's sortBy holds a second copy):
	// files decode to several times their size. A stitching compaction
	// holds the new file's bytes instead, so it bounds a stitched file.
	MaxOptimizeMemory int64
	// StitchMinRowGroupRows is the fewest rows the row groups of a
	// compaction's input files hold on average for it to copy their column
	// chunks into the new file instead of decoding and re-encoding their
	// rows (datafile.Stitch); 0 is datafile.DefaultStitchMinRowGroupRows,
	// negative never stitches.
	StitchMinRowGroupRows int64
	// MinVacuumRetention is the smallest retention a Vacuum call may ask
	// for: a shorter one could delete the files of a commit in flight.
	MinVacuumRetention time.Duration
}

// Catalog is the engine. Create it with New, serve calls while Run runs,
// and call Close when done.
type Catalog struct {
	cfg       Config
	log       *slog.Logger
	root      string // absolute warehouse folder, or object-store URI
	loc       *warehouse.Location
	store     storage.Store
	announcer Announcer
	maint     *maintenance.Scheduler

	ctx    context.Context // ends at Close; owns the table writers
	cancel context.CancelFunc
	wg     sync.WaitGroup

	requests, versions, conflicts atomic.Uint64

	mu     sync.Mutex
	tables map[string]*table
	// loading serializes loading and creating tables.
	loading sync.Mutex
}

// table is one table's in-memory state and writer.
type table struct {
	name     warehouse.Name
	store    storage.Store
	dt       *delta.Table
	dir      string // the table's folder
	location string
	log      *slog.Logger
	maxGroup int
	// minVacuumRetention is the floor of delta.deletedFileRetentionDuration
	// (Config.MinVacuumRetention).
	minVacuumRetention time.Duration
	// committed is called by the writer after each commit.
	committed func(CommitEvent)
	// outcome is called by the writer with each request's outcome.
	outcome func(err error)

	mu sync.RWMutex // guards st's fields for readers; the writer is the only mutator
	st *tableState

	// logFolder, on a local warehouse, is the table's _delta_log for the
	// writer's put-if-absent of each version, with the temporary file of
	// the next version made after a commit is acknowledged (sparing is set
	// while that runs); nil on an object store.
	logFolder *storage.Folder
	sparing   atomic.Bool

	// ctx ends when the catalog closes; commits are written under it, not
	// under the request's context, so that a client that gives up does not
	// fail the others' commits of the same round.
	ctx context.Context

	qmu    sync.Mutex
	queue  []*prepared
	closed bool
	// writing is set while a leader or the writer goroutine is writing;
	// whoever set it owns the queue until it clears it.
	writing bool
	// leaders counts the callers writing as leaders, for the writer
	// goroutine to wait for at close.
	leaders sync.WaitGroup
	// wake hands the queue from a leader to the writer goroutine.
	wake chan struct{}
	// opMu serializes maintenance operations of the table (checkpoint,
	// cleanup, vacuum, optimize) with each other.
	opMu sync.Mutex
	// lastVacuum is when automatic vacuum last ran (guarded by opMu).
	lastVacuum time.Time
	// lastLogCleanup is when automatic log cleanup last ran (guarded by
	// opMu).
	lastLogCleanup time.Time
	// checkpointActions is how many actions the newest checkpoint holds
	// (guarded by opMu; 0 if unknown), for the adaptive checkpoint
	// interval.
	checkpointActions int64
	// decodedPerFileByte is how many bytes the rows of this table's last
	// compacted file took decoded, per byte of that file (guarded by opMu;
	// 0 until a compaction ran). With MaxOptimizeMemory it gives the
	// largest file a compaction can write, which is then the target: a file
	// near that size cannot grow and must not count as small, or every
	// commit would rewrite it.
	decodedPerFileByte float64
}

// New opens the warehouse at cfg.Warehouse, creating the folder if needed.
// announcer may be nil.
func New(cfg Config, announcer Announcer, log *slog.Logger) (*Catalog, error) {
	if cfg.MaxGroup <= 0 {
		cfg.MaxGroup = 256
	}
	if cfg.MaintenanceWorkers <= 0 {
		cfg.MaintenanceWorkers = 1
	}
	if cfg.MaintenanceTick == 0 {
		cfg.MaintenanceTick = time.Minute
	}
	if cfg.MaxOptimizeFiles <= 0 {
		cfg.MaxOptimizeFiles = 1000
	}
	if cfg.MaxOptimizeBytes <= 0 {
		cfg.MaxOptimizeBytes = 64 << 20
	}
	if cfg.MaxOptimizeMemory <= 0 {
		cfg.MaxOptimizeMemory = DefaultMaxOptimizeMemory
	}
	loc, err := warehouse.Open(context.Background(), cfg.Warehouse)
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Catalog{
		cfg: cfg, log: log, root: loc.URI, loc: loc, store: loc.Store, announcer: announcer,
		ctx: ctx, cancel: cancel, tables: map[string]*table{},
	}
	c.maint = maintenance.NewScheduler(c.maintain, cfg.MaintenanceWorkers, max(cfg.MaintenanceTick, 0), log)
	return c, nil
}

// Root returns the warehouse folder or object-store URI.
func (c *Catalog) Root() string { return c.root }

// Run announces every table's latest version, then runs background
// maintenance until ctx ends.
func (c *Catalog) Run(ctx context.Context) error {
	if err := c.announceAll(ctx); err != nil && ctx.Err() == nil {
		c.log.Warn("announcing tables at start", "err", err)
	}
	if !c.cfg.AutoMaintenance {
		<-ctx.Done()
		return nil
	}
	return c.maint.Run(ctx)
}

// Close stops the table writers (commits waiting in their queues fail with
// ErrClosed) and waits for them.
func (c *Catalog) Close() {
	c.cancel()
	c.wg.Wait()
}

// announceAll announces the latest version of every table.
func (c *Catalog) announceAll(ctx context.Context) error {
	names, err := c.listNames(ctx, "")
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range names {
		t, err := c.table(ctx, n.String(), "table")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		t.mu.RLock()
		ev := CommitEvent{Table: n.String(), Location: t.location, Version: t.st.version, Timestamp: t.st.timestamp}
		t.mu.RUnlock()
		c.announce(ev)
		if c.cfg.AutoMaintenance {
			c.maint.Notify(n.String())
		}
	}
	c.log.Info("announced tables", "tables", len(names))
	return errors.Join(errs...)
}

func (c *Catalog) announce(ev CommitEvent) {
	if c.announcer != nil {
		c.announcer.Announce(ev)
	}
}

// table returns the loaded table called name; field names the request field
// for an invalid name. A table that does not exist is ErrNotFound.
func (c *Catalog) table(ctx context.Context, name, field string) (*table, error) {
	n, err := warehouse.ParseName(name)
	if err != nil {
		return nil, badField(field, "%v", err)
	}
	c.mu.Lock()
	t := c.tables[name]
	c.mu.Unlock()
	if t != nil {
		return t, nil
	}
	c.loading.Lock()
	defer c.loading.Unlock()
	c.mu.Lock()
	t = c.tables[name]
	c.mu.Unlock()
	if t != nil {
		return t, nil
	}
	return c.load(ctx, n)
}

// load reads a table from its log and starts its writer. The caller holds
// c.loading.
func (c *Catalog) load(ctx context.Context, n warehouse.Name) (*table, error) {
	if c.ctx.Err() != nil {
		return nil, ErrClosed
	}
	store, err := storage.Sub(c.store, n.Dir())
	if err != nil {
		return nil, fmt.Errorf("table store %s: %w", n, err)
	}
	dt := delta.Open(store, delta.WithLogger(c.log))
	snap, err := dt.Snapshot(ctx)
	if errors.Is(err, delta.ErrNotATable) {
		return nil, fmt.Errorf("table %s: %w", n, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("load table %s: %w", n, err)
	}
	st, err := stateFromSnapshot(ctx, store, snap)
	if err != nil {
		return nil, fmt.Errorf("load table %s: %w", n, err)
	}
	var folder *storage.Folder
	if dir := c.loc.TableDir(n); dir != "" {
		local, err := storage.NewLocal(dir)
		if err == nil {
			folder, err = local.Folder(delta.LogDir)
		}
		if err != nil {
			return nil, fmt.Errorf("load table %s: open log: %w", n, err)
		}
	}
	t := &table{
		name: n, store: store, dt: dt, st: st, dir: c.loc.TableDir(n), logFolder: folder,
		location:           c.location(n),
		log:                c.log.With("table", n.String()),
		maxGroup:           c.cfg.MaxGroup,
		minVacuumRetention: c.cfg.MinVacuumRetention,
		wake:               make(chan struct{}, 1),
		ctx:                c.ctx,
		checkpointActions:  st.lastCheckpointActions,
	}
	t.committed = func(ev CommitEvent) {
		c.versions.Add(1)
		ev.Location = t.location
		c.announce(ev)
		if c.cfg.AutoMaintenance {
			c.maint.Notify(ev.Table)
		}
	}
	t.outcome = func(err error) {
		switch {
		case err == nil:
			c.requests.Add(1)
		case errors.Is(err, ErrConflict):
			c.conflicts.Add(1)
		}
	}
	c.wg.Go(func() { t.writeLoop(c.ctx) })
	c.mu.Lock()
	c.tables[n.String()] = t
	c.mu.Unlock()
	return t, nil
}

// location is the table folder's URI (file:// on a local warehouse), with
// a trailing slash.
func (c *Catalog) location(n warehouse.Name) string { return c.loc.TableURI(n) }

// listNames walks the warehouse two levels deep for folders holding a
// _delta_log; schema "" means every schema.
func (c *Catalog) listNames(ctx context.Context, schema string) ([]warehouse.Name, error) {
	var schemas []string
	if schema != "" {
		schemas = []string{schema}
	} else {
		entries, err := c.store.List(ctx, "")
		if err != nil {
			return nil, fmt.Errorf("list warehouse: %w", err)
		}
		for _, e := range entries {
			if e.IsDir && warehouse.IsIdent(e.Name()) {
				schemas = append(schemas, e.Name())
			}
		}
	}
	var out []warehouse.Name
	for _, s := range schemas {
		entries, err := c.store.List(ctx, s)
		if errors.Is(err, storage.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list schema %s: %w", s, err)
		}
		for _, e := range entries {
			if !e.IsDir || !warehouse.IsIdent(e.Name()) {
				continue
			}
			fi, err := c.store.Stat(ctx, storage.Join(s, e.Name(), delta.LogDir))
			if err != nil || !fi.IsDir {
				continue
			}
			out = append(out, warehouse.Name{Schema: s, Table: e.Name()})
		}
	}
	return out, nil
}

// Stats counts the catalog's commits since it started.
type Stats struct {
	// Requests is the number of commit requests committed.
	Requests uint64
	// Versions is the number of versions written for them (fewer than
	// Requests when blind appends were grouped).
	Versions uint64
	// Conflicts is the number of commit requests aborted by a conflict.
	Conflicts uint64
}

// Stats returns the counters.
func (c *Catalog) Stats() Stats {
	return Stats{Requests: c.requests.Load(), Versions: c.versions.Load(), Conflicts: c.conflicts.Load()}
}
