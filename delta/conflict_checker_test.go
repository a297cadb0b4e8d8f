package delta

import (
	"errors"
	"testing"
)

// TestConflictCheckerSummary applies the checker to summaries, as a writer
// that keeps recent commits in memory does, and checks that Check on the
// actions and CheckSummary on their summary agree.
func TestConflictCheckerSummary(t *testing.T) {
	const day1, day2 = "2024-01-01", "2024-01-02"
	merge := CommitRequest{ReadVersion: 1, Operation: "MERGE", ReadFiles: []string{"day=2024-01-01/a.parquet"},
		ReadPartitions: []map[string]string{{"day": day1}},
		Actions:        []Action{removeAction("day=2024-01-01/a.parquet", day1), addAction("day=2024-01-01/m.parquet", day1)}}
	metaChangeCompaction := CommitRequest{ReadVersion: 1, Operation: "OPTIMIZE", Actions: []Action{
		{MetaData: &Metadata{ID: "x", SchemaString: testSchema}},
		{Remove: &Remove{Path: "day=2024-01-01/a.parquet"}},
		{Add: &Add{Path: "day=2024-01-01/c.parquet", PartitionValues: map[string]string{"day": day1}}}}, ReadWholeTable: true}
	cases := []struct {
		name     string
		req      CommitRequest
		winner   []Action
		conflict bool
	}{
		{"blind append vs append", appendReq(1, "day=2024-01-01/l.parquet"), []Action{addAction("day=2024-01-01/w.parquet", day1)}, false},
		{"protocol", appendReq(1, "x.parquet"), []Action{{Protocol: &Protocol{MinReaderVersion: 1, MinWriterVersion: 2}}}, true},
		{"metadata", appendReq(1, "x.parquet"), []Action{{MetaData: &Metadata{ID: "x"}}}, true},
		{"txn of a request txn", CommitRequest{BlindAppend: true, Actions: []Action{{Txn: &Txn{AppID: "a"}}}}, []Action{{Txn: &Txn{AppID: "a", Version: 1}}}, true},
		{"txn of a read app id", CommitRequest{BlindAppend: true, ReadAppIDs: []string{"a"}}, []Action{{Txn: &Txn{AppID: "a", Version: 1}}}, true},
		{"txn of another app id", CommitRequest{BlindAppend: true, ReadAppIDs: []string{"a"}}, []Action{{Txn: &Txn{AppID: "b", Version: 1}}}, false},
		{"remove of a read file, encoded", merge, []Action{removeAction("day%3D2024-01-01/a.parquet", day1)}, true},
		{"remove of another file", merge, []Action{removeAction("day=2024-01-02/b.parquet", day2)}, false},
		{"add into a read partition", merge, []Action{addAction("day=2024-01-01/w.parquet", day1)}, true},
		{"add into another partition", merge, []Action{addAction("day=2024-01-02/w.parquet", day2)}, false},
		{"add with dataChange=false", merge, []Action{{Add: &Add{Path: "day=2024-01-01/c.parquet", PartitionValues: map[string]string{"day": day1}}}}, false},
		{"add vs compaction", CompactionRequest(1, []Add{{Path: "day=2024-01-01/a.parquet", PartitionValues: map[string]string{"day": day1}}},
			[]Add{{Path: "day=2024-01-01/c.parquet", PartitionValues: map[string]string{"day": day1}}}, testNow),
			[]Action{addAction("day=2024-01-01/w.parquet", day1)}, false},
		{"add vs compaction that also changes metadata", metaChangeCompaction, []Action{addAction("day=2024-01-01/w.parquet", day1)}, true},
		{"add vs whole-table read, unpartitioned", CommitRequest{ReadWholeTable: true, Actions: []Action{{Add: &Add{Path: "m.parquet", DataChange: true}}}},
			[]Action{{Add: &Add{Path: "w.parquet", DataChange: true}}}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := NewConflictChecker(&tc.req, "")
			s := SummarizeCommit(7, tc.winner, "")
			for name, err := range map[string]error{"Check": c.Check(7, tc.winner), "CheckSummary": c.CheckSummary(&s)} {
				var ce *ConflictError
				switch {
				case tc.conflict && (!errors.As(err, &ce) || ce.WinnerVersion != 7 || !errors.Is(err, ErrConflict)):
					t.Errorf("%s = %v, want a conflict with version 7", name, err)
				case !tc.conflict && err != nil:
					t.Errorf("%s = %v, want nil", name, err)
				}
			}
		})
	}
}

func TestDataPath(t *testing.T) {
	cases := []struct {
		in   string
		want string // "" for an error
	}{
		{"day=2024-01-01/a.parquet", "day=2024-01-01/a.parquet"},
		{"d=a%20b/x.parquet", "d=a b/x.parquet"},
		{"", ""},
		{"../x", ""},
		{"a/%2e%2e/%2e%2e/x", ""},
		{"/etc/passwd", ""},
		{"%2Fetc/passwd", ""},
		{"file:///etc/passwd", ""},
		{"s3://b/x", ""},
		{"_delta_log/00000000000000000001.json", ""},
		{"%5Fdelta_log/x", ""},
		{"a//b", ""},
		{"a\\b", ""},
		{"a%00b", ""},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := DataPath(tc.in)
			if tc.want == "" {
				if !errors.Is(err, ErrBadDataPath) {
					t.Fatalf("DataPath(%q) = %q, %v; want ErrBadDataPath", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("DataPath(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}
