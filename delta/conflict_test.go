package delta

import (
	"context"
	"errors"
	"testing"
)

// TestConflictRules runs each conflict rule once with a winner that breaks
// it and once with one that does not.
func TestConflictRules(t *testing.T) {
	const day1, day2 = "2024-01-01", "2024-01-02"
	newMeta := Metadata{ID: "x", SchemaString: testSchema, PartitionColumns: []string{"day"},
		Configuration: map[string]string{"k": "v"}}
	cases := []struct {
		name     string
		winner   CommitRequest
		loser    CommitRequest
		conflict bool
	}{
		{"blind appends never conflict",
			appendReq(1, "day=2024-01-01/w.parquet"),
			appendReq(1, "day=2024-01-01/l.parquet"), false},
		{"metadata change conflicts with blind append",
			CommitRequest{ReadVersion: 1, Operation: "SET TBLPROPERTIES", Actions: []Action{{MetaData: &newMeta}}},
			appendReq(1, "day=2024-01-01/l.parquet"), true},
		{"protocol change conflicts",
			CommitRequest{ReadVersion: 1, Operation: "UPGRADE", Actions: []Action{{Protocol: &Protocol{MinReaderVersion: 1, MinWriterVersion: 3}}}},
			appendReq(1, "day=2024-01-01/l.parquet"), true},
		{"txn for an app id in the request conflicts",
			CommitRequest{ReadVersion: 1, Operation: "WRITE", BlindAppend: true, Actions: []Action{{Txn: &Txn{AppID: "app", Version: 2}}}},
			CommitRequest{ReadVersion: 1, Operation: "WRITE", BlindAppend: true, Actions: []Action{{Txn: &Txn{AppID: "app", Version: 2}}, addAction("l", day1)}}, true},
		{"txn for an app id read conflicts",
			CommitRequest{ReadVersion: 1, Operation: "WRITE", BlindAppend: true, Actions: []Action{{Txn: &Txn{AppID: "app", Version: 2}}}},
			CommitRequest{ReadVersion: 1, Operation: "WRITE", BlindAppend: true, ReadAppIDs: []string{"app"}, Actions: []Action{addAction("l", day1)}}, true},
		{"txn for another app id does not conflict",
			CommitRequest{ReadVersion: 1, Operation: "WRITE", BlindAppend: true, Actions: []Action{{Txn: &Txn{AppID: "other", Version: 2}}}},
			CommitRequest{ReadVersion: 1, Operation: "WRITE", BlindAppend: true, Actions: []Action{{Txn: &Txn{AppID: "app", Version: 2}}, addAction("l", day1)}}, false},
		{"removing a file the loser read conflicts",
			CommitRequest{ReadVersion: 1, Operation: "DELETE", Actions: []Action{removeAction("day=2024-01-01/a.parquet", day1)}},
			CommitRequest{ReadVersion: 1, Operation: "MERGE", ReadFiles: []string{"day=2024-01-01/a.parquet"}, Actions: []Action{addAction("l", day1)}}, true},
		{"removing a file the loser removes conflicts (other spelling)",
			CommitRequest{ReadVersion: 1, Operation: "DELETE", Actions: []Action{removeAction("day=2024-01-01/a.parquet", day1)}},
			CommitRequest{ReadVersion: 1, Operation: "DELETE", Actions: []Action{removeAction("day%3D2024-01-01/a.parquet", day1)}}, true},
		{"removing another file does not conflict",
			CommitRequest{ReadVersion: 1, Operation: "DELETE", Actions: []Action{removeAction("day=2024-01-02/b.parquet", day2)}},
			CommitRequest{ReadVersion: 1, Operation: "DELETE", Actions: []Action{removeAction("day=2024-01-01/a.parquet", day1)}}, false},
		{"add conflicts with a non-blind commit that read files",
			appendReq(1, "day=2024-01-01/w.parquet"),
			CommitRequest{ReadVersion: 1, Operation: "MERGE", ReadFiles: []string{"day=2024-01-01/a.parquet"},
				Actions: []Action{removeAction("day=2024-01-01/a.parquet", day1), addAction("day=2024-01-01/l.parquet", day1)}}, true},
		{"add does not conflict with a non-blind commit that read nothing",
			appendReq(1, "day=2024-01-01/w.parquet"),
			CommitRequest{ReadVersion: 1, Operation: "WRITE", Actions: []Action{addAction("day=2024-01-01/l.parquet", day1)}}, false},
		{"add into a read partition conflicts",
			CommitRequest{ReadVersion: 1, Operation: "WRITE", BlindAppend: true, Actions: []Action{addAction("day=2024-01-02/w.parquet", day2)}},
			CommitRequest{ReadVersion: 1, Operation: "MERGE", ReadPartitions: []map[string]string{{"day": day2}}, Actions: []Action{addAction("day=2024-01-02/l.parquet", day2)}}, true},
		{"add into another partition does not conflict",
			CommitRequest{ReadVersion: 1, Operation: "WRITE", BlindAppend: true, Actions: []Action{addAction("day=2024-01-01/w.parquet", day1)}},
			CommitRequest{ReadVersion: 1, Operation: "MERGE", ReadPartitions: []map[string]string{{"day": day2}}, Actions: []Action{addAction("day=2024-01-02/l.parquet", day2)}}, false},
		{"compaction does not conflict with appends",
			appendReq(1, "day=2024-01-01/w.parquet"),
			CompactionRequest(1, []Add{{Path: "day=2024-01-01/a.parquet", PartitionValues: map[string]string{"day": day1}, Size: 10}},
				[]Add{{Path: "day=2024-01-01/c.parquet", PartitionValues: map[string]string{"day": day1}, Size: 10}}, testNow), false},
		{"compaction conflicts with a delete of a rewritten file",
			CommitRequest{ReadVersion: 1, Operation: "DELETE", Actions: []Action{removeAction("day=2024-01-01/a.parquet", day1)}},
			CompactionRequest(1, []Add{{Path: "day=2024-01-01/a.parquet", PartitionValues: map[string]string{"day": day1}, Size: 10}},
				[]Add{{Path: "day=2024-01-01/c.parquet", PartitionValues: map[string]string{"day": day1}, Size: 10}}, testNow), true},
	}
	for _, tc := range cases {
		for _, mode := range []string{"lost put", "stale read version"} {
			t.Run(tc.name+"/"+mode, func(t *testing.T) {
				ctx := context.Background()
				base, st := newTestTable(t)
				mustCommit(t, base, CommitRequest{ReadVersion: 0, Operation: "WRITE", BlindAppend: true, Actions: []Action{
					addAction("day=2024-01-01/a.parquet", day1), addAction("day=2024-01-02/b.parquet", day2)}})
				loser := Open(st)
				if mode == "lost put" {
					// The loser knows version 1 only, so its first put races.
					if _, err := loser.Snapshot(ctx); err != nil {
						t.Fatal(err)
					}
				}
				winner := Open(st)
				if v := mustCommit(t, winner, tc.winner); v != 2 {
					t.Fatalf("winner version = %d", v)
				}
				v, err := loser.Commit(ctx, tc.loser)
				var ce *ConflictError
				if tc.conflict {
					if !errors.Is(err, ErrConflict) || !errors.As(err, &ce) || ce.WinnerVersion != 2 {
						t.Fatalf("Commit = %d, %v; want conflict with version 2", v, err)
					}
					return
				}
				if err != nil || v != 3 {
					t.Fatalf("Commit = %d, %v; want version 3", v, err)
				}
			})
		}
	}
}
