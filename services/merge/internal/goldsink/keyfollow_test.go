package goldsink

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/parquet/file"

	"github.com/plantlake/plantlake/delta"
	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"

	"github.com/plantlake/plantlake/services/merge/internal/bronzetest"
	"github.com/plantlake/plantlake/services/merge/internal/gold"
	"github.com/plantlake/plantlake/services/merge/internal/mergeplan"
)

func TestKeyCacheFollowDerivesOnlyFromCompleteInputs(t *testing.T) {
	hashes := func(base uint64, n int) []uint64 {
		hs := make([]uint64, n)
		for i := range hs {
			hs[i] = (base + uint64(i)) * 0x9e3779b97f4a7c15
		}
		return hs
	}
	part := func(day string) map[string]string { return map[string]string{gold.PartitionColumn: day} }
	rm := func(path, day string, change bool) delta.Action {
		return delta.Action{Remove: &delta.Remove{Path: path, DataChange: change, PartitionValues: part(day)}}
	}
	add := func(path, day string, change bool) delta.Action {
		return delta.Action{Add: &delta.Add{Path: path, DataChange: change, PartitionValues: part(day)}}
	}
	op := func(name string) delta.Action { return delta.Action{CommitInfo: &delta.CommitInfo{Operation: name}} }
	has := func(c *keyCache, path string, want []uint64) {
		t.Helper()
		e := c.m[path]
		if e == nil {
			t.Fatalf("no entry for %s (entries %v)", path, slices.Sorted(maps.Keys(c.m)))
		}
		if got, w := slices.Sorted(slices.Values(e.set.hashes)), slices.Sorted(slices.Values(want)); !slices.Equal(got, w) {
			t.Fatalf("%s holds %d hashes, want the %d of its inputs", path, len(got), len(w))
		}
	}
	entries := func(c *keyCache) []string { return slices.Sorted(maps.Keys(c.m)) }

	c := newKeyCache(1 << 20)
	a1, a2, b1 := hashes(100, 10), hashes(200, 10), hashes(300, 10)
	c.put("d1/a1", slices.Clone(a1))
	c.put("d1/a2", slices.Clone(a2))
	c.put("d2/b1", slices.Clone(b1))
	// d2/b2 has no entry: d2's new file must get none.
	n := c.follow([]delta.Action{op("OPTIMIZE"),
		rm("d1/a1", "d1", false), rm("d1/a2", "d1", false), rm("d2/b1", "d2", false), rm("d2/b2", "d2", false),
		add("d1/A", "d1", false), add("d1/A2", "d1", false), add("d2/B", "d2", false)})
	if n != 2 {
		t.Errorf("derived %d entries, want 2 (d1's two new files)", n)
	}
	has(c, "d1/A", append(slices.Clone(a1), a2...))
	has(c, "d1/A2", append(slices.Clone(a1), a2...))
	if got := entries(c); !slices.Equal(got, []string{"d1/A", "d1/A2"}) {
		t.Errorf("entries %v, want [d1/A d1/A2]", got)
	}

	// A union beyond the bound of an entry: no entry.
	c.put("d1/c", hashes(400, 10))
	c.derivedRows = 29
	if n := c.follow([]delta.Action{op("OPTIMIZE"), rm("d1/A", "d1", false), rm("d1/c", "d1", false), add("d1/D", "d1", false)}); n != 0 || c.m["d1/D"] != nil {
		t.Errorf("a union of 30 hashes over a bound of 29 rows: derived %d, entries %v", n, entries(c))
	}
	c.derivedRows = 1 << 20

	// Not compactions: another operation, or a change of data (an add or
	// a remove), or a remove without partition values. Their files lose
	// their entries, and an added path that had one (it must not) too.
	for name, commit := range map[string][]delta.Action{
		"WRITE":      {op("WRITE"), rm("d1/x", "d1", false), add("d1/y", "d1", false)},
		"no op":      {rm("d1/x", "d1", false), add("d1/y", "d1", false)},
		"add change": {op("OPTIMIZE"), rm("d1/x", "d1", false), add("d1/y", "d1", true)},
		"rm change":  {op("OPTIMIZE"), rm("d1/x", "d1", true), add("d1/y", "d1", false)},
		"no values":  {op("OPTIMIZE"), {Remove: &delta.Remove{Path: "d1/x"}}, add("d1/y", "d1", false)},
	} {
		c.put("d1/x", hashes(500, 10))
		c.put("d1/y", hashes(600, 10))
		c.put("d1/z", hashes(700, 10))
		if n := c.follow(commit); n != 0 || c.m["d1/x"] != nil || c.m["d1/y"] != nil || c.m["d1/z"] == nil {
			t.Errorf("%s: derived %d, entries %v, want only d1/z (and d1/A2)", name, n, entries(c))
		}
	}
}

// compacted returns the files of e's gold that are not in before.
func (e *env) compacted(before []delta.Add) []delta.Add {
	e.t.Helper()
	old := map[string]bool{}
	for _, f := range before {
		old[f.Path] = true
	}
	var out []delta.Add
	for _, f := range e.files() {
		if !old[f.Path] {
			out = append(out, f)
		}
	}
	return out
}

// optimize compacts e's gold (of the partition day only, unless "").
func (e *env) optimize(day string) *catalogv1.OptimizeResponse {
	e.t.Helper()
	req := &catalogv1.OptimizeRequest{Table: gold.Name}
	if day != "" {
		req.PartitionFilters = []*catalogv1.Filter{{Column: gold.PartitionColumn, Op: catalogv1.FilterOp_FILTER_OP_EQ, Value: day}}
	}
	resp, err := e.client.Optimize(e.ctx, req)
	if err != nil || !resp.GetCommitted() {
		e.t.Fatalf("optimize: %v %v", resp, err)
	}
	return resp
}

// fileHashes reads f's keys and returns their hashes, sorted.
func (e *env) fileHashes(f delta.Add) []uint64 {
	e.t.Helper()
	snap, err := e.sink.table.Snapshot(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	kr := mergeplan.NewKeyReader(e.spec)
	var hs []uint64
	err = e.sink.scan(e.ctx, snap, f, e.spec.Columns(), func(rec arrow.RecordBatch) error {
		if err := kr.Bind(rec); err != nil {
			return err
		}
		for i := range int(rec.NumRows()) {
			k := kr.Key(i)
			hs = append(hs, e.sink.keys.hash(&k))
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	slices.Sort(hs)
	return hs
}

// fileReadings returns readings of f's keys (other values, raw version
// 1: older than gold's).
func (e *env) fileReadings(f delta.Add) []bronzetest.Reading {
	e.t.Helper()
	var out []bronzetest.Reading
	for i, r := range e.fileKeyRows(f) {
		out = append(out, reading(r.SensorID, int((r.TS-day.UnixMicro())/1e6), 2000, 1, int64(300_000+i)))
	}
	return out
}

// rowGroups returns the number of row groups of f.
func (e *env) rowGroups(f delta.Add) int {
	e.t.Helper()
	r, err := e.sink.store.Open(e.ctx, f.Path)
	if err != nil {
		e.t.Fatal(err)
	}
	defer r.Close()
	pf, err := file.NewParquetReader(io.NewSectionReader(r, 0, r.Size()))
	if err != nil {
		e.t.Fatal(err)
	}
	defer pf.Close()
	return pf.NumRowGroups()
}

// between returns readings of 40 sensors at the fifth second of the
// first instants of cacheScenario: new keys inside the bounds of the
// files that wrote those instants.
func between(instants int, rv int64) []bronzetest.Reading {
	var rs []bronzetest.Reading
	for n := range instants {
		for s := 0; s < 40; s += 3 {
			rs = append(rs, reading(fmt.Sprintf("s%02d", s), 10*n+5, 500, rv, int64(100_000+100*n+s)))
		}
	}
	return rs
}

// redeliver returns bs's readings again with other values, every other
// one at raw version even, the others at odd (1 is older than gold's).
func redeliver(even, odd int64, bs ...[]bronzetest.Reading) []bronzetest.Reading {
	var out []bronzetest.Reading
	for _, rs := range bs {
		for i, r := range rs {
			r.Value += 1000
			r.RawVersion = even
			if i%2 == 1 {
				r.RawVersion = odd
			}
			r.Offset += 200_000
			out = append(out, r)
		}
	}
	return out
}

// sameCounts fails unless a and b inserted, updated and dropped alike.
func sameCounts(t *testing.T, name string, a, b Counts) {
	t.Helper()
	if a.Inserted != b.Inserted || a.Updated != b.Updated || a.Duplicates != b.Duplicates {
		t.Errorf("%s: counts %+v, without the cache %+v", name, a, b)
	}
}

// TestKeyCacheDerivesCompactedFiles merges batches, compacts gold with the
// catalog (stitching the files, or rewriting them), and merges on: the
// compacted file's keys come from its inputs' entries, so a batch of new
// keys inside its bounds does not read it, and redeliveries of its keys
// are found (as duplicates, or updates), with hashes of 64 bits and of 2
// (every probe a false positive).
func TestKeyCacheDerivesCompactedFiles(t *testing.T) {
	for _, mode := range []struct {
		name string
		args []string
	}{
		{"stitched", []string{"--stitch-min-row-group-rows=1"}},
		{"rewritten", []string{"--stitch-min-row-group-rows=-1"}},
	} {
		for _, strategy := range []mergeplan.Strategy{mergeplan.FirstWins, mergeplan.LatestWins} {
			t.Run(mode.name+"/"+string(strategy), func(t *testing.T) {
				batches := cacheScenario(9)
				plain := newEnvCatalog(t, strategy, 0, mode.args...)
				full := newEnvCatalog(t, strategy, DefaultKeyCacheBytes, mode.args...)
				// The batches write files of 40 to 60 rows; the compacted
				// file has more than a file read may have for its keys to
				// be kept, and fewer than a derived entry may.
				full.sink.keys.rows = 100
				collide := newEnvCatalog(t, strategy, DefaultKeyCacheBytes, mode.args...)
				collide.sink.keys.mask = 3
				envs := []*env{plain, full, collide}
				for _, rs := range batches[:6] {
					for _, e := range envs {
						e.mustMerge(rs)
					}
				}
				inputs := full.files()
				var inputKeys [][]bronzetest.Reading
				for _, f := range inputs {
					if full.sink.keys.m[f.Path] == nil {
						t.Fatalf("no entry for %s before the compaction", f.Path)
					}
					inputKeys = append(inputKeys, full.fileReadings(f))
				}
				for _, e := range envs {
					e.optimize("")
				}
				out := full.compacted(inputs)
				if len(out) != 1 || len(full.files()) != 1 {
					t.Fatalf("the compaction of %d files left %d files, %d of them new; want 1", len(inputs), len(full.files()), len(out))
				}
				if n := full.sink.cache.Get(&out[0]).NumRecords; n <= int64(full.sink.keys.rows) {
					t.Fatalf("the compacted file has %d rows, want more than %d", n, full.sink.keys.rows)
				}
				groups, wantGroups := full.rowGroups(out[0]), 1
				if mode.name == "stitched" {
					wantGroups = len(inputs)
				}
				if groups != wantGroups {
					t.Fatalf("the %s file has %d row groups, want %d", mode.name, groups, wantGroups)
				}

				// New keys inside the compacted file's bounds.
				c0, x0 := full.sink.Counts(), collide.sink.Counts()
				for _, e := range envs {
					e.mustMerge(between(5, 20))
				}
				c, x := full.sink.Counts(), collide.sink.Counts()
				if c.DerivedFiles-c0.DerivedFiles != 1 || x.DerivedFiles-x0.DerivedFiles != 1 {
					t.Errorf("derived %d entries (colliding hashes: %d), want 1", c.DerivedFiles-c0.DerivedFiles, x.DerivedFiles-x0.DerivedFiles)
				}
				if cand := c.CandidateFiles - c0.CandidateFiles; cand != 1 || c.CachedFiles-c0.CachedFiles != cand {
					t.Errorf("a batch of new keys read %d of its %d candidates, want none of 1 (the compacted file)", cand-(c.CachedFiles-c0.CachedFiles), cand)
				}
				if x.CachedFiles != x0.CachedFiles {
					t.Errorf("with colliding hashes %d candidates passed over, want every one read", x.CachedFiles-x0.CachedFiles)
				}
				e := full.sink.keys.m[out[0].Path]
				if e == nil {
					t.Fatalf("no entry for the compacted file %s", out[0].Path)
				}
				if got, want := slices.Sorted(slices.Values(e.set.hashes)), full.fileHashes(out[0]); !slices.Equal(got, want) {
					t.Errorf("the derived entry holds %d hashes, the file %d keys (or others)", len(got), len(want))
				}

				// Redeliveries of the keys of each input in turn, older than
				// gold's (the compacted file stays): found, whichever
				// input's hashes the entry would lack.
				for i, rs := range inputKeys {
					p0, c0 := plain.sink.Counts(), full.sink.Counts()
					for _, e := range envs {
						e.mustMerge(rs)
					}
					p, c := plain.sink.Counts(), full.sink.Counts()
					if c.CandidateFiles-c0.CandidateFiles == c.CachedFiles-c0.CachedFiles {
						t.Errorf("redeliveries of input %d's keys did not read the compacted file", i)
					}
					if p.Duplicates-p0.Duplicates != int64(len(rs)) {
						t.Errorf("%d of %d redeliveries of input %d's keys were duplicates", p.Duplicates-p0.Duplicates, len(rs), i)
					}
				}
				// Newer ones too (latest_wins rewrites the compacted file).
				p0 := plain.sink.Counts()
				for _, e := range envs {
					e.mustMerge(redeliver(30, 1, batches[1], batches[4]))
				}
				if p := plain.sink.Counts(); strategy == mergeplan.LatestWins && p.Updated-p0.Updated == 0 {
					t.Errorf("the newer redeliveries updated no gold row: %+v then %+v", p0, p)
				}
				for _, rs := range batches[6:] {
					for _, e := range envs {
						e.mustMerge(rs)
					}
				}
				want := plain.goldRows()
				sameGold(t, full.goldRows(), want)
				sameGold(t, collide.goldRows(), want)
				sameCounts(t, "64-bit hashes", full.sink.Counts(), plain.sink.Counts())
				sameCounts(t, "2-bit hashes", collide.sink.Counts(), plain.sink.Counts())
			})
		}
	}
}

// TestKeyCacheDoesNotDeriveFromAnEvictedInput compacts files of which
// some were evicted from a small cache: the compacted file gets no entry
// and is read.
func TestKeyCacheDoesNotDeriveFromAnEvictedInput(t *testing.T) {
	batches := cacheScenario(8)
	plain := newEnvCache(t, mergeplan.FirstWins, 0)
	small := newEnvCache(t, mergeplan.FirstWins, 2_000)
	small.sink.keys.rows = 1 << 20
	for _, rs := range batches[:6] {
		plain.mustMerge(rs)
		small.mustMerge(rs)
	}
	inputs := small.files()
	kept := 0
	for _, f := range inputs {
		if small.sink.keys.m[f.Path] != nil {
			kept++
		}
	}
	if kept == 0 || kept == len(inputs) {
		t.Fatalf("the small cache holds %d of %d files' keys, want some, not all", kept, len(inputs))
	}
	plain.optimize("")
	small.optimize("")
	if out := small.compacted(inputs); len(out) != 1 {
		t.Fatalf("%d new files, want 1", len(out))
	}
	c0 := small.sink.Counts()
	plain.mustMerge(between(5, 20))
	small.mustMerge(between(5, 20))
	c := small.sink.Counts()
	if c.DerivedFiles != c0.DerivedFiles {
		t.Errorf("derived %d entries from inputs not all cached", c.DerivedFiles-c0.DerivedFiles)
	}
	if read := (c.CandidateFiles - c0.CandidateFiles) - (c.CachedFiles - c0.CachedFiles); read != 1 {
		t.Errorf("%d files read, want 1 (the compacted file)", read)
	}
	plain.mustMerge(redeliver(30, 1, batches[2]))
	small.mustMerge(redeliver(30, 1, batches[2]))
	for _, rs := range batches[6:] {
		plain.mustMerge(rs)
		small.mustMerge(rs)
	}
	sameGold(t, small.goldRows(), plain.goldRows())
	sameCounts(t, "a small cache", small.sink.Counts(), plain.sink.Counts())
}

// TestKeyCacheFollowsACompactionBeforeItsCommit compacts one day of gold
// while a merge of the other day is between its snapshot and its commit:
// the merge commits (no file of its read), a version after the
// compaction. The next batch follows the compaction (the compacted file's
// keys derived, not read) and not the merge's own commit (whose written
// file keeps its entry, and is not read either).
func TestKeyCacheFollowsACompactionBeforeItsCommit(t *testing.T) {
	const day2 = 86400
	at := func(sensor string, sec int, rv int64, off int64) bronzetest.Reading {
		return reading(sensor, sec, float64(sec)+float64(rv)/10, rv, off)
	}
	instant := func(n int, days ...int) []bronzetest.Reading {
		var rs []bronzetest.Reading
		for _, d := range days {
			for s := range 20 {
				rs = append(rs, at(fmt.Sprintf("s%02d", s), d+10*n, int64(10+n), int64(1000*n+d/10+s)))
			}
		}
		return rs
	}
	firstDay := day.Format(time.DateOnly)
	for _, strategy := range []mergeplan.Strategy{mergeplan.FirstWins, mergeplan.LatestWins} {
		t.Run(string(strategy), func(t *testing.T) {
			plain := newEnvCache(t, strategy, 0)
			full := newEnv(t, strategy)
			envs := []*env{plain, full}
			for n := range 5 {
				for _, e := range envs {
					e.mustMerge(instant(n, 0, day2))
				}
			}
			// The next instant of the second day, with redeliveries of the
			// last one; the first day is compacted meanwhile.
			next := append(instant(5, day2), redeliver(30, 1, instant(4, day2))...)
			var inputs []delta.Add
			for _, e := range envs {
				before := e.files()
				e.sink.beforeCommit = func(ctx context.Context) {
					e.sink.beforeCommit = nil
					e.optimize(firstDay)
				}
				e.mustMerge(next)
				if e == full {
					inputs = before
				}
			}
			if full.sink.keysOwn < 0 {
				t.Fatalf("the merge committed right after its snapshot (base %d): no compaction in between", full.sink.keysBase)
			}
			out := full.compacted(inputs)
			var compactedDay1 delta.Add
			var written []delta.Add
			for _, f := range out {
				if f.PartitionValues[gold.PartitionColumn] == firstDay {
					compactedDay1 = f
				} else {
					written = append(written, f)
				}
			}
			if compactedDay1.Path == "" || len(written) == 0 {
				t.Fatalf("new files %v: want the first day's compacted file and the merge's", out)
			}
			for _, f := range written {
				if full.sink.keys.m[f.Path] == nil {
					t.Fatalf("no entry for %s, which the merge wrote", f.Path)
				}
			}

			// New keys inside the bounds of the compacted file (first day)
			// and of the file just written (second day, instant 5).
			fresh := []bronzetest.Reading{at("s05x", 15, 40, 50_000), at("s05x", day2+50, 40, 50_001)}
			c0 := full.sink.Counts()
			for _, e := range envs {
				e.mustMerge(fresh)
			}
			c := full.sink.Counts()
			if d := c.DerivedFiles - c0.DerivedFiles; d != 1 {
				t.Errorf("derived %d entries, want 1", d)
			}
			if cand, cached := c.CandidateFiles-c0.CandidateFiles, c.CachedFiles-c0.CachedFiles; cand < 2 || cached != cand {
				t.Errorf("a batch of new keys read %d of its %d candidates, want none", cand-cached, cand)
			}

			// Redeliveries of both: found.
			for _, e := range envs {
				e.mustMerge(redeliver(40, 1, instant(2, 0), instant(5, day2)))
			}
			sameGold(t, full.goldRows(), plain.goldRows())
			sameCounts(t, "interleaved", full.sink.Counts(), plain.sink.Counts())
		})
	}
}
