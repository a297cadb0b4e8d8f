package service

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/plantlake/plantlake/delta"
	"github.com/plantlake/plantlake/devstack"
	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"
)

// wantStatus fails unless err is one of codes and its message holds every
// one of contains.
func wantStatus(t *testing.T, what string, err error, want []codes.Code, contains ...string) {
	t.Helper()
	st := status.Convert(err)
	ok := false
	for _, c := range want {
		ok = ok || st.Code() == c
	}
	for _, s := range contains {
		ok = ok && strings.Contains(st.Message(), s)
	}
	if !ok {
		t.Errorf("%s: got %v %q, want %v containing %q", what, st.Code(), st.Message(), want, contains)
	}
}

var invalid = []codes.Code{codes.InvalidArgument}

// TestAppendOnlyThroughCatalog: a remove with dataChange=true into a table
// with delta.appendOnly=true is refused, naming the property, as
// delta.Table.Commit refuses it.
func TestAppendOnlyThroughCatalog(t *testing.T) {
	wh := t.TempDir()
	tc := startCatalog(t, wh, "--auto-maintenance=false")
	c := tc.client
	const table = "raw.append_only"
	createTable(t, c, table, map[string]string{"delta.appendOnly": "true"})
	f := putFile(t, wh, table, "day=2024-01-01/a.parquet", 10)
	if _, err := c.Commit(ctxT(t), &catalogv1.CommitRequest{Table: table, ReadVersion: 0, BlindAppend: true, Adds: []*catalogv1.AddFile{f}}); err != nil {
		t.Fatal(err)
	}
	_, err := c.Commit(ctxT(t), &catalogv1.CommitRequest{Table: table, ReadVersion: 1, Operation: "DELETE",
		Removes: []*catalogv1.RemoveFile{{Path: f.GetPath(), DataChange: true}}})
	wantStatus(t, "remove from an append-only table", err, []codes.Code{codes.InvalidArgument, codes.FailedPrecondition}, "delta.appendOnly", "removes[0]")
	snap, err := c.GetSnapshot(ctxT(t), &catalogv1.GetSnapshotRequest{Table: table})
	if err != nil || snap.GetVersion() != 1 || len(snap.GetFiles()) != 1 {
		t.Fatalf("after the refused remove: %v, %v; want version 1 with its file", snap, err)
	}
}

// commitInfos reads commitInfo (the first action) of every version.
func commitInfos(t *testing.T, dir string, latest int64) []delta.CommitInfo {
	t.Helper()
	var out []delta.CommitInfo
	for v := int64(0); v <= latest; v++ {
		f, err := os.Open(filepath.Join(dir, filepath.FromSlash(delta.CommitPath(v))))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		sc.Scan()
		f.Close()
		acts, err := delta.ParseActions(sc.Bytes())
		if err != nil || len(acts) != 1 || acts[0].CommitInfo == nil {
			t.Fatalf("version %d: first line %q is not commitInfo: %v", v, sc.Text(), err)
		}
		out = append(out, *acts[0].CommitInfo)
	}
	return out
}

// TestInCommitTimestampsThroughCatalog: a table created with
// delta.enableInCommitTimestamps gets the inCommitTimestamp writer feature;
// every version the catalog writes, version 0 and grouped appends included,
// carries an increasing in-commit timestamp in its first action; time
// travel by timestamp follows them, not the files' modification times; and
// delta-rs reads the table.
func TestInCommitTimestampsThroughCatalog(t *testing.T) {
	py := devstack.Python(t)
	wh := t.TempDir()
	tc := startCatalog(t, wh, "--auto-maintenance=false")
	c := tc.client
	const table = "bronze.ict"
	schema := createReadings(t, c, table, map[string]string{"delta.enableInCommitTimestamps": "true"})
	var all []string
	var times []time.Time
	for i := range 4 {
		day := fmt.Sprintf("2024-05-0%d", i+1)
		rows := makeReadings(day, i*10, 10)
		all = append(all, keysOf(rows)...)
		add := writeReadings(t, wh, table, schema, rows)
		resp, err := c.Commit(ctxT(t), &catalogv1.CommitRequest{Table: table, ReadVersion: int64(i), BlindAppend: true, Adds: []*catalogv1.AddFile{add}})
		if err != nil {
			t.Fatal(err)
		}
		times = append(times, resp.GetCommitTime().AsTime())
	}
	dir := tableDir(wh, table)
	infos := commitInfos(t, dir, 4)
	for v, ci := range infos {
		if ci.InCommitTimestamp == nil {
			t.Fatalf("version %d has no inCommitTimestamp", v)
		}
		if v > 0 && *ci.InCommitTimestamp <= *infos[v-1].InCommitTimestamp {
			t.Errorf("inCommitTimestamp of version %d (%d) is not after version %d's (%d)", v, *ci.InCommitTimestamp, v-1, *infos[v-1].InCommitTimestamp)
		}
		if v > 0 && !times[v-1].Equal(time.UnixMilli(*ci.InCommitTimestamp)) {
			t.Errorf("Commit answered %v for version %d, its inCommitTimestamp is %d", times[v-1], v, *ci.InCommitTimestamp)
		}
	}
	latest, err := c.GetSnapshot(ctxT(t), &catalogv1.GetSnapshotRequest{Table: table, OmitStats: true})
	if err != nil {
		t.Fatal(err)
	}
	p := latest.GetProtocol()
	if p.GetMinWriterVersion() != 7 || !strings.Contains(strings.Join(p.GetWriterFeatures(), ","), "inCommitTimestamp") {
		t.Errorf("protocol %v lacks the inCommitTimestamp writer feature", p)
	}

	// File times say nothing: all set to one far-away instant.
	far := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for v := int64(0); v <= 4; v++ {
		if err := os.Chtimes(filepath.Join(dir, filepath.FromSlash(delta.CommitPath(v))), far, far); err != nil {
			t.Fatal(err)
		}
	}
	for v := int64(1); v <= 4; v++ {
		ict := time.UnixMilli(*infos[v].InCommitTimestamp)
		for _, at := range []time.Time{ict, ict.Add(-time.Millisecond)} {
			want := v
			if at.Before(ict) {
				want = v - 1
			}
			snap, err := c.GetSnapshot(ctxT(t), &catalogv1.GetSnapshotRequest{Table: table, OmitStats: true,
				At: &catalogv1.GetSnapshotRequest_Timestamp{Timestamp: timestamppb.New(at)}})
			if err != nil || snap.GetVersion() != want {
				t.Errorf("snapshot as of %v: version %d, %v; want %d", at, snap.GetVersion(), err, want)
			}
		}
	}

	// A restarted catalog continues the in-commit timestamps from the log.
	tc.stop()
	tc = startCatalog(t, wh, "--auto-maintenance=false")
	rows := makeReadings("2024-05-09", 100, 5)
	all = append(all, keysOf(rows)...)
	if _, err := tc.client.Commit(ctxT(t), &catalogv1.CommitRequest{Table: table, ReadVersion: 4, BlindAppend: true,
		Adds: []*catalogv1.AddFile{writeReadings(t, wh, table, schema, rows)}}); err != nil {
		t.Fatal(err)
	}
	infos = commitInfos(t, dir, 5)
	if *infos[5].InCommitTimestamp <= *infos[4].InCommitTimestamp {
		t.Errorf("after a restart, inCommitTimestamp %d is not after %d", *infos[5].InCommitTimestamp, *infos[4].InCommitTimestamp)
	}

	v, keys := readWithDeltaRS(t, py, dir)
	if v != 5 || strings.Join(keys, "\n") != strings.Join(slices.Sorted(slices.Values(all)), "\n") {
		t.Fatalf("delta-rs read version %d with %d rows, want version 5 with %d rows", v, len(keys), len(all))
	}
}

// TestCommitsCannotBreakTables: partition values that are not values of
// their column's type, names delta-rs cannot open, column names Delta
// refuses and properties that do not parse or are below their floors are
// refused with InvalidArgument naming the field; what is accepted still
// scans.
func TestCommitsCannotBreakTables(t *testing.T) {
	wh := t.TempDir()
	tc := startCatalog(t, wh, "--auto-maintenance=false", "--min-vacuum-retention", "1h")
	c := tc.client
	const table = "bronze.checked"
	schema := createReadings(t, c, table, nil)
	good := writeReadings(t, wh, table, schema, makeReadings("2024-05-06", 0, 3))
	other := writeReadings(t, wh, table, schema, makeReadings("2024-05-06", 3, 3))
	for _, day := range []string{"2024-13-45", "not-a-date", "../../x", "2024-05-06T00:00:00Z"} {
		bad := proto.Clone(other).(*catalogv1.AddFile)
		bad.PartitionValues = map[string]string{"day": day}
		_, err := c.Commit(ctxT(t), &catalogv1.CommitRequest{Table: table, ReadVersion: 0, BlindAppend: true,
			Adds: []*catalogv1.AddFile{good, bad}})
		wantStatus(t, "day="+day, err, invalid, `adds[1].partition_values["day"]`)
	}
	if _, err := c.Commit(ctxT(t), &catalogv1.CommitRequest{Table: table, ReadVersion: 0, BlindAppend: true, Adds: []*catalogv1.AddFile{good}}); err != nil {
		t.Fatal(err)
	}
	if keys := scanKeys(t, c, &catalogv1.ScanRequest{Table: table}); len(keys) != 3 {
		t.Fatalf("Scan read %d rows, want 3", len(keys))
	}

	yes := true
	col := func(name, typ string) *catalogv1.Column {
		return &catalogv1.Column{Name: name, Type: typ, Nullable: &yes}
	}
	create := func(name string, cols []*catalogv1.Column, parts []string, props map[string]string) error {
		_, err := c.CreateTable(ctxT(t), &catalogv1.CreateTableRequest{Name: name, Columns: cols, PartitionColumns: parts, Properties: props})
		return err
	}
	base := []*catalogv1.Column{col("id", "long"), col("day", "date")}
	for _, name := range []string{"raw._delta_log", "_delta_log.x", "raw._hidden"} {
		wantStatus(t, "table name "+name, create(name, base, nil, nil), invalid, "name")
	}
	wantStatus(t, "column a=b", create("raw.c1", []*catalogv1.Column{col("id", "long"), col("a=b", "long")}, nil, nil), invalid, "columns")
	wantStatus(t, "partition column ../x", create("raw.c2", []*catalogv1.Column{col("id", "long"), col("../x", "string")}, []string{"../x"}, nil),
		invalid, "partition_columns[0]")
	nested := `{"type":"struct","fields":[{"name":"id","type":"long","nullable":true,"metadata":{}},` +
		`{"name":"s","type":{"type":"struct","fields":[{"name":"x y","type":"long","nullable":true,"metadata":{}}]},"nullable":true,"metadata":{}}]}`
	_, err := c.CreateTable(ctxT(t), &catalogv1.CreateTableRequest{Name: "raw.c3", SchemaJson: nested})
	wantStatus(t, "nested field x y", err, invalid, "schema_json", "x y")

	props := []struct {
		key, value string
		contains   string
	}{
		{"plantlake.autoVacuum.interval", "1ns", "floor of 1m0s"},
		{"plantlake.autoVacuum.interval", "sometimes", "plantlake.autoVacuum.interval"},
		{"plantlake.autoOptimize.minFiles", "1", "floor of 2"},
		{"plantlake.autoOptimize.targetFileSize", "10", "floor of 1048576"},
		{"plantlake.autoVacum.interval", "1h", "unknown plantlake property"},
		{"plantlake.autoOptimize.sortBy", "sensor_id,,ts", "column names"},
		{"delta.deletedFileRetentionDuration", "interval 0 seconds", "--min-vacuum-retention"},
		{"delta.deletedFileRetentionDuration", "a week", "interval"},
		{"delta.logRetentionDuration", "interval -1 days", "interval"},
		{"delta.appendOnly", "yes", "true or false"},
		{"delta.checkpointInterval", "0", ">= 1"},
		{"delta.enableInCommitTimestamps", "on", "true or false"},
		{"delta.columnMapping.mode", "name", "column mapping"},
	}
	for _, p := range props {
		field := fmt.Sprintf("properties[%q]", p.key)
		wantStatus(t, p.key+"="+p.value, create("raw.p", base, nil, map[string]string{p.key: p.value}), invalid, field, p.contains)
	}
	// The same checks apply to metadata changes.
	snap, err := c.GetSnapshot(ctxT(t), &catalogv1.GetSnapshotRequest{Table: table, OmitStats: true})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Commit(ctxT(t), &catalogv1.CommitRequest{Table: table, ReadVersion: 1, Operation: "SET TBLPROPERTIES",
		Metadata: &catalogv1.Metadata{SchemaJson: snap.GetSchemaJson(), PartitionColumns: []string{"day"},
			Configuration: map[string]string{"plantlake.autoVacuum.interval": "1ns"}}})
	wantStatus(t, "metadata change to a 1ns vacuum interval", err, invalid, `metadata.configuration["plantlake.autoVacuum.interval"]`, "floor")
	var grown map[string]any
	if err := json.Unmarshal([]byte(snap.GetSchemaJson()), &grown); err != nil {
		t.Fatal(err)
	}
	grown["fields"] = append(grown["fields"].([]any), map[string]any{"name": "x;y", "type": "string", "nullable": true, "metadata": map[string]any{}})
	b, _ := json.Marshal(grown)
	_, err = c.Commit(ctxT(t), &catalogv1.CommitRequest{Table: table, ReadVersion: 1, Operation: "ADD COLUMNS",
		Metadata: &catalogv1.Metadata{SchemaJson: string(b), PartitionColumns: []string{"day"}}})
	wantStatus(t, "metadata change adding column x;y", err, invalid, "metadata.schema_json", "x;y")
}

// TestGetChangesEndVersion: end_version 0 asks for version 0 alone, unset
// for everything up to the latest; an end before the start is refused.
func TestGetChangesEndVersion(t *testing.T) {
	wh := t.TempDir()
	tc := startCatalog(t, wh, "--auto-maintenance=false")
	c := tc.client
	const table = "raw.changes"
	createTable(t, c, table, nil)
	for i := range 2 {
		f := putFile(t, wh, table, fmt.Sprintf("day=2024-01-01/f%d.parquet", i), 10)
		if _, err := c.Commit(ctxT(t), &catalogv1.CommitRequest{Table: table, ReadVersion: int64(i), BlindAppend: true, Adds: []*catalogv1.AddFile{f}}); err != nil {
			t.Fatal(err)
		}
	}
	versions := func(end *int64) []int64 {
		t.Helper()
		resp, err := c.GetChanges(ctxT(t), &catalogv1.GetChangesRequest{Table: table, StartVersion: 0, EndVersion: end})
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		for _, ch := range resp.GetChanges() {
			out = append(out, ch.GetVersion())
		}
		return out
	}
	zero, one := int64(0), int64(1)
	if got := versions(&zero); !slices.Equal(got, []int64{0}) {
		t.Errorf("end_version 0: versions %v, want [0]", got)
	}
	if got := versions(&one); !slices.Equal(got, []int64{0, 1}) {
		t.Errorf("end_version 1: versions %v, want [0 1]", got)
	}
	if got := versions(nil); !slices.Equal(got, []int64{0, 1, 2}) {
		t.Errorf("end_version unset: versions %v, want [0 1 2]", got)
	}
	_, err := c.GetChanges(ctxT(t), &catalogv1.GetChangesRequest{Table: table, StartVersion: 2, EndVersion: &one})
	wantStatus(t, "end before start", err, invalid, "end_version")
}

// TestLogGapIsDataLoss: a table whose log misses a commit between others
// is reported as corrupt, naming the missing commit, not as a version that
// was cleaned up.
func TestLogGapIsDataLoss(t *testing.T) {
	wh := t.TempDir()
	tc := startCatalog(t, wh, "--auto-maintenance=false")
	const table = "raw.gap"
	createTable(t, tc.client, table, nil)
	for i := range 3 {
		f := putFile(t, wh, table, fmt.Sprintf("day=2024-01-01/f%d.parquet", i), 10)
		if _, err := tc.client.Commit(ctxT(t), &catalogv1.CommitRequest{Table: table, ReadVersion: int64(i), BlindAppend: true, Adds: []*catalogv1.AddFile{f}}); err != nil {
			t.Fatal(err)
		}
	}
	tc.stop()
	if err := os.Remove(filepath.Join(tableDir(wh, table), filepath.FromSlash(delta.CommitPath(2)))); err != nil {
		t.Fatal(err)
	}
	tc = startCatalog(t, wh, "--auto-maintenance=false")
	_, err := tc.client.GetSnapshot(ctxT(t), &catalogv1.GetSnapshotRequest{Table: table})
	wantStatus(t, "snapshot of a log without commit 2", err, []codes.Code{codes.DataLoss}, "commit 2 is missing")
}

// TestEnableInCommitTimestampsLater: a metadata change that turns in-commit
// timestamps on upgrades the protocol, records the enablement version and
// timestamp, and from then on every version has an increasing in-commit
// timestamp; time travel works on both sides of the enablement and delta-rs
// reads the table.
func TestEnableInCommitTimestampsLater(t *testing.T) {
	py := devstack.Python(t)
	wh := t.TempDir()
	tc := startCatalog(t, wh, "--auto-maintenance=false")
	c := tc.client
	const table = "bronze.ict_later"
	schema := createReadings(t, c, table, nil)
	var all []string
	commit := func(v int64, day string) {
		t.Helper()
		rows := makeReadings(day, int(v)*10, 5)
		all = append(all, keysOf(rows)...)
		if _, err := c.Commit(ctxT(t), &catalogv1.CommitRequest{Table: table, ReadVersion: v, BlindAppend: true,
			Adds: []*catalogv1.AddFile{writeReadings(t, wh, table, schema, rows)}}); err != nil {
			t.Fatal(err)
		}
	}
	commit(0, "2024-05-01")
	time.Sleep(20 * time.Millisecond)
	snap, err := c.GetSnapshot(ctxT(t), &catalogv1.GetSnapshotRequest{Table: table, OmitStats: true})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Commit(ctxT(t), &catalogv1.CommitRequest{Table: table, ReadVersion: 1, Operation: "SET TBLPROPERTIES",
		Metadata: &catalogv1.Metadata{SchemaJson: snap.GetSchemaJson(), PartitionColumns: []string{"day"},
			Configuration: map[string]string{"delta.enableInCommitTimestamps": "true"}}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetVersion() != 2 {
		t.Fatalf("metadata change landed at version %d, want 2", resp.GetVersion())
	}
	commit(2, "2024-05-02")
	commit(3, "2024-05-03")
	latest, err := c.GetSnapshot(ctxT(t), &catalogv1.GetSnapshotRequest{Table: table, OmitStats: true})
	if err != nil {
		t.Fatal(err)
	}
	if p := latest.GetProtocol(); p.GetMinWriterVersion() != 7 || !slices.Contains(p.GetWriterFeatures(), "inCommitTimestamp") ||
		!slices.Contains(p.GetWriterFeatures(), "appendOnly") {
		t.Errorf("protocol after enabling in-commit timestamps: %v", p)
	}
	infos := commitInfos(t, tableDir(wh, table), 4)
	if infos[1].InCommitTimestamp != nil || infos[2].InCommitTimestamp == nil {
		t.Fatalf("in-commit timestamps: version 1 %v, version 2 %v; want only from version 2", infos[1].InCommitTimestamp, infos[2].InCommitTimestamp)
	}
	for v := 3; v <= 4; v++ {
		if infos[v].InCommitTimestamp == nil || *infos[v].InCommitTimestamp <= *infos[v-1].InCommitTimestamp {
			t.Errorf("version %d: inCommitTimestamp %v not after version %d's", v, infos[v].InCommitTimestamp, v-1)
		}
	}
	props := latest.GetProperties()
	if props["delta.inCommitTimestampEnablementVersion"] != "2" ||
		props["delta.inCommitTimestampEnablementTimestamp"] != fmt.Sprint(*infos[2].InCommitTimestamp) {
		t.Errorf("enablement properties %v, want version 2 at %d", props, *infos[2].InCommitTimestamp)
	}
	for v := int64(2); v <= 4; v++ {
		at := time.UnixMilli(*infos[v].InCommitTimestamp)
		s, err := c.GetSnapshot(ctxT(t), &catalogv1.GetSnapshotRequest{Table: table, OmitStats: true,
			At: &catalogv1.GetSnapshotRequest_Timestamp{Timestamp: timestamppb.New(at)}})
		if err != nil || s.GetVersion() != v {
			t.Errorf("snapshot as of version %d's in-commit timestamp: version %d, %v", v, s.GetVersion(), err)
		}
	}
	// Before the enablement, file times decide: version 1 committed before.
	s, err := c.GetSnapshot(ctxT(t), &catalogv1.GetSnapshotRequest{Table: table, OmitStats: true,
		At: &catalogv1.GetSnapshotRequest_Timestamp{Timestamp: timestamppb.New(time.UnixMilli(*infos[2].InCommitTimestamp - 1))}})
	if err != nil || s.GetVersion() != 1 {
		t.Errorf("snapshot just before the enablement: version %d, %v; want 1", s.GetVersion(), err)
	}
	v, keys := readWithDeltaRS(t, py, tableDir(wh, table))
	if v != 4 || strings.Join(keys, "\n") != strings.Join(slices.Sorted(slices.Values(all)), "\n") {
		t.Fatalf("delta-rs read version %d with %d rows, want version 4 with %d rows", v, len(keys), len(all))
	}
}
