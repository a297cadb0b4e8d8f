package reprocess_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/plantlake/plantlake/delta"
	"github.com/plantlake/plantlake/delta/reader"
	"github.com/plantlake/plantlake/devstack"
	"github.com/plantlake/plantlake/pipeline"
	"github.com/plantlake/plantlake/pipeline/tablesink"
	"github.com/plantlake/plantlake/pipeline/tablesource"
	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"

	"github.com/plantlake/plantlake/services/deserialize/internal/bronze"
	"github.com/plantlake/plantlake/services/deserialize/internal/deserializer"
	"github.com/plantlake/plantlake/services/deserialize/internal/parse"
	"github.com/plantlake/plantlake/services/deserialize/internal/reprocess"
	"github.com/plantlake/plantlake/services/deserialize/internal/rules"
)

const rawName = "raw.plant_sensor_readings"

// rawSchema is raw.plant_sensor_readings's Delta schema, copied from
// services/ingest/internal/rawtable/schema.go (DeltaSchema), which another
// module's internal package this test cannot import.
const rawSchema = `{"type":"struct","fields":[` +
	`{"name":"kafka_topic","type":"string","nullable":true,"metadata":{}},` +
	`{"name":"kafka_partition","type":"integer","nullable":true,"metadata":{}},` +
	`{"name":"kafka_offset","type":"long","nullable":true,"metadata":{}},` +
	`{"name":"kafka_timestamp","type":"timestamp","nullable":true,"metadata":{}},` +
	`{"name":"kafka_key","type":"string","nullable":true,"metadata":{}},` +
	`{"name":"headers","type":{"type":"array","elementType":{"type":"struct","fields":[` +
	`{"name":"key","type":"string","nullable":true,"metadata":{}},` +
	`{"name":"value","type":"binary","nullable":true,"metadata":{}}]},"containsNull":true},"nullable":true,"metadata":{}},` +
	`{"name":"bridge_ts","type":"timestamp","nullable":true,"metadata":{}},` +
	`{"name":"raw_payload","type":"binary","nullable":true,"metadata":{}},` +
	`{"name":"ingest_ts","type":"timestamp","nullable":true,"metadata":{}},` +
	`{"name":"ingest_date","type":"date","nullable":true,"metadata":{}}]}`

// utc is Delta's timestamp type.
var utc = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}

// rawArrow is raw's Arrow schema (rawtable.ArrowSchema, copied likewise).
var rawArrow = arrow.NewSchema([]arrow.Field{
	{Name: "kafka_topic", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "kafka_partition", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
	{Name: "kafka_offset", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "kafka_timestamp", Type: utc, Nullable: true},
	{Name: "kafka_key", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "headers", Type: arrow.ListOf(arrow.StructOf(
		arrow.Field{Name: "key", Type: arrow.BinaryTypes.String, Nullable: true},
		arrow.Field{Name: "value", Type: arrow.BinaryTypes.Binary, Nullable: true},
	)), Nullable: true},
	{Name: "bridge_ts", Type: utc, Nullable: true},
	{Name: "raw_payload", Type: arrow.BinaryTypes.Binary, Nullable: true},
	{Name: "ingest_ts", Type: utc, Nullable: true},
	{Name: "ingest_date", Type: arrow.FixedWidthTypes.Date32, Nullable: true},
}, nil)

// ingest is the ingest time of every raw row; readings are stamped with it.
var ingest = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// The rules: "cap" dead-letters temperatures from 100 °C in the first
// set and from 1000 °C in the second, so the readings in between move
// from dead letters to bronze.
const (
	rulesV1 = "custom:\n  - name: cap\n    action: drop\n    expr: measurement != \"temperature\" || value < 100.0\n"
	rulesV2 = "custom:\n  - name: cap\n    action: drop\n    expr: measurement != \"temperature\" || value < 1000.0\n"
)

// row is a row of bronze or dead letters as the test compares them.
type row struct {
	RawVersion int64
	Offset     int64
	Code       string // dead letters' error_code
}

// harness writes raw and follows it into the targets.
type harness struct {
	t       *testing.T
	client  catalogv1.CatalogServiceClient
	pattern *parse.TopicPattern
	log     *slog.Logger
	raw     *tablesink.Target
	version int64
	offset  int64
}

// writeRaw commits one raw version of the given payloads and returns it.
func (h *harness) writeRaw(payloads ...string) int64 {
	h.t.Helper()
	b := array.NewRecordBuilder(memory.DefaultAllocator, rawArrow)
	defer b.Release()
	for _, p := range payloads {
		b.Field(0).(*array.StringBuilder).Append("plant.raw")
		b.Field(1).(*array.Int32Builder).Append(0)
		b.Field(2).(*array.Int64Builder).Append(h.offset)
		b.Field(3).(*array.TimestampBuilder).Append(arrow.Timestamp(ingest.UnixMicro()))
		b.Field(4).(*array.StringBuilder).Append("plant/l1/s1/temperature")
		b.Field(5).(*array.ListBuilder).AppendNull()
		b.Field(6).(*array.TimestampBuilder).AppendNull()
		b.Field(7).(*array.BinaryBuilder).Append([]byte(p))
		b.Field(8).(*array.TimestampBuilder).Append(arrow.Timestamp(ingest.UnixMicro()))
		b.Field(9).(*array.Date32Builder).Append(arrow.Date32FromTime(ingest))
		h.offset++
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	res, err := h.raw.Commit(context.Background(), tablesink.Write{ReadVersion: h.version, Rows: len(payloads),
		Files: []tablesink.File{{PartitionValues: map[string]string{"ingest_date": ingest.Format(time.DateOnly)}, Record: rec}}})
	if err != nil {
		h.t.Fatalf("write raw: %v", err)
	}
	h.version = res.Version
	return res.Version
}

// reading is a valid temperature payload of value v.
func reading(v float64) string {
	return fmt.Sprintf(`{"sensor_id":"s1","measurement":"temperature","value":%g,"unit":"C","ts":%d}`, v, ingest.Unix())
}

// runner returns a deserialize runner following raw with set, as the app
// wires it (polling, no Kafka events).
func (h *harness) runner(set *rules.Set, runOnce bool) (*pipeline.Runner[[]tablesink.Output], *tablesource.Source) {
	h.t.Helper()
	ctx := context.Background()
	var targets []*tablesink.Target
	for _, tab := range deserializer.Tables {
		tg, err := tablesink.Open(ctx, h.client, tab, h.log)
		if err != nil {
			h.t.Fatal(err)
		}
		targets = append(targets, tg)
	}
	multi := tablesink.NewMulti(targets...)
	f, err := tablesource.New(tablesource.Config{Table: rawName, PollInterval: 50 * time.Millisecond}, h.client, h.log)
	if err != nil {
		h.t.Fatal(err)
	}
	rows := deserializer.New(h.pattern, set)
	src, err := tablesource.NewSource(f, tablesource.SourceConfig{AppID: deserializer.AppID(rawName), Limit: multi.Limit,
		RunOnce: runOnce, Wait: 100 * time.Millisecond}, rows, h.log)
	if err != nil {
		h.t.Fatal(err)
	}
	r, err := pipeline.New(pipeline.Config{Name: "deserialize", Target: bronze.ReadingsTable, BatchMaxRows: 1 << 20,
		BatchMaxBytes: 1 << 30, BatchMaxAge: 50 * time.Millisecond, RunOnce: runOnce},
		src, pipeline.Batch[[]tablesink.Output](rows), multi, h.log, nil, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	return r, src
}

// follow derives raw until caught up.
func (h *harness) follow(set *rules.Set) {
	h.t.Helper()
	r, _ := h.runner(set, true)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := r.Run(ctx); err != nil {
		h.t.Fatalf("follow raw: %v", err)
	}
}

// snapshot reads a table's latest snapshot through its folder.
func (h *harness) snapshot(name string) (*delta.Table, *delta.Snapshot) {
	h.t.Helper()
	ctx := context.Background()
	resp, err := h.client.GetTable(ctx, &catalogv1.GetTableRequest{Name: name})
	if err != nil {
		h.t.Fatal(err)
	}
	store, err := tablesink.OpenLocation(ctx, resp.GetTable().GetLocation())
	if err != nil {
		h.t.Fatal(err)
	}
	dt := delta.Open(store)
	snap, err := dt.Snapshot(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	return dt, snap
}

// rows reads every row of a target with the delta reader, sorted.
func (h *harness) rows(name string) []row {
	h.t.Helper()
	dt, snap := h.snapshot(name)
	cols := []string{"raw_version", "kafka_offset"}
	if name == bronze.DeadLettersTable {
		cols = append(cols, "error_code")
	}
	got, err := reader.Rows(context.Background(), dt.Store(), snap, reader.Options{Columns: cols})
	if err != nil {
		h.t.Fatalf("read %s: %v", name, err)
	}
	var out []row
	for _, m := range got {
		r := row{RawVersion: m["raw_version"].(int64), Offset: m["kafka_offset"].(int64)}
		if c, ok := m["error_code"].(string); ok {
			r.Code = c
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b row) int { return int(a.Offset - b.Offset) })
	return out
}

// files returns a target's live file paths.
func (h *harness) files(name string) []string {
	h.t.Helper()
	_, snap := h.snapshot(name)
	var out []string
	for _, a := range snap.Files() {
		out = append(out, a.Path)
	}
	return out
}

// change returns what a table's version did, with the paths it removed.
func (h *harness) change(name string, version int64) (*catalogv1.VersionChange, []string) {
	h.t.Helper()
	resp, err := h.client.GetChanges(context.Background(), &catalogv1.GetChangesRequest{Table: name, StartVersion: version, EndVersion: &version})
	if err != nil || len(resp.GetChanges()) != 1 {
		h.t.Fatalf("changes of %s at %d: %v", name, version, err)
	}
	ch := resp.GetChanges()[0]
	var removed []string
	for _, r := range ch.GetRemoves() {
		removed = append(removed, delta.CanonicalPath(r.GetPath(), ""))
	}
	slices.Sort(removed)
	return ch, removed
}

// dataChanges counts a version's adds by their dataChange flag.
func dataChanges(ch *catalogv1.VersionChange) (changed, kept int) {
	for _, a := range ch.GetAdds() {
		if a.GetDataChange() {
			changed++
		} else {
			kept++
		}
	}
	return changed, kept
}

func mustRules(t *testing.T, src string) *rules.Set {
	t.Helper()
	set, err := rules.Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// TestReprocessMovesFixedDeadLetters: readings dead-lettered by a rule
// move into bronze when the rule is fixed and their raw versions are
// reprocessed; the other rows stay where they were, files without rows of
// the range are not rewritten, a second run changes no row, a range past
// the derived versions is refused, a raw compaction changes nothing, and a
// version whose raw files were vacuumed is refused by name.
func TestReprocessMovesFixedDeadLetters(t *testing.T) {
	cat := devstack.Catalog(t, devstack.CatalogConfig{Args: []string{"--auto-maintenance=false", "--min-vacuum-retention=0s"}})
	client := catalogv1.NewCatalogServiceClient(cat.Conn(t))
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	pattern, err := parse.NewTopicPattern("plant/{line}/{device}/{measurement}", "p1")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := tablesink.Open(ctx, client, tablesink.Table{Name: rawName, SchemaJSON: rawSchema, PartitionColumns: []string{"ingest_date"}}, log)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, client: client, pattern: pattern, log: log, raw: raw}
	v1, v2 := mustRules(t, rulesV1), mustRules(t, rulesV2)

	// Two follow runs, so that each target has files of versions 1..3
	// and files of versions 4..6.
	h.writeRaw(reading(20), reading(150))          // v1: offsets 0, 1
	h.writeRaw(reading(21), reading(500), `{"bad`) // v2: offsets 2, 3, 4
	h.writeRaw(reading(600), reading(22))          // v3: offsets 5, 6
	h.follow(v1)
	h.writeRaw(reading(23), reading(700))       // v4: offsets 7, 8
	h.writeRaw(reading(2000), reading(24))      // v5: offsets 9, 10
	last := h.writeRaw(reading(25), `not json`) // v6: offsets 11, 12
	h.follow(v1)

	wantBronze := []row{{1, 0, ""}, {2, 2, ""}, {3, 6, ""}, {4, 7, ""}, {5, 10, ""}, {6, 11, ""}}
	wantDL := []row{{1, 1, "cap"}, {2, 3, "cap"}, {2, 4, "parse.invalid_json"}, {3, 5, "cap"}, {4, 8, "cap"}, {5, 9, "cap"}, {6, 12, "parse.invalid_json"}}
	if got := h.rows(bronze.ReadingsTable); !slices.Equal(got, wantBronze) {
		t.Fatalf("bronze before:\n got %v\nwant %v", got, wantBronze)
	}
	if got := h.rows(bronze.DeadLettersTable); !slices.Equal(got, wantDL) {
		t.Fatalf("dead letters before:\n got %v\nwant %v", got, wantDL)
	}
	filesBefore := map[string][]string{}
	for _, name := range []string{bronze.DeadLettersTable, bronze.ReadingsTable} {
		filesBefore[name] = h.files(name)
		if len(filesBefore[name]) != 2 {
			t.Fatalf("%s has files %v, want one per follow run", name, filesBefore[name])
		}
	}

	// Reprocess 2..3 with the fixed rule, on a runner that follows raw.
	r, src := h.runner(v1, false)
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("runner: %v", err)
		}
	}()
	for deadline := time.Now().Add(30 * time.Second); src.Status().Position != last; {
		if time.Now().After(deadline) {
			t.Fatalf("runner at raw version %d, want %d", src.Status().Position, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
	rp := reprocess.New(client, rawName, pattern, log)
	run := func(from, to int64) (reprocess.Result, error) {
		var res reprocess.Result
		err := r.Exclusive(ctx, func(ctx context.Context) error {
			var err error
			res, err = rp.Run(ctx, from, to, v2)
			return err
		})
		return res, err
	}
	res, err := run(2, 3)
	if err != nil {
		t.Fatalf("reprocess: %v", err)
	}
	wantBronzeAfter := []row{{1, 0, ""}, {2, 2, ""}, {2, 3, ""}, {3, 5, ""}, {3, 6, ""}, {4, 7, ""}, {5, 10, ""}, {6, 11, ""}}
	wantDLAfter := []row{{1, 1, "cap"}, {2, 4, "parse.invalid_json"}, {4, 8, "cap"}, {5, 9, "cap"}, {6, 12, "parse.invalid_json"}}
	check := func(when string) {
		t.Helper()
		if got := h.rows(bronze.ReadingsTable); !slices.Equal(got, wantBronzeAfter) {
			t.Fatalf("bronze %s:\n got %v\nwant %v", when, got, wantBronzeAfter)
		}
		if got := h.rows(bronze.DeadLettersTable); !slices.Equal(got, wantDLAfter) {
			t.Fatalf("dead letters %s:\n got %v\nwant %v", when, got, wantDLAfter)
		}
	}
	check("after reprocess")
	if res.Valid != 4 || res.DeadLettered != 1 || res.RemovedValid != 2 || res.RemovedDeadLettered != 3 {
		t.Errorf("result %+v, want 4 valid, 1 dead-lettered, 2 and 3 removed", res)
	}
	// Only the files of the first follow run (versions 1..3) were
	// rewritten; those of versions 4..6 are live still.
	for name, version := range map[string]int64{bronze.DeadLettersTable: res.DeadLettersVersion, bronze.ReadingsTable: res.BronzeVersion} {
		ch, removed := h.change(name, version)
		after := h.files(name)
		var untouched int
		for _, f := range filesBefore[name] {
			if slices.Contains(after, f) {
				untouched++
			} else if !slices.Contains(removed, f) {
				t.Errorf("%s: %s is gone but not removed by the reprocess commit", name, f)
			}
		}
		if len(removed) != 1 || untouched != 1 {
			t.Errorf("%s: the reprocess removed %v; %d of %v untouched, want 1 removed and 1 untouched", name, removed, untouched, filesBefore[name])
		}
		// The rewritten file's rows of raw version 1 come back as a
		// rearrangement (dataChange=false), which merge does not read
		// again; the range's rows as new data.
		if changed, kept := dataChanges(ch); changed != 1 || kept != 1 {
			t.Errorf("%s: the reprocess added %d files with dataChange and %d without, want 1 and 1", name, changed, kept)
		}
		if txns := ch.GetTxns(); len(txns) != 1 || txns[0].GetAppId() != reprocess.AppID(rawName) || txns[0].GetVersion() != 1 {
			t.Errorf("%s: the reprocess committed txns %v, want %s at 1", name, txns, reprocess.AppID(rawName))
		}
		if ch.GetOperation() != "REPROCESS" {
			t.Errorf("%s: operation %q", name, ch.GetOperation())
		}
	}

	// Again: the same rows.
	again, err := run(2, 3)
	if err != nil {
		t.Fatalf("second reprocess: %v", err)
	}
	check("after a second reprocess")
	for name, version := range map[string]int64{bronze.DeadLettersTable: again.DeadLettersVersion, bronze.ReadingsTable: again.BronzeVersion} {
		ch, _ := h.change(name, version)
		if changed, kept := dataChanges(ch); changed != 1 || kept != 0 {
			t.Errorf("%s: the second reprocess added %d files with dataChange and %d without, want 1 and 0", name, changed, kept)
		}
		if txns := ch.GetTxns(); len(txns) != 1 || txns[0].GetVersion() != 2 {
			t.Errorf("%s: the second reprocess committed txns %v, want version 2", name, txns)
		}
	}
	if again.Valid != 4 || again.DeadLettered != 1 || again.RemovedValid != 4 || again.RemovedDeadLettered != 1 {
		t.Errorf("second result %+v, want 4 valid, 1 dead-lettered, 4 and 1 removed", again)
	}

	// The follower goes on after the reprocess: a new raw version lands
	// in the targets with the follower's rules, beside the reprocessed rows.
	next := h.writeRaw(reading(26))
	for deadline := time.Now().Add(30 * time.Second); src.Status().Position != next; {
		if time.Now().After(deadline) {
			t.Fatalf("runner at raw version %d after the reprocess, want %d", src.Status().Position, next)
		}
		time.Sleep(50 * time.Millisecond)
	}
	wantBronzeAfter = append(wantBronzeAfter, row{next, 13, ""})
	check("after following on")

	// Past the position, or not a range: refused, nothing written.
	for _, rg := range [][2]int64{{5, next + 1}, {-1, 2}, {3, 2}} {
		if _, err := run(rg[0], rg[1]); !errors.Is(err, reprocess.ErrRange) {
			t.Errorf("reprocess %v: %v, want ErrRange", rg, err)
		}
	}
	check("after refused ranges")

	// A raw compaction re-adds the rows with dataChange=false: the
	// versions' own files are read still, until raw is vacuumed.
	opt, err := client.Optimize(ctx, &catalogv1.OptimizeRequest{Table: rawName})
	if err != nil || !opt.GetCommitted() {
		t.Fatalf("optimize raw: %v (%v)", err, opt)
	}
	if _, err := run(2, 3); err != nil {
		t.Fatalf("reprocess after a raw compaction: %v", err)
	}
	check("after a reprocess after a raw compaction")
	if _, err := client.Vacuum(ctx, &catalogv1.VacuumRequest{Table: rawName, Retention: durationpb.New(0)}); err != nil {
		t.Fatalf("vacuum raw: %v", err)
	}
	if _, err := run(2, 3); !errors.Is(err, reprocess.ErrFilesGone) || !strings.Contains(err.Error(), "version 2") {
		t.Errorf("reprocess after raw was vacuumed: %v, want ErrFilesGone naming version 2", err)
	}
	check("after a refused reprocess of vacuumed versions")
}
