package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"
)

// generated returns n records of the test: every 10th broken in one of a
// few ways, the others valid readings of 50 sensors on 3 lines.
func generated(e *env, from, n int) []*record {
	now := time.Now().Unix()
	recs := make([]*record, n)
	for i := range n {
		seq := from + i
		sensor := fmt.Sprintf("press%02d", seq%50)
		topic := fmt.Sprintf("plant/line%d/%s/temperature", seq%3, sensor)
		var p []byte
		switch seq % 10 {
		case 3:
			p = fmt.Appendf(nil, `{"sensor_id":%q,"measurement":"temperature","value":"NaN","unit":"C","ts":%d}`, sensor, now)
		case 7:
			p = fmt.Appendf(nil, `{"sensor_id":%q,"measurement":"temp`, sensor)
		default:
			p = fmt.Appendf(nil, `{"sensor_id":%q,"measurement":"temperature","value":%d.%d,"unit":"C","ts":%d,"seq":%d}`,
				sensor, 20+seq%70, seq%10, now-int64(seq%3600), seq)
		}
		recs[i] = newRecord(e.topicRaw, topic, p)
	}
	return recs
}

// positions returns where the records landed.
func positions(recs []*record) map[pos]bool {
	out := make(map[pos]bool, len(recs))
	for _, r := range recs {
		out[pos{r.topic, r.partition, r.offset}] = true
	}
	return out
}

// checkExactlyOnce reads both targets' lineage with delta-rs and checks
// that every produced record is in exactly one of them, nothing else is,
// and both txns are at raw's latest version; it returns the row counts.
func (e *env) checkExactlyOnce(produced map[pos]bool, rawVersion int64) (valid, dead int) {
	e.t.Helper()
	seen := make(map[pos]string, len(produced))
	problems := 0
	report := func(format string, args ...any) {
		problems++
		if problems <= 10 {
			e.t.Errorf(format, args...)
		}
	}
	for _, table := range []string{bronzeTable, deadTable} {
		rows := e.read(table, "kafka_topic", "kafka_partition", "kafka_offset", "raw_version")
		for _, r := range rows {
			p := posOf(r)
			if prev, dup := seen[p]; dup {
				report("record %v twice: in %s and in %s", p, prev, table)
			}
			seen[p] = table
			if !produced[p] {
				report("%s row %v was never produced", table, p)
			}
			if v := num(r, "raw_version"); v < 0 || v > rawVersion {
				report("%s row %v has raw_version %d, raw is at %d", table, p, v, rawVersion)
			}
		}
		if table == bronzeTable {
			valid = len(rows)
		} else {
			dead = len(rows)
		}
	}
	for p := range produced {
		if _, ok := seen[p]; !ok {
			report("record %v is in neither table", p)
		}
	}
	if problems > 10 {
		e.t.Errorf("... %d problems in all", problems)
	}
	for _, table := range []string{bronzeTable, deadTable} {
		if got := e.txn(table); got != rawVersion {
			e.t.Errorf("%s txn for %s is %d, raw's last version %d", table, appID, got, rawVersion)
		}
	}
	return valid, dead
}

// TestKill9: deserialize killed with SIGKILL ten times while it derives
// 200,000 raw rows loses and doubles nothing. The rows come in ten parts,
// one before each run, with ingest running alongside, so that every run
// has rows to derive when it is killed.
func TestKill9(t *testing.T) {
	const n, runs = 200_000, 10
	e := newEnv(t)
	recs := generated(e, 0, n)
	e.ingest("--batch-max-rows", "500")
	// About one raw version a batch: forty batches a part, each two commits.
	args := []string{"--batch-max-rows", "500"}
	rng := rand.New(rand.NewPCG(1, 2))
	progress := []int64{}
	midRun := 0
	prev := int64(-1)
	for i := range runs {
		produce(t, recs[i*n/runs:(i+1)*n/runs])
		d := e.deserialize(args...)
		d.grpcAddr(t)
		// Kill at a random moment of the run, once it has committed: mid-
		// derivation, between or during the two targets' commits. A fixed
		// delay after the start missed the run on a quiet machine, where a
		// part takes well under a second.
		deadline := time.Now().Add(30 * time.Second)
		for e.txn(bronzeTable) <= prev && time.Now().Before(deadline) && !d.exited() {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(time.Duration(rng.IntN(150)) * time.Millisecond)
		if d.exited() {
			t.Fatalf("run %d exited by itself: %v\n%s", i, d.err, d.tail(20))
		}
		d.kill()
		v := e.txn(bronzeTable)
		prev = v
		if data, _ := e.lastDataVersion(); v < data {
			midRun++
		}
		progress = append(progress, v)
	}
	t.Logf("bronze txn after each kill: %v (%d kills with raw versions left to derive)", progress, midRun)
	if progress[len(progress)-1] <= 0 || midRun == 0 {
		t.Fatalf("the kills did not hit a run: txns %v", progress)
	}
	e.waitRaw(n, 2*time.Minute)
	d := e.deserialize(args...)
	rawVersion := e.waitDerived(d, 2*time.Minute)
	valid, dead := e.checkExactlyOnce(positions(recs), rawVersion)
	if want := n / 10 * 8; valid != want || dead != n-want {
		t.Errorf("%d bronze rows and %d dead letters, want %d and %d", valid, dead, want, n-want)
	}
	t.Logf("raw version %d: %d bronze rows, %d dead letters after ten kill -9", rawVersion, valid, dead)
}

// TestRawCompaction: an OPTIMIZE of raw between deserialize's batches is
// read as no new rows, by the running process, by a run-once that finds it
// as raw's last version, and by a process started after it.
func TestRawCompaction(t *testing.T) {
	e := newEnv(t)
	first := generated(e, 0, 3000)
	produce(t, first)
	e.ingest("--batch-max-rows", "200")
	e.waitRaw(len(first), time.Minute)
	d := e.deserialize()
	api := e.pipeline(d)
	before := e.waitDerived(d, time.Minute)

	resp, err := e.client.Optimize(context.Background(), &catalogv1.OptimizeRequest{Table: rawTable})
	if err != nil {
		t.Fatalf("Optimize raw: %v", err)
	}
	if !resp.GetCommitted() || resp.GetFilesRemoved() < 2 {
		t.Fatalf("Optimize raw compacted nothing: %v", resp)
	}
	t.Logf("raw v%d: OPTIMIZE replaced %d files by %d", resp.GetVersion(), resp.GetFilesRemoved(), resp.GetFilesAdded())
	// The running process moves past the compaction: no lag, nothing read.
	deadline := time.Now().Add(30 * time.Second)
	for {
		ds := status(t, api).GetDeserialize()
		if ds.GetRawVersion() >= resp.GetVersion() {
			if ds.GetRowsValid()+ds.GetRowsDeadLettered() != int64(len(first)) {
				t.Errorf("status counts %d valid + %d dead-lettered rows, %d produced", ds.GetRowsValid(), ds.GetRowsDeadLettered(), len(first))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status raw_version %d, the compaction is v%d", ds.GetRawVersion(), resp.GetVersion())
		}
		time.Sleep(200 * time.Millisecond)
	}
	all := append([]*record{}, first...)
	e.checkExactlyOnce(positions(all), e.waitDerived(d, time.Minute))

	// A run-once whose last raw version is the compaction ends.
	d.kill()
	if v := e.tableVersion(rawTable); v != resp.GetVersion() {
		t.Fatalf("raw at v%d, not at the compaction v%d", v, resp.GetVersion())
	}
	once := e.deserialize("--run-once")
	select {
	case <-once.done:
		if once.err != nil {
			t.Fatalf("run-once: %v\n%s", once.err, once.tail(20))
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("run-once did not end within 60s with a compaction as raw's last version\n%s", once.tail(20))
	}
	e.checkExactlyOnce(positions(all), before)

	// New rows after the compaction, with a fresh process.
	second := generated(e, 3000, 1000)
	produce(t, second)
	all = append(all, second...)
	e.waitRaw(len(all), time.Minute)
	d = e.deserialize()
	valid, dead := e.checkExactlyOnce(positions(all), e.waitDerived(d, time.Minute))
	if valid+dead != len(all) {
		t.Errorf("%d rows in the targets, %d produced", valid+dead, len(all))
	}
	t.Logf("raw v%d before the compaction; %d rows once each after it", before, valid+dead)
}
