package goldsink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/plantlake/plantlake/delta"
	"github.com/plantlake/plantlake/delta/reader"
	"github.com/plantlake/plantlake/devstack"
	"github.com/plantlake/plantlake/pipeline"
	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"

	"github.com/plantlake/plantlake/services/merge/internal/bronzetest"
	"github.com/plantlake/plantlake/services/merge/internal/gold"
	"github.com/plantlake/plantlake/services/merge/internal/mergeplan"
)

// env is a catalog process with bronze and gold, and a sink on gold.
type env struct {
	t      testing.TB
	ctx    context.Context
	client catalogv1.CatalogServiceClient
	bronze *bronzetest.Writer
	sink   *Sink
	spec   mergeplan.KeySpec
}

func newEnv(t testing.TB, strategy mergeplan.Strategy) *env {
	t.Helper()
	return newEnvCache(t, strategy, DefaultKeyCacheBytes)
}

// newEnvCache is newEnv with a key cache of keyCacheBytes (0: none).
func newEnvCache(t testing.TB, strategy mergeplan.Strategy, keyCacheBytes int64) *env {
	t.Helper()
	return newEnvCatalog(t, strategy, keyCacheBytes)
}

// newEnvCatalog is newEnvCache with extra flags for the catalog.
func newEnvCatalog(t testing.TB, strategy mergeplan.Strategy, keyCacheBytes int64, catalogArgs ...string) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	cat := devstack.Catalog(t, devstack.CatalogConfig{Args: append([]string{"--auto-maintenance=false"}, catalogArgs...)})
	client := catalogv1.NewCatalogServiceClient(cat.Conn(t))
	bronze, err := bronzetest.Open(ctx, client)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := mergeplan.NewKeySpec(gold.KeyColumns)
	if err != nil {
		t.Fatal(err)
	}
	sink, err := Open(ctx, client, Options{Strategy: strategy, Key: spec, KeyCacheBytes: keyCacheBytes}, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, ctx: ctx, client: client, bronze: bronze, sink: sink, spec: spec}
}

// merge writes each slice of readings as one bronze version, then merges
// those versions as one batch; it returns the commit's error.
func (e *env) merge(versions ...[]bronzetest.Reading) error {
	e.t.Helper()
	b := mergeplan.NewBatch(e.spec)
	var last int64
	for _, rs := range versions {
		v, err := e.bronze.Write(e.ctx, rs)
		if err != nil {
			e.t.Fatal(err)
		}
		rec := bronzetest.Record(rs)
		err = b.Append(e.ctx, v, rec)
		rec.Release()
		if err != nil {
			e.t.Fatal(err)
		}
		last = v
	}
	pos, err := e.sink.Positions(e.ctx, []string{gold.AppID})
	if err != nil {
		e.t.Fatal(err)
	}
	rows := b.Rows()
	_, err = e.sink.Commit(e.ctx, pipeline.Commit[*mergeplan.Data]{
		ReadVersion: pos.ReadVersion,
		Cut:         pipeline.Cut{Txns: []pipeline.Txn{{AppID: gold.AppID, Version: last}}, ReadAppIDs: []string{gold.AppID}},
		Data:        b.Flush(),
		Rows:        rows,
	})
	return err
}

func (e *env) mustMerge(versions ...[]bronzetest.Reading) {
	e.t.Helper()
	if err := e.merge(versions...); err != nil {
		e.t.Fatal(err)
	}
}

// goldRows reads every gold row, keyed by "sensor/measurement/ts", failing
// on a key seen twice.
func (e *env) goldRows() map[string]gold.Row {
	e.t.Helper()
	snap, err := e.sink.table.Snapshot(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	sc, err := reader.New(e.sink.store, snap, reader.Options{})
	if err != nil {
		e.t.Fatal(err)
	}
	defer sc.Close()
	out := map[string]gold.Row{}
	rr := gold.NewRowReader()
	for rec, err := range sc.Records(e.ctx) {
		if err != nil {
			e.t.Fatal(err)
		}
		if err := rr.Bind(rec, nil); err != nil {
			e.t.Fatal(err)
		}
		for i := range int(rec.NumRows()) {
			var r gold.Row
			rr.Read(i, &r)
			k := keyString(r.SensorID, r.Measurement, r.TS)
			if _, dup := out[k]; dup {
				e.t.Fatalf("gold holds key %s twice", k)
			}
			out[k] = r
		}
	}
	return out
}

func keyString(sensor, measurement string, ts int64) string {
	return fmt.Sprintf("%s/%s/%d", sensor, measurement, ts)
}

func rk(r bronzetest.Reading) string { return keyString(r.SensorID, r.Measurement, r.TS.UnixMicro()) }

// files returns gold's live files.
func (e *env) files() []delta.Add {
	snap, err := e.sink.table.Snapshot(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return snap.Files()
}

var day = time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)

// reading returns a reading of sensor at day+sec seconds from raw version rv.
func reading(sensor string, sec int, value float64, rv, offset int64) bronzetest.Reading {
	return bronzetest.Reading{
		SensorID: sensor, Measurement: "temperature", Line: "l1", Value: value,
		TS: day.Add(time.Duration(sec) * time.Second), RawVersion: rv,
		Topic: "plant_sensor_readings_raw", Partition: 0, Offset: offset,
	}
}

func TestFirstWinsDuplicatesInsideAcrossBatchesAndDays(t *testing.T) {
	e := newEnv(t, mergeplan.FirstWins)
	a := reading("press01", 0, 1, 1, 10)
	aDup := reading("press01", 0, 2, 2, 11) // QoS 1 redelivery, newer
	b := reading("press02", 0, 3, 1, 12)
	aNextDay := reading("press01", 86400, 4, 2, 13) // same sensor and time of day, next day
	late := reading("press03", -5*86400, 5, 2, 14)  // five days old
	e.mustMerge([]bronzetest.Reading{a, b}, []bronzetest.Reading{aDup, aNextDay, late})

	g := e.goldRows()
	if len(g) != 4 {
		t.Fatalf("gold has %d rows, want 4: %v", len(g), slices.Collect(maps.Keys(g)))
	}
	if got := g[rk(a)]; got.Value != 2 || got.RawVersion != 2 {
		t.Errorf("inside a batch, the newer duplicate must win: got value %v raw_version %d", got.Value, got.RawVersion)
	}
	if got := g[rk(late)]; got.EventDate != gold.EventDateOf(late.TS.UnixMicro()) {
		t.Errorf("late reading's event_date = %s", gold.FormatDate(got.EventDate))
	}
	parts := map[string]bool{}
	for _, f := range e.files() {
		parts[f.PartitionValues[gold.PartitionColumn]] = true
	}
	for _, d := range []time.Time{day, aNextDay.TS, late.TS} {
		if !parts[d.Format("2006-01-02")] {
			t.Errorf("no gold partition for %s: %v", d.Format("2006-01-02"), parts)
		}
	}

	// Across batches: a key already in gold is skipped, with any value.
	again := reading("press01", 0, 99, 3, 20)
	c := reading("press04", 1, 6, 3, 21)
	before := len(e.files())
	e.mustMerge([]bronzetest.Reading{again, c})
	g = e.goldRows()
	if len(g) != 5 {
		t.Fatalf("gold has %d rows after the second batch, want 5", len(g))
	}
	if got := g[rk(a)]; got.Value != 2 {
		t.Errorf("first_wins replaced a gold row: value %v", got.Value)
	}
	if n := len(e.files()); n != before+1 {
		t.Errorf("an insert-only merge went from %d files to %d, want one more", before, n)
	}
	cnt := e.sink.Counts()
	if cnt.Inserted != 5 || cnt.Updated != 0 || cnt.Duplicates != 2 {
		t.Errorf("counts = %+v, want 5 inserted, 2 duplicates", cnt)
	}

	// A batch of only known keys commits its position and no file.
	e.mustMerge([]bronzetest.Reading{again})
	if n := len(e.files()); n != before+1 {
		t.Errorf("a batch of duplicates added files: %d", n)
	}
	pos, err := e.sink.Positions(e.ctx, []string{gold.AppID})
	if err != nil {
		t.Fatal(err)
	}
	if pos.Versions[gold.AppID] != 4 {
		t.Errorf("gold's bronze position = %d, want 4", pos.Versions[gold.AppID])
	}
}

func TestLatestWinsReplacesOnlyTheFilesHoldingTheKeys(t *testing.T) {
	e := newEnv(t, mergeplan.LatestWins)
	e.mustMerge([]bronzetest.Reading{reading("a", 0, 1, 1, 1), reading("b", 0, 1, 1, 2)})
	e.mustMerge([]bronzetest.Reading{reading("c", 600, 1, 2, 3), reading("d", 600, 1, 2, 4)})
	first := e.files()
	if len(first) != 2 {
		t.Fatalf("gold has %d files, want 2", len(first))
	}
	// a: newer bronze row replaces; c: an older one (raw_version 1 < 2) does not.
	e.mustMerge([]bronzetest.Reading{reading("a", 0, 10, 3, 5), reading("c", 600, 10, 1, 6), reading("e", 0, 1, 3, 7)})
	g := e.goldRows()
	if len(g) != 5 {
		t.Fatalf("gold has %d rows, want 5", len(g))
	}
	if v := g[rk(reading("a", 0, 0, 0, 0))].Value; v != 10 {
		t.Errorf("a = %v, want the newer 10", v)
	}
	if v := g[rk(reading("c", 600, 0, 0, 0))].Value; v != 1 {
		t.Errorf("c = %v: an older bronze row replaced gold", v)
	}
	now := e.files()
	kept := 0
	for _, f := range now {
		for _, o := range first {
			if f.Path == o.Path {
				kept++
			}
		}
	}
	if kept != 1 {
		t.Errorf("%d of the two first files kept, want 1 (only a's file rewritten)", kept)
	}
	if cnt := e.sink.Counts(); cnt.Updated != 1 || cnt.RewrittenFiles != 1 {
		t.Errorf("counts = %+v, want 1 updated, 1 file rewritten", cnt)
	}
}

func TestConcurrentCompactionAbortsTheMerge(t *testing.T) {
	for _, strategy := range []mergeplan.Strategy{mergeplan.FirstWins, mergeplan.LatestWins} {
		t.Run(string(strategy), func(t *testing.T) {
			e := newEnv(t, strategy)
			var want []bronzetest.Reading
			for i := range 3 {
				batch := []bronzetest.Reading{reading(fmt.Sprint("s", i), i, 1, int64(i+1), int64(i))}
				e.mustMerge(batch)
				want = append(want, batch...)
			}
			compacted := false
			e.sink.beforeCommit = func(ctx context.Context) {
				if compacted {
					return
				}
				compacted = true
				resp, err := e.client.Optimize(ctx, &catalogv1.OptimizeRequest{Table: gold.Name})
				if err != nil || !resp.GetCommitted() {
					t.Fatalf("optimize: %v %v", resp, err)
				}
			}
			// s0 is in gold (skipped or replaced), s9 is new.
			next := []bronzetest.Reading{reading("s0", 0, 7, 9, 100), reading("s9", 9, 1, 9, 101)}
			err := e.merge(next)
			if !errors.Is(err, pipeline.ErrAborted) {
				t.Fatalf("merge during a compaction: %v, want ErrAborted", err)
			}
			if g := e.goldRows(); len(g) != 3 {
				t.Fatalf("after the aborted merge gold has %d rows, want 3", len(g))
			}
			// The runner merges the batch again; the bronze version exists already.
			b := mergeplan.NewBatch(e.spec)
			rec := bronzetest.Record(next)
			if err := b.Append(e.ctx, 4, rec); err != nil {
				t.Fatal(err)
			}
			rec.Release()
			pos, err := e.sink.Positions(e.ctx, []string{gold.AppID})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.sink.Commit(e.ctx, pipeline.Commit[*mergeplan.Data]{
				ReadVersion: pos.ReadVersion,
				Cut:         pipeline.Cut{Txns: []pipeline.Txn{{AppID: gold.AppID, Version: 4}}, ReadAppIDs: []string{gold.AppID}},
				Data:        b.Flush(), Rows: 2,
			}); err != nil {
				t.Fatal(err)
			}
			g := e.goldRows()
			if len(g) != 4 {
				t.Fatalf("gold has %d rows, want 4", len(g))
			}
			wantS0 := 1.0
			if strategy == mergeplan.LatestWins {
				wantS0 = 7
			}
			if v := g[rk(want[0])].Value; v != wantS0 {
				t.Errorf("s0 = %v, want %v", v, wantS0)
			}
		})
	}
}

// TestCompactionOrdersGoldBySensorAndTime checks gold's sortBy property
// with the catalog's compaction: the compacted file's rows come in
// (sensor_id, ts) order whatever order the merges wrote them in.
func TestCompactionOrdersGoldBySensorAndTime(t *testing.T) {
	e := newEnv(t, mergeplan.FirstWins)
	for _, s := range []string{"s9", "s5", "s1"} {
		e.mustMerge([]bronzetest.Reading{reading(s, 30, 1, 1, 0), reading(s, 10, 1, 1, 1)})
	}
	resp, err := e.client.Optimize(e.ctx, &catalogv1.OptimizeRequest{Table: gold.Name})
	if err != nil || !resp.GetCommitted() {
		t.Fatalf("optimize: %v %v", resp, err)
	}
	files := e.files()
	if len(files) != 1 {
		t.Fatalf("%d files after compaction, want 1", len(files))
	}
	var got []string
	for _, r := range e.fileKeyRows(files[0]) {
		got = append(got, fmt.Sprintf("%s@%d", r.SensorID, (r.TS-day.UnixMicro())/1e6))
	}
	want := []string{"s1@10", "s1@30", "s5@10", "s5@30", "s9@10", "s9@30"}
	if !slices.Equal(got, want) {
		t.Errorf("compacted rows in order %v, want %v", got, want)
	}
}

// fileKeyRows reads the sensor_id and ts of f's rows, in file order.
func (e *env) fileKeyRows(f delta.Add) []gold.Row {
	e.t.Helper()
	snap, err := e.sink.table.Snapshot(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []gold.Row
	err = e.sink.scan(e.ctx, snap, f, []string{"sensor_id", "ts"}, func(rec arrow.RecordBatch) error {
		rr := gold.NewRowReader()
		if err := rr.Bind(rec, nil); err != nil {
			return err
		}
		for i := range int(rec.NumRows()) {
			var r gold.Row
			rr.Read(i, &r)
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}
