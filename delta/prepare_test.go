package delta

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParsePartitionValue(t *testing.T) {
	cases := []struct {
		typ   PrimitiveType
		value string
		ok    bool
	}{
		{Date, "2024-05-06", true},
		{Date, "2024-13-45", false},
		{Date, "2024-02-30", false},
		{Date, "not-a-date", false},
		{Date, "../../x", false},
		{Date, "2024-5-6", false},
		{Date, "", true}, // null
		{Timestamp, "2024-05-06 10:00:00", true},
		{Timestamp, "2024-05-06 10:00:00.123456", true},
		{Timestamp, "2024-05-06T10:00:00.123456Z", true},
		{Timestamp, "2024-05-06T10:00:00+02:00", true},
		{Timestamp, "2024-05-06 25:00:00", false},
		{Timestamp, "2024-05-06 10:00:00.1234567", false},
		{Timestamp, "2024-05-06", false},
		{TimestampNTZ, "2024-05-06 10:00:00", true},
		{TimestampNTZ, "2024-05-06 10:00:00Z", false},
		{TimestampNTZ, "2024-05-06T10:00:00", false},
		{Byte, "127", true},
		{Byte, "128", false},
		{Short, "-32768", true},
		{Short, "70000", false},
		{Integer, "2147483647", true},
		{Integer, "1.0", false},
		{Long, "-9223372036854775808", true},
		{Long, "9223372036854775808", false},
		{Long, " 1", false},
		{Boolean, "true", true},
		{Boolean, "FALSE", true},
		{Boolean, "yes", false},
		{Boolean, "1", false},
		{DecimalType(5, 2), "123.45", true},
		{DecimalType(5, 2), "007.10", true},
		{DecimalType(5, 2), "-123.45", false}, // valid Delta, but delta-rs 1.6 reads "-123.-45"
		{DecimalType(5, 2), "123.450", false},
		{DecimalType(5, 2), "1.5", false},
		{DecimalType(5, 0), "15", true},
		{DecimalType(5, 0), "15.", false},
		{DecimalType(5, 2), "1234.5", false},
		{DecimalType(5, 2), "1.234", false},
		{DecimalType(5, 2), "1e2", false},
		{Double, "1.5e10", true},
		{Double, "NaN", true},
		{Double, "-Infinity", true},
		{Double, "0x1p-2", false},
		{Float, "3.4e39", true}, // out of range is +Inf, as Spark reads it
		{String, "../../x", true},
		{String, "\xff", false},
		{Binary, "\xff\x00", true},
		{"variant", "x", false},
	}
	for _, tc := range cases {
		t.Run(string(tc.typ)+"/"+tc.value, func(t *testing.T) {
			_, err := ParsePartitionValue(tc.typ, tc.value)
			if (err == nil) != tc.ok {
				t.Errorf("ParsePartitionValue(%s, %q) = %v, want ok=%v", tc.typ, tc.value, err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrBadPartitionValue) {
				t.Errorf("error %v does not wrap ErrBadPartitionValue", err)
			}
		})
	}
}

func TestCommitRefusesBadPartitionValues(t *testing.T) {
	for _, day := range []string{"2024-13-45", "not-a-date", "../../x"} {
		t.Run(day, func(t *testing.T) {
			tbl, _ := newTestTable(t)
			req := appendReq(0, "day=x/a.parquet")
			req.Actions[0].Add.PartitionValues["day"] = day
			_, err := tbl.Commit(context.Background(), req)
			var ce *CommitError
			if !errors.As(err, &ce) || ce.Action != 0 || ce.Field != `add.partitionValues["day"]` || !errors.Is(err, ErrInvalidCommit) {
				t.Fatalf("Commit = %v, want a CommitError for actions[0].add.partitionValues[\"day\"]", err)
			}
		})
	}
}

func TestCommitAcceptsNullPartitionValues(t *testing.T) {
	tbl, _ := newTestTable(t)
	for i, values := range []map[string]string{{"day": ""}, {}} {
		req := CommitRequest{ReadVersion: int64(i), Operation: "WRITE", BlindAppend: true, Actions: []Action{
			{Add: &Add{Path: "f" + itoa(i) + ".parquet", PartitionValues: values, Size: 1, DataChange: true}}}}
		mustCommit(t, tbl, req)
	}
	s, err := Open(tbl.Store()).Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range s.Files() {
		if v, ok := f.PartitionValues["day"]; !ok || v != "" {
			t.Errorf("%s: partitionValues %v, want day written as null", f.Path, f.PartitionValues)
		}
	}
}

func TestCommitRefusesRemoveFromAppendOnlyTable(t *testing.T) {
	ctx := context.Background()
	tbl, err := Create(ctx, mustLocal(t), Metadata{SchemaString: testSchema, PartitionColumns: []string{"day"},
		Configuration: map[string]string{PropAppendOnly: "true"}}, Protocol{})
	if err != nil {
		t.Fatal(err)
	}
	mustCommit(t, tbl, appendReq(0, "day=2024-01-01/a.parquet"))
	_, err = tbl.Commit(ctx, CommitRequest{ReadVersion: 1, Operation: "DELETE", Actions: []Action{removeAction("day=2024-01-01/a.parquet", "2024-01-01")}})
	if !errors.Is(err, ErrInvalidCommit) || !strings.Contains(err.Error(), PropAppendOnly) {
		t.Fatalf("remove from an append-only table: %v, want ErrInvalidCommit naming %s", err, PropAppendOnly)
	}
	// Rearranging files (dataChange=false) is still allowed.
	rm := removeAction("day=2024-01-01/a.parquet", "2024-01-01")
	rm.Remove.DataChange = false
	add := addAction("day=2024-01-01/b.parquet", "2024-01-01")
	add.Add.DataChange = false
	mustCommit(t, tbl, CommitRequest{ReadVersion: 1, Operation: "OPTIMIZE", Actions: []Action{rm, add}})
}

func TestCommitChecksMetadata(t *testing.T) {
	cases := []struct {
		name   string
		schema string
		conf   map[string]string
		field  string
	}{
		{"bad column name", `{"type":"struct","fields":[{"name":"id","type":"long","nullable":true,"metadata":{}},{"name":"day","type":"date","nullable":true,"metadata":{}},{"name":"a b","type":"long","nullable":true,"metadata":{}}]}`, nil, "metaData.schemaString"},
		{"bad nested name", `{"type":"struct","fields":[{"name":"id","type":"long","nullable":true,"metadata":{}},{"name":"day","type":"date","nullable":true,"metadata":{}},{"name":"s","type":{"type":"struct","fields":[{"name":"x=1","type":"long","nullable":true,"metadata":{}}]},"nullable":true,"metadata":{}}]}`, nil, "metaData.schemaString"},
		{"bad bool", testSchema, map[string]string{PropAppendOnly: "yes"}, `metaData.configuration["delta.appendOnly"]`},
		{"bad interval", testSchema, map[string]string{PropDeletedFileRetention: "a week"}, `metaData.configuration["delta.deletedFileRetentionDuration"]`},
		{"zero checkpoint interval", testSchema, map[string]string{PropCheckpointInterval: "0"}, `metaData.configuration["delta.checkpointInterval"]`},
		{"ict without feature", testSchema, map[string]string{PropEnableInCommitTimes: "true"}, `metaData.configuration["delta.enableInCommitTimestamps"]`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tbl, _ := newTestTable(t)
			s, err := tbl.Snapshot(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			md := s.Metadata()
			md.SchemaString, md.Configuration = tc.schema, tc.conf
			_, err = tbl.Commit(context.Background(), CommitRequest{ReadVersion: 0, Operation: "SET TBLPROPERTIES", Actions: []Action{{MetaData: &md}}})
			var ce *CommitError
			if !errors.As(err, &ce) || ce.Field != tc.field {
				t.Fatalf("Commit = %v, want a CommitError for %s", err, tc.field)
			}
		})
	}
}

func TestCreateRefusesBadPartitionColumn(t *testing.T) {
	schema := `{"type":"struct","fields":[{"name":"id","type":"long","nullable":true,"metadata":{}},{"name":"../x","type":"string","nullable":true,"metadata":{}}]}`
	_, err := Create(context.Background(), mustLocal(t), Metadata{SchemaString: schema, PartitionColumns: []string{"../x"}}, Protocol{})
	if !errors.Is(err, ErrInvalidCommit) || !strings.Contains(err.Error(), "partitionColumns[0]") {
		t.Fatalf("Create = %v, want ErrInvalidCommit naming partitionColumns[0]", err)
	}
}

func TestCheckConfiguration(t *testing.T) {
	cases := []struct {
		key, value string
		ok         bool
	}{
		{PropLogRetention, "interval 30 days", true},
		{PropLogRetention, "interval 1 day 12 hours", true},
		{PropLogRetention, "interval -1 days", false},
		{PropLogRetention, "interval 9999999999999 weeks", false},
		{PropDeletedFileRetention, "interval 0 seconds", true}, // floors are the writer's business
		{PropDeletedFileRetention, "forever", false},
		{PropCheckpointInterval, "10", true},
		{PropCheckpointInterval, "often", false},
		{PropEnableChangeDataFeed, "True", true},
		{PropCheckpointStatsAsJSON, "maybe", false},
		{PropMinWriterVersion, "8", false},
		{PropMinReaderVersion, "3", true},
		{PropColumnMappingMode, "name", false},
		{"delta.somethingNew", "anything", true},
		{"other.key", "", true},
	}
	for _, tc := range cases {
		err := CheckConfiguration(map[string]string{tc.key: tc.value})
		if (err == nil) != tc.ok {
			t.Errorf("CheckConfiguration(%s=%q) = %v, want ok=%v", tc.key, tc.value, err, tc.ok)
		}
		var pe *PropertyError
		if err != nil && (!errors.As(err, &pe) || pe.Key != tc.key) {
			t.Errorf("CheckConfiguration(%s=%q) = %v, want a PropertyError naming the key", tc.key, tc.value, err)
		}
	}
}

func TestInCommitTimestampsIncreaseAcrossReopen(t *testing.T) {
	ctx := context.Background()
	clock := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	st := mustLocal(t)
	tbl, err := Create(ctx, st, Metadata{SchemaString: testSchema, PartitionColumns: []string{"day"},
		Configuration: map[string]string{PropEnableInCommitTimes: "true"}}, Protocol{}, WithClock(now))
	if err != nil {
		t.Fatal(err)
	}
	mustCommit(t, tbl, appendReq(0, "day=2024-01-01/a.parquet"))
	// A new Table learns the head's in-commit timestamp from the snapshot:
	// a clock an hour behind still gives a later timestamp.
	clock = clock.Add(-time.Hour)
	v := mustCommit(t, Open(st, WithClock(now)), appendReq(1, "day=2024-01-01/b.parquet"))
	s, err := Open(st).SnapshotAt(ctx, v)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2024, 3, 1, 0, 0, 0, 2e6, time.UTC); !s.Timestamp().Equal(want) {
		t.Errorf("in-commit timestamp %v, want %v", s.Timestamp(), want)
	}
	if p := s.Protocol(); !hasWriterFeature(&p, "inCommitTimestamp") {
		t.Errorf("protocol %+v lacks the inCommitTimestamp writer feature", p)
	}
}

func TestGapInLogIsInvalidLog(t *testing.T) {
	tbl, st := newTestTable(t)
	for i := 1; i <= 3; i++ {
		mustCommit(t, tbl, appendReq(int64(i-1), "day=2024-01-01/f"+itoa(i)+".parquet"))
	}
	if err := os.Remove(filepath.Join(st.Root(), filepath.FromSlash(CommitPath(2)))); err != nil {
		t.Fatal(err)
	}
	_, err := Open(st).Snapshot(context.Background())
	if !errors.Is(err, ErrInvalidLog) || !strings.Contains(err.Error(), "commit 2 is missing") {
		t.Fatalf("Snapshot of a log without commit 2 = %v, want ErrInvalidLog naming commit 2", err)
	}
}

// BenchmarkPrepareCommit prepares and encodes an append of 100 files with a
// txn, as the catalog does for each ingest commit.
func BenchmarkPrepareCommit(b *testing.B) {
	head := Head{Version: 5, Protocol: Protocol{MinReaderVersion: 1, MinWriterVersion: 2},
		Metadata: Metadata{SchemaString: testSchema, PartitionColumns: []string{"day"}}}
	req := CommitRequest{ReadVersion: 5, Operation: "WRITE", BlindAppend: true,
		Actions: []Action{{Txn: &Txn{AppID: "ingest/raw/0", Version: 7}}}}
	for i := range 100 {
		req.Actions = append(req.Actions, addAction("day=2024-01-01/f"+itoa(i)+".parquet", "2024-01-01"))
	}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		p, err := PrepareCommit(req, head)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := EncodeVersion(head, p.CommitInfo(), p.Actions(), now); err != nil {
			b.Fatal(err)
		}
	}
}

func TestUpgradeProtocol(t *testing.T) {
	plain, err := ParseSchema(testSchema)
	if err != nil {
		t.Fatal(err)
	}
	ntz, err := ParseSchema(`{"type":"struct","fields":[{"name":"t","type":"timestamp_ntz","nullable":true,"metadata":{}}]}`)
	if err != nil {
		t.Fatal(err)
	}
	ict := map[string]string{PropEnableInCommitTimes: "true"}
	cases := []struct {
		name    string
		cur     Protocol
		schema  *StructType
		conf    map[string]string
		want    Protocol
		changed bool
	}{
		{"nothing new", Protocol{MinReaderVersion: 1, MinWriterVersion: 2}, plain, nil,
			Protocol{MinReaderVersion: 1, MinWriterVersion: 2}, false},
		{"ict on a legacy table", Protocol{MinReaderVersion: 1, MinWriterVersion: 2}, plain, ict,
			Protocol{MinReaderVersion: 1, MinWriterVersion: 7, WriterFeatures: []string{"appendOnly", "invariants", "inCommitTimestamp"}}, true},
		{"ict on writer version 1", Protocol{MinReaderVersion: 1, MinWriterVersion: 1}, plain, ict,
			Protocol{MinReaderVersion: 1, MinWriterVersion: 7, WriterFeatures: []string{"inCommitTimestamp"}}, true},
		{"ntz on a legacy table", Protocol{MinReaderVersion: 1, MinWriterVersion: 2}, ntz, nil,
			Protocol{MinReaderVersion: 3, MinWriterVersion: 7, ReaderFeatures: []string{"timestampNtz"}, WriterFeatures: []string{"appendOnly", "invariants", "timestampNtz"}}, true},
		{"ict on an ntz table", Protocol{MinReaderVersion: 3, MinWriterVersion: 7, ReaderFeatures: []string{"timestampNtz"}, WriterFeatures: []string{"timestampNtz"}}, ntz, ict,
			Protocol{MinReaderVersion: 3, MinWriterVersion: 7, ReaderFeatures: []string{"timestampNtz"}, WriterFeatures: []string{"timestampNtz", "inCommitTimestamp"}}, true},
		{"ict already there", Protocol{MinReaderVersion: 1, MinWriterVersion: 7, WriterFeatures: []string{"inCommitTimestamp"}}, plain, ict,
			Protocol{MinReaderVersion: 1, MinWriterVersion: 7, WriterFeatures: []string{"inCommitTimestamp"}}, false},
	}
	for _, tc := range cases {
		got, changed := UpgradeProtocol(tc.cur, tc.schema, tc.conf)
		if changed != tc.changed || mustJSON(got) != mustJSON(tc.want) {
			t.Errorf("%s: UpgradeProtocol = %s, %v; want %s, %v", tc.name, mustJSON(got), changed, mustJSON(tc.want), tc.changed)
		}
	}
}
