package delta

import (
	"context"
	"errors"
	"testing"
)

func TestCommitAndReplay(t *testing.T) {
	ctx := context.Background()
	tbl, st := newTestTable(t)
	mustCommit(t, tbl, appendReq(0, "day=2024-01-01/a.parquet", "day=2024-01-01/b.parquet"))
	mustCommit(t, tbl, CommitRequest{ReadVersion: 1, Operation: "DELETE", ReadFiles: []string{"day=2024-01-01/a.parquet"},
		Actions: []Action{removeAction("day=2024-01-01/a.parquet", "2024-01-01")}})
	mustCommit(t, tbl, CommitRequest{ReadVersion: 2, Operation: "WRITE", BlindAppend: true,
		Actions: []Action{addAction("day=2024-01-02/c%20d.parquet", "2024-01-02"), {Txn: &Txn{AppID: "app", Version: 7}}}})

	fresh := Open(st) // no cache: replays from disk
	s, err := fresh.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cached, err := tbl.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, snap := range []*Snapshot{s, cached} {
		if snap.Version() != 3 {
			t.Errorf("version = %d, want 3", snap.Version())
		}
		want := []string{"day=2024-01-01/b.parquet", "day=2024-01-02/c d.parquet"}
		if got := filePaths(snap); !equalStrings(got, want) {
			t.Errorf("files = %q, want %q", got, want)
		}
		if v, ok := snap.TxnVersion("app"); !ok || v != 7 {
			t.Errorf("TxnVersion = %d, %v", v, ok)
		}
		if len(snap.Tombstones()) != 1 {
			t.Errorf("tombstones = %v", snap.Tombstones())
		}
	}
	s1, err := fresh.SnapshotAt(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := filePaths(s1); len(got) != 2 || got[0] != "day=2024-01-01/a.parquet" {
		t.Errorf("files at 1 = %q", got)
	}
	if _, err := fresh.SnapshotAt(ctx, 9); !errors.Is(err, ErrVersionNotFound) {
		t.Errorf("SnapshotAt(9) = %v, want ErrVersionNotFound", err)
	}
	h, err := fresh.History(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 2 || h[0].Version != 3 || h[0].CommitInfo == nil || h[0].CommitInfo.Operation != "WRITE" || h[1].CommitInfo.Operation != "DELETE" {
		t.Errorf("history = %+v", h)
	}
}

func TestCommitValidation(t *testing.T) {
	tbl, _ := newTestTable(t)
	cases := []struct {
		name string
		req  CommitRequest
	}{
		{"absolute path", CommitRequest{ReadVersion: 0, Operation: "WRITE", Actions: []Action{addAction("/etc/passwd", "x")}}},
		{"escaping path", CommitRequest{ReadVersion: 0, Operation: "WRITE", Actions: []Action{addAction("../x.parquet", "x")}}},
		{"encoded escape", CommitRequest{ReadVersion: 0, Operation: "WRITE", Actions: []Action{addAction("%2E%2E/x.parquet", "x")}}},
		{"scheme", CommitRequest{ReadVersion: 0, Operation: "WRITE", Actions: []Action{addAction("s3://b/x.parquet", "x")}}},
		{"log dir", CommitRequest{ReadVersion: 0, Operation: "WRITE", Actions: []Action{addAction("_delta_log/x.json", "x")}}},
		{"wrong partition", CommitRequest{ReadVersion: 0, Operation: "WRITE", Actions: []Action{{Add: &Add{Path: "a", PartitionValues: map[string]string{"other": "1"}}}}}},
		{"future read version", appendReq(5, "a")},
		{"blind remove", CommitRequest{ReadVersion: 0, Operation: "WRITE", BlindAppend: true, Actions: []Action{removeAction("a", "x")}}},
		{"no operation", CommitRequest{ReadVersion: 0, Actions: []Action{addAction("a", "x")}}},
		{"bad schema", CommitRequest{ReadVersion: 0, Operation: "SET", Actions: []Action{{MetaData: &Metadata{SchemaString: "{"}}}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tbl.Commit(context.Background(), tc.req)
			if !errors.Is(err, ErrInvalidCommit) {
				t.Fatalf("Commit = %v, want ErrInvalidCommit", err)
			}
		})
	}
}

func TestCreateTwice(t *testing.T) {
	_, st := newTestTable(t)
	_, err := Create(context.Background(), st, Metadata{SchemaString: testSchema}, Protocol{})
	if !errors.Is(err, ErrVersionExists) {
		t.Fatalf("second Create = %v, want ErrVersionExists", err)
	}
}

func TestCreateTimestampNTZ(t *testing.T) {
	cases := []struct {
		schema string
		want   Protocol
	}{
		{testSchema, Protocol{MinReaderVersion: 1, MinWriterVersion: 2}},
		{`{"type":"struct","fields":[{"name":"t","type":"timestamp_ntz","nullable":true,"metadata":{}}]}`,
			Protocol{MinReaderVersion: 3, MinWriterVersion: 7, ReaderFeatures: []string{"timestampNtz"}, WriterFeatures: []string{"timestampNtz"}}},
	}
	for _, tc := range cases {
		tbl, err := Create(context.Background(), mustLocal(t), Metadata{SchemaString: tc.schema}, Protocol{})
		if err != nil {
			t.Fatal(err)
		}
		s, err := tbl.Snapshot(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		p := s.Protocol()
		if p.MinReaderVersion != tc.want.MinReaderVersion || p.MinWriterVersion != tc.want.MinWriterVersion ||
			!equalStrings(p.ReaderFeatures, tc.want.ReaderFeatures) {
			t.Errorf("protocol = %+v, want %+v", p, tc.want)
		}
	}
}

func TestCommitsCanonicalInVersionOrder(t *testing.T) {
	ctx := context.Background()
	tbl, st := newTestTable(t)
	mustCommit(t, tbl, appendReq(0, "day=2024-01-01/a.parquet"))
	mustCommit(t, tbl, CommitRequest{ReadVersion: 1, Operation: "WRITE", BlindAppend: true,
		Actions: []Action{addAction("day=2024-01-02/c%20d.parquet", "2024-01-02")}})
	mustCommit(t, tbl, CommitRequest{ReadVersion: 2, Operation: "DELETE", ReadFiles: []string{"day=2024-01-02/c d.parquet"},
		Actions: []Action{removeAction("day=2024-01-02/c%20d.parquet", "2024-01-02")}})
	// tbl answers from its cache of recent commits, fresh from the files.
	for name, table := range map[string]*Table{"cached": tbl, "fresh": Open(st)} {
		for range 2 { // the second call sees what the first one's caller changed
			got, err := table.Commits(ctx, 1, 3)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if len(got) != 3 {
				t.Fatalf("%s: %d commits, want 3", name, len(got))
			}
			var files []string
			for _, c := range got {
				for _, a := range c {
					switch {
					case a.Add != nil:
						files = append(files, "+"+a.Add.Path)
						a.Add.Path = "changed"
					case a.Remove != nil:
						files = append(files, "-"+a.Remove.Path)
						a.Remove.Path = "changed"
					}
				}
			}
			want := []string{"+day=2024-01-01/a.parquet", "+day=2024-01-02/c d.parquet", "-day=2024-01-02/c d.parquet"}
			if !equalStrings(files, want) {
				t.Errorf("%s: files %q, want %q", name, files, want)
			}
		}
	}
	for _, r := range [][2]int64{{2, 9}, {3, 1}, {-1, 0}} {
		if _, err := tbl.Commits(ctx, r[0], r[1]); !errors.Is(err, ErrVersionNotFound) {
			t.Errorf("Commits(%d, %d) = %v, want ErrVersionNotFound", r[0], r[1], err)
		}
	}
}
