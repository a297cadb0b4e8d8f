package goldsink

import (
	"context"
	"fmt"
	"hash/maphash"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/plantlake/plantlake/delta"
	"github.com/plantlake/plantlake/delta/storage"

	"github.com/plantlake/plantlake/services/merge/internal/bronzetest"
	"github.com/plantlake/plantlake/services/merge/internal/gold"
	"github.com/plantlake/plantlake/services/merge/internal/mergeplan"
)

// The benchmarks below measure whether a per-file key filter would pay
// (issue 13 item 3; the numbers are in docs/decisions.md): what reading a
// candidate's key columns costs (what a filter could save), and what a
// Bloom filter over each file's whole key costs to build, store and probe,
// and how many candidates it drops. Gold is one day of 1,000,000 rows in
// four files of 250,000 rows sorted by (sensor_id, ts), as compaction
// leaves it: 500 sensors × 2 measurements × 1,000 instants.

const (
	kfSensors  = 500
	kfTicks    = 1000
	kfFiles    = 4
	kfFileRows = kfSensors * 2 * kfTicks / kfFiles
)

var kfDay = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

func kfTS(tick int) int64 { return kfDay.Add(time.Duration(tick) * 86 * time.Second).UnixMicro() }

// kfGold writes the day's four files and returns the sink and snapshot.
// Row (s, m, tick) is left out when skip says so (a gap a late reading
// fills).
func kfGold(b *testing.B, skip func(s, m, tick int) bool) (*Sink, *delta.Snapshot) {
	ctx := context.Background()
	store, err := storage.NewLocal(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	table, err := delta.Create(ctx, store, delta.Metadata{Format: delta.Format{Provider: "parquet"}, SchemaString: gold.DeltaSchema,
		PartitionColumns: []string{gold.PartitionColumn}}, delta.Protocol{})
	if err != nil {
		b.Fatal(err)
	}
	spec, _ := mergeplan.NewKeySpec(gold.KeyColumns)
	s := &Sink{store: store, table: table, opts: Options{Strategy: mergeplan.FirstWins, Key: spec, MaxFileRows: DefaultMaxFileRows}}
	gb := gold.NewBuilder(nil)
	defer gb.Release()
	var acts []delta.Action
	perFile := kfSensors / kfFiles
	for f := range kfFiles {
		for sn := f * perFile; sn < (f+1)*perFile; sn++ {
			for m, meas := range []string{"pressure", "temperature"} {
				for k := range kfTicks {
					if skip != nil && skip(sn, m, k) {
						continue
					}
					r := gold.Row{SensorID: fmt.Sprintf("sensor%04d", sn), Measurement: meas, Unit: "C", Plant: "p1", Line: "l1",
						Device: "d", MQTTTopic: "t", KafkaTopic: "raw", Value: 1, TS: kfTS(k), EventDate: gold.EventDateOf(kfTS(0)), RawVersion: 1}
					gb.Append(&r)
				}
			}
		}
		rec := gb.NewRecord()
		w := fileWriter{s: s, partition: gold.FormatDate(gold.EventDateOf(kfTS(0))), add: func(a delta.Add) { acts = append(acts, delta.Action{Add: &a}) }}
		if err := w.writeFile(ctx, rec); err != nil {
			b.Fatal(err)
		}
		rec.Release()
	}
	if _, err := table.Commit(ctx, delta.CommitRequest{ReadVersion: 0, Operation: "WRITE", Actions: acts, BlindAppend: true}); err != nil {
		b.Fatal(err)
	}
	snap, err := table.Snapshot(ctx)
	if err != nil {
		b.Fatal(err)
	}
	return s, snap
}

// kfLate are n late readings filling gaps of gold, spread over the sensors
// and the day (devices that buffered readings), so over every file.
func kfLate(n int) ([]bronzetest.Reading, func(s, m, tick int) bool) {
	type k struct{ s, m, t int }
	gaps := map[k]bool{}
	var rs []bronzetest.Reading
	for i := range n {
		g := k{s: i / 2 % kfSensors, m: i % 2, t: (i*7919 + 500) % kfTicks}
		gaps[g] = true
		rs = append(rs, bronzetest.Reading{SensorID: fmt.Sprintf("sensor%04d", g.s), Measurement: []string{"pressure", "temperature"}[g.m],
			Line: "l1", Value: 2, TS: time.UnixMicro(kfTS(g.t)).UTC(), RawVersion: 2, Topic: "raw", Offset: int64(i)})
	}
	return rs, func(s, m, tick int) bool { return gaps[k{s, m, tick}] }
}

func kfBatch(b *testing.B, spec mergeplan.KeySpec, rs []bronzetest.Reading) *mergeplan.Data {
	batch := mergeplan.NewBatch(spec)
	rec := bronzetest.Record(rs)
	defer rec.Release()
	if err := batch.Append(context.Background(), 2, rec); err != nil {
		b.Fatal(err)
	}
	return batch.Flush()
}

// BenchmarkMatchLate measures the match phase of a batch of 1,000 late
// readings, none of whose keys is in gold, against the files whose stats
// admit them: the cost a key filter could save.
func BenchmarkMatchLate(b *testing.B) {
	rs, gaps := kfLate(1000)
	s, snap := kfGold(b, gaps)
	d := kfBatch(b, s.opts.Key, rs)
	parts := mergeplan.Partitions(d, s.opts.Key)
	cands := mergeplan.Candidates(d, parts, snap.Files(), mergeplan.NewStatsCache())
	cpu0 := cpuNow()
	b.ResetTimer()
	for range b.N {
		p := &plan{d: d, snap: snap, parts: parts, candidates: cands, out: make([]uint8, len(d.Rows))}
		if err := s.match(context.Background(), p); err != nil {
			b.Fatal(err)
		}
		for _, o := range p.out {
			if o != outInsert {
				b.Fatal("a late reading matched gold")
			}
		}
	}
	b.ReportMetric(float64(len(cands)), "candidates")
	b.ReportMetric(float64((cpuNow()-cpu0).Milliseconds())/float64(b.N), "cpu-ms/op")
}

// cpuNow is the process's user + system CPU time: on a shared machine
// steadier than wall time.
func cpuNow() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// keyBloom is a Bloom filter over whole merge keys (the measured design,
// not used by the sink).
type keyBloom struct {
	bits []uint64
	k    int
	seed maphash.Seed
}

func newKeyBloom(n, bitsPerKey int, seed maphash.Seed) *keyBloom {
	m := (n*bitsPerKey + 63) / 64
	k := max(1, int(float64(bitsPerKey)*0.69))
	return &keyBloom{bits: make([]uint64, m), k: k, seed: seed}
}

func (f *keyBloom) hash(k *mergeplan.Key) (uint64, uint64) {
	var h maphash.Hash
	h.SetSeed(f.seed)
	h.WriteString(k.SensorID)
	h.WriteByte(0)
	h.WriteString(k.Measurement)
	h.WriteByte(0)
	var b [8]byte
	for i := range 8 {
		b[i] = byte(k.TS >> (8 * i))
	}
	h.Write(b[:])
	x := h.Sum64()
	return x, x>>32 | x<<32 | 1
}

func (f *keyBloom) add(k *mergeplan.Key) {
	h1, h2 := f.hash(k)
	n := uint64(len(f.bits) * 64)
	for i := range f.k {
		bit := (h1 + uint64(i)*h2) % n
		f.bits[bit/64] |= 1 << (bit % 64)
	}
}

func (f *keyBloom) mayHold(k *mergeplan.Key) bool {
	h1, h2 := f.hash(k)
	n := uint64(len(f.bits) * 64)
	for i := range f.k {
		bit := (h1 + uint64(i)*h2) % n
		if f.bits[bit/64]&(1<<(bit%64)) == 0 {
			return false
		}
	}
	return true
}

// BenchmarkKeyBloom builds a whole-key Bloom filter per gold file (what a
// writer would add to every file it writes, from the key columns it
// already holds) and probes it with two batches: 1,000 late readings that
// fill gaps (no key in gold) and the benchmark's streaming batch (5,000
// redelivered keys, all in gold). It reports the build time per file, the
// filter's bytes per file, and the candidates each batch keeps, with the
// whole-key filter and with exact per-column sets of sensor_id and ts (the
// best that Parquet's per-column Bloom filters could do).
func BenchmarkKeyBloom(b *testing.B) {
	for _, bitsPerKey := range []int{10, 16, 24} {
		b.Run(fmt.Sprintf("bits=%d", bitsPerKey), func(b *testing.B) {
			rs, gaps := kfLate(1000)
			s, snap := kfGold(b, gaps)
			ctx := context.Background()
			kr := mergeplan.NewKeyReader(s.opts.Key)
			seed := maphash.MakeSeed()
			files := snap.Files()
			filters := make([]*keyBloom, len(files))
			// The exact sets of each file's sensor_id and ts values: the best
			// Parquet's per-column Bloom filters could do.
			sensorSets := make([]map[string]bool, len(files))
			tsSets := make([]map[int64]bool, len(files))
			var buildCPU time.Duration
			for i, f := range files {
				filters[i] = newKeyBloom(kfFileRows, bitsPerKey, seed)
				sensorSets[i], tsSets[i] = map[string]bool{}, map[int64]bool{}
				err := s.scan(ctx, snap, f, s.opts.Key.Columns(), func(rec arrow.RecordBatch) error {
					if err := kr.Bind(rec); err != nil {
						return err
					}
					t0 := cpuNow()
					for j := range int(rec.NumRows()) {
						k := kr.Key(j)
						filters[i].add(&k)
					}
					buildCPU += cpuNow() - t0
					for j := range int(rec.NumRows()) {
						k := kr.Key(j)
						sensorSets[i][k.SensorID], tsSets[i][k.TS] = true, true
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			late := kfBatch(b, s.opts.Key, rs)
			var redelivered []bronzetest.Reading
			for k := kfTicks - 5; k < kfTicks; k++ {
				for sn := range kfSensors {
					for _, m := range []string{"pressure", "temperature"} {
						redelivered = append(redelivered, bronzetest.Reading{SensorID: fmt.Sprintf("sensor%04d", sn), Measurement: m,
							Line: "l1", Value: 2, TS: time.UnixMicro(kfTS(k)).UTC(), RawVersion: 2, Topic: "raw"})
					}
				}
			}
			stream := kfBatch(b, s.opts.Key, redelivered)
			kept := func(d *mergeplan.Data) (cands, keep, colKeep int) {
				parts := mergeplan.Partitions(d, s.opts.Key)
				cs := mergeplan.Candidates(d, parts, files, mergeplan.NewStatsCache())
				for _, c := range cs {
					for i, f := range files {
						if f.Path != c.Path {
							continue
						}
						st := mergeplan.ParseStats(f.Stats)
						bloomKeeps, colKeeps := false, false
						for k := range d.Index {
							// Only the keys the file's bounds admit are probed.
							if k.SensorID < st.SensorMin || k.SensorID > st.SensorMax || k.TS < st.TSMin || k.TS > st.TSMax {
								continue
							}
							bloomKeeps = bloomKeeps || filters[i].mayHold(&k)
							colKeeps = colKeeps || sensorSets[i][k.SensorID] && tsSets[i][k.TS]
						}
						if bloomKeeps {
							keep++
						}
						if colKeeps {
							colKeep++
						}
					}
				}
				return len(cs), keep, colKeep
			}
			b.ResetTimer()
			var lc, lk, lcol, sc, sk, scol int
			for range b.N {
				lc, lk, lcol = kept(late)
				sc, sk, scol = kept(stream)
			}
			b.ReportMetric(float64(buildCPU.Microseconds())/1000/float64(len(files)), "build-cpu-ms/file")
			b.ReportMetric(float64(len(filters[0].bits)*8), "bytes/file")
			b.ReportMetric(float64(files[0].Size), "parquet-bytes/file")
			b.ReportMetric(float64(lc), "late-candidates")
			b.ReportMetric(float64(lk), "late-kept")
			b.ReportMetric(float64(lcol), "late-kept-by-columns")
			b.ReportMetric(float64(scol), "stream-kept-by-columns")
			b.ReportMetric(float64(sc), "stream-candidates")
			b.ReportMetric(float64(sk), "stream-kept")
		})
	}
}
