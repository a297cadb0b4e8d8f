package tablesource

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/plantlake/plantlake/devstack"
	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"
)

// nextOK calls Next and fails the test on error.
func nextOK(t *testing.T, f *Follower, after int64, wait time.Duration) Batch {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait+time.Minute)
	defer cancel()
	b, err := f.Next(ctx, after, wait)
	if err != nil {
		t.Fatalf("Next(%d): %v", after, err)
	}
	return b
}

// versionsOf lists a batch's version numbers.
func versionsOf(b Batch) []int64 {
	var vs []int64
	for _, v := range b.Versions {
		vs = append(vs, v.Version)
	}
	return vs
}

// TestPollingDeliversWithoutEvents: with no events at all (no brokers, a
// Kafka that does not answer, a topic nobody announces on) Next still finds
// every version by polling, also a version committed while it waits.
func TestPollingDeliversWithoutEvents(t *testing.T) {
	for _, tc := range []struct {
		name    string
		brokers func() string
		topic   string
	}{
		{"no brokers", func() string { return "" }, ""},
		{"kafka unreachable", func() string { return "127.0.0.1:1" }, ""},
		{"topic absent", func() string { return kafkaBroker.Brokers() }, "plantlake.no-such-topic"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, false)
			e.write(3, 2)
			v2 := e.write(4)
			f := e.follower(Config{Brokers: tc.brokers(), EventsTopic: tc.topic, PollInterval: 200 * time.Millisecond})

			b := nextOK(t, f, -1, time.Second)
			if b.FromVersion != 0 || b.ToVersion != v2 || b.Rows != 9 || b.Files() != 3 {
				t.Fatalf("first batch %d..%d rows %d files %d, want 0..%d rows 9 files 3", b.FromVersion, b.ToVersion, b.Rows, b.Files(), v2)
			}
			got := map[int64]int64{}
			readRows(t, b, got)

			// A version committed while Next waits arrives within a few polls.
			done := make(chan Batch, 1)
			start := time.Now()
			go func() {
				b, _ := f.Next(context.Background(), v2, 30*time.Second)
				done <- b
			}()
			time.Sleep(300 * time.Millisecond)
			v3 := e.write(5)
			b = <-done
			if elapsed := time.Since(start); b.ToVersion != v3 || elapsed > 5*time.Second {
				t.Fatalf("waiting Next returned %v after %v, want version %d within a few 200ms polls", versionsOf(b), elapsed, v3)
			}
			readRows(t, b, got)
			if !maps.Equal(got, e.written) {
				t.Errorf("rows read (id->version) %v, written %v", got, e.written)
			}
			if st := f.Stats(); st.Listening || st.Events != 0 {
				t.Errorf("stats %+v: want no events", st)
			}
		})
	}
}

// TestEventsWakeNext: with polling effectively off (an hour), an event wakes
// a waiting Next; duplicated, stale, out-of-order, other tables' and future
// (not yet committed) events never make Next return rows twice or early
// with anything but the truth, and the follower wakes only for events newer
// than what it knows.
func TestEventsWakeNext(t *testing.T) {
	e := newEnv(t, true)
	v1 := e.write(2)
	f := e.follower(Config{Brokers: kafkaBroker.Brokers(), EventsTopic: e.topic, PollInterval: time.Hour})
	waitListening(t, f)

	got := map[int64]int64{}
	b := nextOK(t, f, -1, time.Second)
	if b.ToVersion != v1 {
		t.Fatalf("first batch to %d, want %d", b.ToVersion, v1)
	}
	readRows(t, b, got)

	// A real commit: its event wakes Next long before the poll would.
	waitNext := func(after int64, wait time.Duration) (Batch, time.Duration) {
		done := make(chan Batch, 1)
		start := time.Now()
		go func() {
			b, _ := f.Next(context.Background(), after, wait)
			done <- b
		}()
		time.Sleep(200 * time.Millisecond) // Next is waiting
		return <-done, time.Since(start)
	}
	done := make(chan struct{})
	var v2 int64
	go func() {
		time.Sleep(400 * time.Millisecond)
		v2 = e.write(3)
		close(done)
	}()
	b, took := waitNext(v1, time.Minute)
	<-done
	if b.ToVersion != v2 || took > 20*time.Second {
		t.Fatalf("event-woken Next returned %v after %v, want version %d", versionsOf(b), took, v2)
	}
	readRows(t, b, got)

	// Fake events: duplicates and stale versions of this table, another
	// table's, and one announcing a version not
	// committed. None yields a batch; only the future one wakes Next.
	before := f.Stats()
	produce(t, e.topic,
		&catalogv1.TableCommitEvent{Table: e.table, Version: v2},
		&catalogv1.TableCommitEvent{Table: e.table, Version: v1},
		&catalogv1.TableCommitEvent{Table: e.table, Version: v2},
		&catalogv1.TableCommitEvent{Table: "silver.other", Version: 99},
		&catalogv1.TableCommitEvent{Table: e.table, Version: v2 + 50},
	)
	b, took = waitNext(v2, 3*time.Second)
	if !b.Empty() || b.FromVersion != v2+1 || b.ToVersion != v2 {
		t.Fatalf("after fake events Next returned %d..%d %v, want empty after %d", b.FromVersion, b.ToVersion, versionsOf(b), v2)
	}
	if took < 3*time.Second {
		t.Errorf("Next with nothing new returned after %v, before its wait of 3s", took)
	}
	after := f.Stats()
	// At least once: the catalog may announce v2 again, which wakes nothing.
	if ev, wk := after.Events-before.Events, after.Wakeups-before.Wakeups; ev < 4 || wk != 1 {
		t.Errorf("fake events: %d events, %d wakeups; want 4 events of the table, 1 wakeup (the future version)", ev, wk)
	}
	// The version announced but not committed counted only until the
	// catalog said otherwise (the wake-up's GetChanges).
	if after.Announced != v2 {
		t.Errorf("announced version after the catalog showed %d: %d, want %d", v2, after.Announced, v2)
	}

	// A version committed while nobody calls Next (a paused hop) shows in
	// the announced version: the hop's lag grows with its backlog.
	v3 := e.write(1)
	for deadline := time.Now().Add(30 * time.Second); f.Stats().Announced != v3; {
		if time.Now().After(deadline) {
			t.Fatalf("announced version %d 30s after version %d was committed", f.Stats().Announced, v3)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := f.Stats(); st.LatestVersion != v2 {
		t.Errorf("latest version seen by GetChanges %d without a Next, want %d", st.LatestVersion, v2)
	}

	// Versions committed back to back (their events may come in any order
	// or merged) arrive whole, in order, once, after v3.
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		time.Sleep(400 * time.Millisecond)
		e.write(1)
		e.write(2)
	}()
	var last int64 = v2
	deadline := time.Now().Add(time.Minute)
	for last < v3+2 && time.Now().Before(deadline) {
		b := nextOK(t, f, last, 10*time.Second)
		if b.Empty() {
			continue
		}
		if b.FromVersion != last+1 {
			t.Fatalf("batch from %d after position %d", b.FromVersion, last)
		}
		readRows(t, b, got)
		last = b.ToVersion
	}
	<-wrote
	if !maps.Equal(got, e.written) {
		t.Errorf("rows read (id->version) %v, written %v", got, e.written)
	}
}

// TestIdleNextAsksOncePerInterval: an idle hop calls Next every 100 ms.
// While events arrive it asks the catalog about once a PollInterval, not at
// every call; a commit still reaches the next call at once (its event), and
// without events every call asks, as before.
func TestIdleNextAsksOncePerInterval(t *testing.T) {
	e := newEnv(t, true)
	v1 := e.write(2)
	idle := func(f *Follower, after int64, d time.Duration) (calls int, polls uint64) {
		before := f.Stats().Polls
		for end := time.Now().Add(d); time.Now().Before(end); calls++ {
			if b := nextOK(t, f, after, 100*time.Millisecond); !b.Empty() {
				t.Fatalf("idle Next returned versions %v after %d", versionsOf(b), after)
			}
		}
		return calls, f.Stats().Polls - before
	}

	f := e.follower(Config{Brokers: kafkaBroker.Brokers(), EventsTopic: e.topic, PollInterval: time.Second})
	waitListening(t, f)
	if b := nextOK(t, f, -1, time.Second); b.ToVersion != v1 {
		t.Fatalf("first batch to %d, want %d", b.ToVersion, v1)
	}
	calls, polls := idle(f, v1, 3*time.Second)
	if calls < 20 || polls > 5 {
		t.Errorf("listening: %d idle Next calls in 3s asked the catalog %d times, want about 3 (once a second)", calls, polls)
	}

	// A commit between two calls: its event makes the next call ask.
	v2 := e.write(3)
	b := nextOK(t, f, v1, 100*time.Millisecond)
	for start := time.Now(); b.Empty() && time.Since(start) < 20*time.Second; {
		b = nextOK(t, f, v1, 100*time.Millisecond)
	}
	if b.ToVersion != v2 {
		t.Fatalf("after a commit Next returned %v, want version %d", versionsOf(b), v2)
	}

	// No events: every call asks.
	quiet := e.follower(Config{PollInterval: time.Second})
	nextOK(t, quiet, -1, time.Second)
	calls, polls = idle(quiet, v2, time.Second)
	if polls < uint64(calls) {
		t.Errorf("without events: %d idle Next calls asked the catalog %d times, want every time", calls, polls)
	}
}

// TestKafkaDownPollingDelivers: a follower woken by events keeps delivering
// by polling once Kafka is gone.
func TestKafkaDownPollingDelivers(t *testing.T) {
	e := newEnv(t, false)
	// A Kafka of its own, stopped mid-test.
	k := devstack.Kafka(t)
	topic := "plantlake.table-commits"
	k.CreateTopic(t, topic, 1)
	f := e.follower(Config{Brokers: k.Brokers(), PollInterval: 300 * time.Millisecond})
	waitListening(t, f)
	if err := k.Stop(); err != nil {
		t.Fatal(err)
	}
	v := e.write(2)
	start := time.Now()
	b := nextOK(t, f, 0, 30*time.Second)
	if b.ToVersion != v || time.Since(start) > 5*time.Second {
		t.Fatalf("Next with Kafka down: %v after %v, want version %d by polling", versionsOf(b), time.Since(start), v)
	}
	got := map[int64]int64{}
	readRows(t, b, got)
	if !maps.Equal(got, e.written) {
		t.Errorf("rows %v, written %v", got, e.written)
	}
}

// TestCompactionIsNotReadAgain: an OPTIMIZE between reads re-adds rows with
// dataChange=false; they are not read again, and the position moves past it.
func TestCompactionIsNotReadAgain(t *testing.T) {
	e := newEnv(t, false)
	e.write(3, 4, 5)
	v2 := e.write(2, 2)
	f := e.follower(Config{})
	got := map[int64]int64{}
	b := nextOK(t, f, -1, time.Second)
	if b.ToVersion != v2 {
		t.Fatalf("first batch to %d, want %d", b.ToVersion, v2)
	}
	readRows(t, b, got)

	vOpt := e.optimize()
	v4 := e.write(6)
	vOpt2 := e.optimize()
	b = nextOK(t, f, v2, time.Second)
	if want := []int64{vOpt, v4, vOpt2}; !slices.Equal(versionsOf(b), want) || b.ToVersion != vOpt2 {
		t.Fatalf("second batch versions %v to %d, want %v", versionsOf(b), b.ToVersion, want)
	}
	if b.Rows != 6 || len(b.Versions[0].Files) != 0 || b.Versions[0].Operation != "OPTIMIZE" {
		t.Errorf("second batch: rows %d, optimize version %+v; want 6 rows and no files for OPTIMIZE", b.Rows, b.Versions[0])
	}
	readRows(t, b, got) // fails on any id read twice
	if !maps.Equal(got, e.written) {
		t.Errorf("rows read (id->version) %v, written %v", got, e.written)
	}
}

// TestTxnOnlyCommitAdvancesPosition: versions without data (txn only) are
// part of the batch, so the position moves past them, and Read reads nothing.
func TestTxnOnlyCommitAdvancesPosition(t *testing.T) {
	e := newEnv(t, false)
	v1 := e.write(2)
	f := e.follower(Config{})
	b := nextOK(t, f, -1, time.Second)
	if b.ToVersion != v1 {
		t.Fatalf("to %d, want %d", b.ToVersion, v1)
	}
	v2 := e.txnOnly("merge/x", 7)
	v3 := e.txnOnly("merge/x", 8)
	b = nextOK(t, f, v1, time.Second)
	if b.FromVersion != v2 || b.ToVersion != v3 || b.Files() != 0 || b.Rows != 0 {
		t.Fatalf("txn-only batch %d..%d files %d rows %d, want %d..%d without files", b.FromVersion, b.ToVersion, b.Files(), b.Rows, v2, v3)
	}
	calls := 0
	if err := b.Read(context.Background(), nil, func(int64, arrow.RecordBatch) error { calls++; return nil }); err != nil || calls != 0 {
		t.Errorf("Read of a txn-only batch: %d calls, %v", calls, err)
	}
	if b = nextOK(t, f, v3, 100*time.Millisecond); !b.Empty() {
		t.Errorf("after the txn-only versions: %v, want empty", versionsOf(b))
	}
}

// TestVacuumedVersionIsAnError: files of a version not read yet that a
// compaction removed and a vacuum deleted make Read fail with ErrFilesGone
// naming the version and the file, never a silent skip.
func TestVacuumedVersionIsAnError(t *testing.T) {
	e := newEnv(t, false)
	v1 := e.write(2) // all in one partition, so that one compaction removes every file
	e.write(3)
	e.write(4)
	e.optimize()
	resp, err := e.client.Vacuum(e.ctx(), &catalogv1.VacuumRequest{Table: e.table, Retention: durationpb.New(0)})
	if err != nil || resp.GetFilesDeleted() != 3 {
		t.Fatalf("Vacuum: %v %v, want 3 files deleted", resp, err)
	}
	f := e.follower(Config{})
	b := nextOK(t, f, 0, time.Second)
	if b.FromVersion != v1 || b.Rows != 9 {
		t.Fatalf("batch from %d rows %d, want from %d with 9 rows", b.FromVersion, b.Rows, v1)
	}
	err = b.Read(context.Background(), nil, func(int64, arrow.RecordBatch) error { return nil })
	if !errors.Is(err, ErrFilesGone) {
		t.Fatalf("Read of vacuumed files: %v, want ErrFilesGone", err)
	}
	if msg := err.Error(); !strings.Contains(msg, fmt.Sprintf("version %d", v1)) || !strings.Contains(msg, b.Versions[0].Files[0].Path) {
		t.Errorf("error %q does not name version %d and file %s", msg, v1, b.Versions[0].Files[0].Path)
	}
	// An error of the callback is returned as it is, not taken for a gone file.
	e2 := newEnv(t, false)
	e2.write(1)
	f2 := e2.follower(Config{})
	stop := errors.New("stop")
	if err := nextOK(t, f2, -1, time.Second).Read(context.Background(), nil, func(int64, arrow.RecordBatch) error { return stop }); err != stop {
		t.Errorf("Read returned %v, want the callback's error itself", err)
	}
}

// TestBatchBounds: batches hold whole versions and stop at the version that
// reaches MaxRows or MaxBytes; consecutive batches cover every version once.
func TestBatchBounds(t *testing.T) {
	e := newEnv(t, false)
	var sizes []int64 // bytes per version
	for range 6 {
		e.write(5, 5) // 10 rows per version, two files
	}
	all := nextOK(t, plainFollower(t, e, Config{}), -1, time.Second)
	for _, v := range all.Versions {
		sizes = append(sizes, v.Bytes)
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		// wantVersions is the number of data versions per batch (the first
		// batch also holds version 0, the table's creation, without data).
		wantVersions []int
	}{
		{"rows 15: two versions each", Config{MaxRows: 15}, []int{2, 2, 2}},
		{"rows 10: one version each", Config{MaxRows: 10}, []int{1, 1, 1, 1, 1, 1}},
		{"rows 35: four then two", Config{MaxRows: 35}, []int{4, 2}},
		{"bytes 1: one version each", Config{MaxBytes: 1}, []int{1, 1, 1, 1, 1, 1}},
		{"bytes 2.5 versions: three each", Config{MaxBytes: sizes[1] + sizes[2] + sizes[3]/2}, []int{3, 3}},
		{"no bounds: all", Config{}, []int{6}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := plainFollower(t, e, tc.cfg)
			got := map[int64]int64{}
			var counts []int
			pos := int64(-1)
			for {
				b := nextOK(t, f, pos, 50*time.Millisecond)
				if b.Empty() {
					break
				}
				if b.FromVersion != pos+1 {
					t.Fatalf("batch from %d after %d", b.FromVersion, pos)
				}
				n := 0
				for _, v := range b.Versions {
					if len(v.Files) > 0 {
						if len(v.Files) != 2 || v.Rows != 10 {
							t.Fatalf("version %d split: %d files %d rows", v.Version, len(v.Files), v.Rows)
						}
						n++
					}
				}
				counts = append(counts, n)
				readRows(t, b, got)
				pos = b.ToVersion
			}
			if !slices.Equal(counts, tc.wantVersions) {
				t.Errorf("data versions per batch %v, want %v", counts, tc.wantVersions)
			}
			if !maps.Equal(got, e.written) {
				t.Errorf("rows read %d, written %d", len(got), len(e.written))
			}
		})
	}
}

// TestReadStreamsAndProjects: a large file comes as several record batches
// of bounded size, and a projection returns only the named columns.
func TestReadStreamsAndProjects(t *testing.T) {
	e := newEnv(t, false)
	e.write(150_000)
	f := plainFollower(t, e, Config{})
	b := nextOK(t, f, -1, time.Second)
	var recs, rows int64
	var maxRows int64
	err := b.Read(context.Background(), []string{"id"}, func(_ int64, rec arrow.RecordBatch) error {
		if rec.NumCols() != 1 || rec.Schema().Field(0).Name != "id" {
			return fmt.Errorf("columns %v, want [id]", rec.Schema())
		}
		recs++
		rows += rec.NumRows()
		maxRows = max(maxRows, rec.NumRows())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if rows != 150_000 || recs < 3 || maxRows > 64<<10 {
		t.Errorf("read %d rows in %d record batches of at most %d rows; want 150000 rows in >= 3 batches of <= 65536", rows, recs, maxRows)
	}
}

// TestConfigAndStats covers New's validation and the stats parsing.
func TestConfigAndStats(t *testing.T) {
	client := catalogv1.NewCatalogServiceClient(nil)
	for _, cfg := range []Config{{}, {Table: "a.b", PollInterval: -1}, {Table: "a.b", MaxRows: -1}, {Table: "a.b", MaxBytes: -1}} {
		if _, err := New(cfg, client, nil); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("New(%+v) = %v, want ErrInvalidConfig", cfg, err)
		}
	}
	for _, tc := range []struct {
		stats string
		want  int64
		ok    bool
	}{
		{"", 0, true},
		{`{"numRecords":42,"minValues":{}}`, 42, true},
		{`{"minValues":{}}`, 0, true},
		{`{"numRecords":`, 0, false},
	} {
		got, err := numRecords(tc.stats)
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("numRecords(%q) = %d, %v; want %d, ok %v", tc.stats, got, err, tc.want, tc.ok)
		}
	}
}

// plainFollower is a follower without an events listener.
func plainFollower(t testing.TB, e *env, cfg Config) *Follower {
	t.Helper()
	cfg.Table = e.table
	f, err := New(cfg, e.client, nil)
	if err != nil {
		t.Fatal(err)
	}
	return f
}
