package delta

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestSnapshotAsOf(t *testing.T) {
	ctx := context.Background()
	tbl, st := newTestTable(t)
	for i := 1; i <= 4; i++ {
		mustCommit(t, tbl, appendReq(int64(i-1), "day=2024-01-01/f"+itoa(i)+".parquet"))
	}
	base := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	for v := int64(0); v <= 4; v++ {
		setCommitTime(t, st, v, base.Add(time.Duration(v)*time.Hour))
	}
	cases := []struct {
		name    string
		at      time.Time
		version int64
		err     error
	}{
		{"exactly at version 0", base, 0, nil},
		{"between 1 and 2", base.Add(90 * time.Minute), 1, nil},
		{"exactly at the latest", base.Add(4 * time.Hour), 4, nil},
		{"before the first commit", base.Add(-time.Second), -1, ErrTimestampBeforeFirst},
		{"after the latest commit", base.Add(5 * time.Hour), -1, ErrTimestampAfterLatest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(st).SnapshotAsOf(ctx, tc.at)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("SnapshotAsOf = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Version() != tc.version || s.NumFiles() != int(tc.version) {
				t.Errorf("version %d with %d files, want %d", s.Version(), s.NumFiles(), tc.version)
			}
		})
	}
}

func TestSnapshotAsOfInCommitTimestamps(t *testing.T) {
	ctx := context.Background()
	clock := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	st := mustLocal(t)
	tbl, err := Create(ctx, st, Metadata{SchemaString: testSchema, PartitionColumns: []string{"day"},
		Configuration: map[string]string{PropEnableInCommitTimes: "true"}},
		Protocol{MinReaderVersion: 1, MinWriterVersion: 7, WriterFeatures: []string{"inCommitTimestamp"}}, WithClock(now))
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		clock = clock.Add(time.Hour)
		mustCommit(t, tbl, appendReq(int64(i-1), "day=2024-01-01/f"+itoa(i)+".parquet"))
	}
	// File times say nothing: all set to one far-away instant.
	for v := int64(0); v <= 3; v++ {
		setCommitTime(t, st, v, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	}
	base := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	s, err := Open(st).SnapshotAsOf(ctx, base.Add(150*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if s.Version() != 2 || !s.Timestamp().Equal(base.Add(2*time.Hour)) {
		t.Errorf("version %d at %v, want 2 at %v", s.Version(), s.Timestamp(), base.Add(2*time.Hour))
	}
	// A clock going backwards still gives increasing in-commit timestamps.
	clock = base
	v := mustCommit(t, tbl, appendReq(3, "day=2024-01-01/late.parquet"))
	s, err = Open(st).SnapshotAt(ctx, v)
	if err != nil {
		t.Fatal(err)
	}
	if want := base.Add(3*time.Hour + time.Millisecond); !s.Timestamp().Equal(want) {
		t.Errorf("in-commit timestamp %v, want %v", s.Timestamp(), want)
	}
}
