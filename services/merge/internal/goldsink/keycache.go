package goldsink

import (
	"hash/maphash"
	"maps"
	"slices"
	"strings"

	"github.com/plantlake/plantlake/delta"

	"github.com/plantlake/plantlake/services/merge/internal/mergeplan"
)

// DefaultKeyCacheBytes bounds the key cache: about 9 bytes a gold row, so
// 32 MiB hold the keys of some 3.7 M rows (four minutes of gold at 14,000
// readings/s).
const DefaultKeyCacheBytes = 32 << 20

// keyCache keeps, per gold file, the 64-bit hashes of the merge keys the
// file holds, so that a batch probes a candidate's hashes instead of
// decoding its key columns again. A Delta file never changes under its
// path (a compaction writes new paths), so an entry stays right for as
// long as the file lives; the cache is filled when merge writes a file (it
// knows the rows) or first reads one, bounded by bytes (least recently
// used first out), and emptied of files that left the snapshot. A
// compaction's new file gets the union of its inputs' entries when every
// input had one (follow): its rows are theirs, so it is not read. A hash
// only rules a file out: a batch whose hashes hit a file reads it as
// before, so a collision costs a read and never a wrong result. After a
// restart the cache is empty and merge reads as it did without one.
//
// A keyCache is used by one goroutine (the sink's Commit).
type keyCache struct {
	seed maphash.Seed
	// mask is applied to every hash: ^0, or fewer bits in tests to force
	// collisions.
	mask uint64
	// rows is the most rows a file may have for its keys to be kept: an
	// entry takes at most a sixteenth of the cache (2 MiB, about 230,000
	// rows, by default), so that a large compacted file is read as before
	// (not hashed) and does not push out the small files a stream's
	// batches probe.
	rows int
	// derivedRows is the most hashes an entry derived from a
	// compaction's inputs may have (follow): a quarter of the cache
	// (about 930,000 rows by default). Such an entry costs no read and no
	// hashing, and a stream's compacted files outgrow a sixteenth soon
	// (stitched again with the small files after them) while their
	// bounds still admit the late readings of every batch: over the
	// bound, such a file was read whole by every batch it was a
	// candidate of (BenchmarkStreamCompacted).
	derivedRows int
	max         int64
	bytes       int64
	m           map[string]*keyEntry
	// lru is the sentinel of a circular list: lru.next is the most
	// recently used entry, lru.prev the next to go.
	lru   keyEntry
	epoch uint64
}

type keyEntry struct {
	path       string
	set        keySet
	size       int64
	seen       uint64
	prev, next *keyEntry
}

// newKeyCache returns a cache of at most max bytes; nil when max <= 0
// (no cache).
func newKeyCache(max int64) *keyCache {
	if max <= 0 {
		return nil
	}
	c := &keyCache{seed: maphash.MakeSeed(), mask: ^uint64(0), rows: int(max / 16 / 9), derivedRows: int(max / 4 / 9), max: max, m: map[string]*keyEntry{}}
	c.lru.next, c.lru.prev = &c.lru, &c.lru
	return c
}

// hash returns k's hash. Every column of the key goes in, with its null
// bits, so that equal keys (as Data.Index compares them) hash alike.
func (c *keyCache) hash(k *mergeplan.Key) uint64 {
	return maphash.Comparable(c.seed, *k) & c.mask
}

// get returns path's set, or nil, and marks it recently used.
func (c *keyCache) get(path string) *keySet {
	e := c.m[path]
	if e == nil {
		return nil
	}
	c.unlink(e)
	c.pushFront(e)
	return &e.set
}

// maxRows is the most rows a file may have for its keys to be kept.
func (c *keyCache) maxRows() int { return c.rows }

// put keeps hashes (which it takes over and sorts) as path's set, then
// drops the least recently used entries beyond the bound. A set larger
// than the whole bound is not kept.
func (c *keyCache) put(path string, hashes []uint64) {
	c.drop(path)
	set := newKeySet(hashes)
	e := &keyEntry{path: path, set: set, size: set.bytes() + int64(len(path)) + 96}
	if e.size > c.max {
		return
	}
	c.m[path] = e
	c.pushFront(e)
	c.bytes += e.size
	for c.bytes > c.max {
		c.drop(c.lru.prev.path)
	}
}

// drop forgets path.
func (c *keyCache) drop(path string) {
	e := c.m[path]
	if e == nil {
		return
	}
	c.unlink(e)
	delete(c.m, path)
	c.bytes -= e.size
}

// sweep drops the entries of files not in live (a snapshot's files).
func (c *keyCache) sweep(live []delta.Add) {
	if len(c.m) == 0 {
		return
	}
	c.epoch++
	for i := range live {
		if e := c.m[live[i].Path]; e != nil {
			e.seen = c.epoch
		}
	}
	for path, e := range c.m {
		if e.seen != c.epoch {
			c.drop(path)
		}
	}
}

// follow applies one commit of another writer to the cache and returns
// the number of entries it derived. Every file the commit removes or adds
// loses its entry (an added path is new, but an entry must never describe
// other rows than the file's). A compaction (see compaction) adds, per
// partition, files holding exactly the rows of the files it removes
// there: when every file it removes in a partition had an entry, each file
// it adds there gets the union of their hashes (a superset of its keys
// when a partition has several new files, which costs reads, never a
// missed key), unless the union has more than derivedRows hashes. A partition
// with a removed file unknown to the cache (never read, evicted) gets no
// entry: its new files are read on first use.
func (c *keyCache) follow(acts []delta.Action) (derived int) {
	type group struct {
		complete bool
		n        int
		sets     []*keySet
		adds     []string
	}
	var groups map[string]*group
	if compaction(acts) {
		groups = map[string]*group{}
		for i := range acts {
			if r := acts[i].Remove; r != nil {
				k := partitionKey(r.PartitionValues)
				g := groups[k]
				if g == nil {
					g = &group{complete: true}
					groups[k] = g
				}
				if e := c.m[r.Path]; e == nil {
					g.complete = false
				} else if g.complete {
					g.n += len(e.set.hashes)
					g.sets = append(g.sets, &e.set)
				}
			}
		}
		for i := range acts {
			if a := acts[i].Add; a != nil {
				if g := groups[partitionKey(a.PartitionValues)]; g != nil && g.complete {
					g.adds = append(g.adds, a.Path)
				}
			}
		}
	}
	type derivedKeys struct {
		path   string
		hashes []uint64
	}
	var out []derivedKeys
	for _, g := range groups {
		if len(g.adds) == 0 || g.n > c.derivedRows {
			continue
		}
		for _, path := range g.adds {
			hs := make([]uint64, 0, g.n)
			for _, set := range g.sets {
				hs = append(hs, set.hashes...)
			}
			out = append(out, derivedKeys{path: path, hashes: hs})
		}
	}
	for i := range acts {
		switch {
		case acts[i].Remove != nil:
			c.drop(acts[i].Remove.Path)
		case acts[i].Add != nil:
			c.drop(acts[i].Add.Path)
		}
	}
	for _, d := range out {
		c.put(d.path, d.hashes)
		if c.m[d.path] != nil {
			derived++
		}
	}
	return derived
}

// compaction reports whether acts are a compaction's commit: an OPTIMIZE
// (by its commitInfo) that removes files and adds files, every one with
// dataChange=false (the rows are the same, only rearranged), and every
// removed file with its partition values.
func compaction(acts []delta.Action) bool {
	optimize, adds, removes := false, 0, 0
	for i := range acts {
		switch a := &acts[i]; {
		case a.CommitInfo != nil:
			optimize = a.CommitInfo.Operation == "OPTIMIZE"
		case a.Add != nil:
			if a.Add.DataChange {
				return false
			}
			adds++
		case a.Remove != nil:
			if a.Remove.DataChange || a.Remove.PartitionValues == nil {
				return false
			}
			removes++
		}
	}
	return optimize && adds > 0 && removes > 0
}

// partitionKey identifies a file's partition by its partition values.
func partitionKey(values map[string]string) string {
	if len(values) == 1 {
		for k, v := range values {
			return k + "=" + v
		}
	}
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(values)) {
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(values[k])
		b.WriteByte(0)
	}
	return b.String()
}

func (c *keyCache) unlink(e *keyEntry) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

func (c *keyCache) pushFront(e *keyEntry) {
	e.prev, e.next = &c.lru, c.lru.next
	c.lru.next.prev = e
	c.lru.next = e
}

// keySet is a set of 64-bit hashes: sorted, with the start of each bucket
// of equal top bits, about four hashes a bucket, so that a probe looks at
// a few neighbouring words. About 9 bytes a hash.
type keySet struct {
	hashes []uint64
	// starts[b] is where the hashes whose top bits are b start;
	// starts[len(starts)-1] == len(hashes).
	starts []uint32
	shift  uint
}

// newKeySet sorts hs into a set (a bucket sort on the top bits, then each
// small bucket sorted).
func newKeySet(hs []uint64) keySet {
	bits := uint(0)
	for (4 << bits) < len(hs) {
		bits++
	}
	s := keySet{starts: make([]uint32, (1<<bits)+1), shift: 64 - bits}
	for _, h := range hs {
		s.starts[(h>>s.shift)+1]++
	}
	for b := 1; b < len(s.starts); b++ {
		s.starts[b] += s.starts[b-1]
	}
	next := slices.Clone(s.starts[:len(s.starts)-1])
	s.hashes = make([]uint64, len(hs))
	for _, h := range hs {
		b := h >> s.shift
		s.hashes[next[b]] = h
		next[b]++
	}
	for b := range len(s.starts) - 1 {
		if s.starts[b+1]-s.starts[b] > 1 {
			slices.Sort(s.hashes[s.starts[b]:s.starts[b+1]])
		}
	}
	return s
}

// has reports whether h is in the set.
func (s *keySet) has(h uint64) bool {
	b := h >> s.shift
	for _, x := range s.hashes[s.starts[b]:s.starts[b+1]] {
		if x >= h {
			return x == h
		}
	}
	return false
}

// bytes is the memory the set holds.
func (s *keySet) bytes() int64 { return int64(8*len(s.hashes) + 4*len(s.starts)) }
