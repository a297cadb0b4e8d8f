package goldsink

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/plantlake/plantlake/delta"
	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"

	"github.com/plantlake/plantlake/services/merge/internal/bronzetest"
	"github.com/plantlake/plantlake/services/merge/internal/gold"
	"github.com/plantlake/plantlake/services/merge/internal/mergeplan"
)

func TestKeySetHoldsExactlyItsHashes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 3, 4, 5, 17, 1000, 100_000} {
		in := map[uint64]bool{}
		var hs []uint64
		for range n {
			h := rng.Uint64()
			if rng.IntN(10) == 0 && len(hs) > 0 {
				h = hs[rng.IntN(len(hs))] // a repeated hash
			}
			in[h] = true
			hs = append(hs, h)
		}
		s := newKeySet(slices.Clone(hs))
		if !slices.IsSorted(s.hashes) || len(s.hashes) != n {
			t.Fatalf("n=%d: set of %d hashes, sorted %v", n, len(s.hashes), slices.IsSorted(s.hashes))
		}
		for h := range in {
			if !s.has(h) {
				t.Fatalf("n=%d: hash %x missing", n, h)
			}
		}
		for range 10_000 {
			h := rng.Uint64()
			if s.has(h) != in[h] {
				t.Fatalf("n=%d: has(%x) = %v", n, h, s.has(h))
			}
		}
		// Hashes at the edges of the buckets.
		for _, h := range []uint64{0, 1, ^uint64(0), 1 << 63, 1<<63 - 1} {
			if s.has(h) != in[h] {
				t.Fatalf("n=%d: has(%x) = %v", n, h, s.has(h))
			}
		}
	}
}

func TestKeyCacheEvictsTheLeastRecentlyUsedUnderItsBound(t *testing.T) {
	hashes := func(n int) []uint64 {
		hs := make([]uint64, n)
		for i := range hs {
			hs[i] = uint64(i) * 0x9e3779b97f4a7c15
		}
		return hs
	}
	// Each entry of 1,000 hashes holds 8,000 bytes of hashes, 1 KiB of
	// bucket starts and the path: four fit in 40,000 bytes, five do not.
	c := newKeyCache(40_000)
	for i := range 4 {
		c.put(fmt.Sprint("f", i), hashes(1000))
	}
	if len(c.m) != 4 || c.bytes > c.max {
		t.Fatalf("%d entries, %d bytes (bound %d), want 4", len(c.m), c.bytes, c.max)
	}
	if c.get("f0") == nil { // f0 is now the most recently used; f1 goes next
		t.Fatal("f0 missing")
	}
	c.put("f4", hashes(1000))
	if c.get("f1") != nil || c.get("f0") == nil || c.get("f4") == nil || len(c.m) != 4 {
		t.Errorf("after a fifth entry: entries %v, want f1 evicted", slices.Sorted(maps.Keys(c.m)))
	}
	if c.bytes > c.max {
		t.Errorf("%d bytes over the bound %d", c.bytes, c.max)
	}
	// A set larger than the bound is not kept, and leaves the rest alone.
	c.put("big", hashes(10_000))
	if c.get("big") != nil || len(c.m) != 4 {
		t.Errorf("a set beyond the bound: entries %v", slices.Sorted(maps.Keys(c.m)))
	}
	// Putting a path again replaces its entry.
	before := c.bytes
	c.put("f4", hashes(1000))
	if c.bytes != before || len(c.m) != 4 {
		t.Errorf("replacing f4: %d bytes (was %d), %d entries", c.bytes, before, len(c.m))
	}
	c.sweep([]delta.Add{{Path: "f0"}, {Path: "other"}})
	if got := slices.Sorted(maps.Keys(c.m)); !slices.Equal(got, []string{"f0"}) {
		t.Errorf("after a sweep to f0 and other: %v, want [f0]", got)
	}
	var sum int64
	for _, e := range c.m {
		sum += e.size
	}
	if c.bytes != sum {
		t.Errorf("bytes %d, entries hold %d", c.bytes, sum)
	}
	if newKeyCache(0) != nil {
		t.Error("a cache of 0 bytes must be no cache")
	}
}

// cacheScenario are batches where keys hit the newest gold files: each
// batch holds one instant of 40 sensors, redeliveries of the previous
// batch (every seventh a newer raw version, the rest an older one than
// gold's, which latest_wins must not take), and late readings of earlier
// instants, some new to gold, some in it.
func cacheScenario(batches int) [][]bronzetest.Reading {
	var out [][]bronzetest.Reading
	off := int64(0)
	for n := range batches {
		var rs []bronzetest.Reading
		add := func(s, sec int, value float64, rv int64) {
			r := reading(fmt.Sprintf("s%02d", s), sec, value, rv, off)
			off++
			rs = append(rs, r)
		}
		for s := range 40 {
			add(s, 10*n, float64(n), int64(10+n))
			switch {
			case n > 0 && s%7 == 0:
				add(s, 10*(n-1), float64(100+n), int64(10+n)) // newer than gold's
			case n > 0 && s%7 == 3:
				add(s, 10*(n-1), float64(200+n), 1) // older than gold's
			case n > 3 && s%11 == 5:
				add(s, 10*(n-3)+1, float64(300+n), int64(10+n)) // late, new to gold
			case n > 3 && s%13 == 6:
				add(s, 10*(n-3), float64(400+n), int64(10+n)) // late, in gold
			}
		}
		out = append(out, rs)
	}
	return out
}

// sameGold fails unless a and b hold the same rows (merged_at aside).
func sameGold(t *testing.T, a, b map[string]gold.Row) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("gold holds %d rows, without the cache %d", len(a), len(b))
	}
	for k, r := range a {
		o, ok := b[k]
		if !ok {
			t.Fatalf("gold holds %s, without the cache it does not", k)
		}
		r.MergedAt, o.MergedAt = 0, 0
		if r != o {
			t.Fatalf("gold's row %s = %+v, without the cache %+v", k, r, o)
		}
	}
}

func TestKeyCacheMergesAsWithoutIt(t *testing.T) {
	for _, strategy := range []mergeplan.Strategy{mergeplan.FirstWins, mergeplan.LatestWins} {
		t.Run(string(strategy), func(t *testing.T) {
			batches := cacheScenario(12)
			plain := newEnvCache(t, strategy, 0)
			cached := newEnv(t, strategy)
			// collide makes every hash one of four values: nearly every
			// probe is a false positive, which must cost a read and nothing
			// more.
			collide := newEnv(t, strategy)
			collide.sink.keys.mask = 3
			// small keeps the keys of files of at most 41 rows: the batches
			// write files of 40 rows and more.
			small := newEnv(t, strategy)
			small.sink.keys.rows = 41
			for _, rs := range batches {
				plain.mustMerge(rs)
				cached.mustMerge(rs)
				collide.mustMerge(rs)
				small.mustMerge(rs)
				for _, e := range small.sink.keys.m {
					if len(e.set.hashes) > 41 {
						t.Fatalf("the cache keeps %d keys of %s, bound 41 rows", len(e.set.hashes), e.path)
					}
				}
			}
			want := plain.goldRows()
			sameGold(t, cached.goldRows(), want)
			sameGold(t, collide.goldRows(), want)
			sameGold(t, small.goldRows(), want)
			if n, files := len(small.sink.keys.m), len(small.files()); n == 0 || n == files {
				t.Errorf("with a bound of 41 rows a file the cache holds %d entries for %d files", n, files)
			}
			p, c, x := plain.sink.Counts(), cached.sink.Counts(), collide.sink.Counts()
			if c.Inserted != p.Inserted || c.Updated != p.Updated || c.Duplicates != p.Duplicates ||
				x.Inserted != p.Inserted || x.Updated != p.Updated || x.Duplicates != p.Duplicates {
				t.Errorf("counts with the cache %+v, colliding %+v, without %+v", c, x, p)
			}
			if p.Duplicates == 0 || (strategy == mergeplan.LatestWins && p.Updated == 0) {
				t.Errorf("the scenario hit no gold key: %+v", p)
			}
			if c.CachedFiles == 0 || c.CandidateFiles != p.CandidateFiles {
				t.Errorf("with the cache %d of %d candidates passed over (without it %d candidates)", c.CachedFiles, c.CandidateFiles, p.CandidateFiles)
			}
			// Four hash values among 40 and more keys a file: every probe hits.
			if x.CachedFiles != 0 {
				t.Errorf("with colliding hashes %d candidates passed over, want every one read", x.CachedFiles)
			}
		})
	}
}

// TestKeyCacheSmallBoundAndCompaction merges with a cache that holds about
// two files' keys and with one that holds every file's, then compacts
// gold: the entries of the files compaction removed are dropped at the
// next batch, and gold stays right with either.
func TestKeyCacheSmallBoundAndCompaction(t *testing.T) {
	batches := cacheScenario(8)
	plain := newEnvCache(t, mergeplan.LatestWins, 0)
	small := newEnvCache(t, mergeplan.LatestWins, 2_000)
	small.sink.keys.rows = 1 << 20 // a file's keys may fill the whole cache
	full := newEnv(t, mergeplan.LatestWins)
	envs := []*env{plain, small, full}
	for _, rs := range batches[:6] {
		for _, e := range envs {
			e.mustMerge(rs)
		}
		if k := small.sink.keys; k.bytes > k.max || len(k.m) == 0 {
			t.Fatalf("the small cache holds %d entries of %d bytes, bound %d", len(k.m), k.bytes, k.max)
		}
	}
	if n, files := len(small.sink.keys.m), len(small.files()); n >= files {
		t.Errorf("a 2,000-byte cache holds %d entries for %d files: nothing evicted", n, files)
	}
	old := full.files()
	for _, f := range old {
		if full.sink.keys.m[f.Path] == nil {
			t.Fatalf("the full cache has no entry for %s (entries %v)", f.Path, slices.Sorted(maps.Keys(full.sink.keys.m)))
		}
	}
	for _, e := range envs {
		resp, err := e.client.Optimize(e.ctx, &catalogv1.OptimizeRequest{Table: gold.Name})
		if err != nil || !resp.GetCommitted() {
			t.Fatalf("optimize: %v %v", resp, err)
		}
	}
	for _, rs := range batches[6:] {
		for _, e := range envs {
			e.mustMerge(rs)
		}
	}
	for _, e := range []*env{small, full} {
		live := map[string]bool{}
		for _, f := range e.files() {
			live[f.Path] = true
		}
		for p := range e.sink.keys.m {
			if !live[p] {
				t.Errorf("the cache keeps %s, which compaction removed", p)
			}
		}
		sameGold(t, e.goldRows(), plain.goldRows())
	}
	if full.sink.keys.bytes == 0 {
		t.Error("the full cache is empty after the compaction")
	}
}
