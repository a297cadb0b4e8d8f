package service

import (
	"fmt"
	"testing"
	"time"

	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"
)

// TestKafkaOutage: commits go on while Kafka is down (they do not wait for
// it), and once Kafka is back the catalog announces the latest version of
// every table, including tables that did not commit since.
func TestKafkaOutage(t *testing.T) {
	wh := t.TempDir()
	tc := startCatalog(t, wh, "--auto-maintenance=false", "--kafka-config", "message.timeout.ms=2000")
	c := tc.client
	createTable(t, c, "raw.busy", nil)
	createTable(t, c, "raw.quiet", nil)
	// Both tables' version 0 is announced before the outage.
	consumeEvents(t, tc.topic, 60*time.Second, func(evs []*catalogv1.TableCommitEvent) bool {
		return len(missingVersions(evs, "raw.busy", 0)) == 0 && len(missingVersions(evs, "raw.quiet", 0)) == 0
	})
	if err := kafkaBroker.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped := true
	defer func() {
		if stopped {
			_ = kafkaBroker.Start()
		}
	}()
	start := time.Now()
	var latest int64
	for i := range 10 {
		add := putFile(t, wh, "raw.busy", fmt.Sprintf("day=2024-01-01/o%d.parquet", i), 3)
		resp, err := c.Commit(ctxT(t), &catalogv1.CommitRequest{Table: "raw.busy", ReadVersion: int64(i), BlindAppend: true, Adds: []*catalogv1.AddFile{add}})
		if err != nil {
			t.Fatal(err)
		}
		latest = resp.GetVersion()
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("10 commits took %v with Kafka down: commits wait for Kafka", d)
	}
	time.Sleep(3 * time.Second) // longer than message.timeout.ms: the events are lost
	if err := kafkaBroker.Start(); err != nil {
		t.Fatal(err)
	}
	stopped = false
	// One more commit after the outage; then both tables' latest versions
	// must be announced (the quiet one again).
	add := putFile(t, wh, "raw.busy", "day=2024-01-01/after.parquet", 3)
	resp, err := c.Commit(ctxT(t), &catalogv1.CommitRequest{Table: "raw.busy", ReadVersion: latest, BlindAppend: true, Adds: []*catalogv1.AddFile{add}})
	if err != nil {
		t.Fatal(err)
	}
	latest = resp.GetVersion()
	evs := consumeEvents(t, tc.topic, 90*time.Second, func(evs []*catalogv1.TableCommitEvent) bool {
		quiet := 0
		busy := false
		for _, ev := range evs {
			if ev.GetTable() == "raw.quiet" {
				quiet++
			}
			busy = busy || ev.GetTable() == "raw.busy" && ev.GetVersion() == latest
		}
		return busy && quiet >= 2
	})
	quiet := 0
	busy := false
	for _, ev := range evs {
		if ev.GetTable() == "raw.quiet" {
			quiet++
		}
		busy = busy || ev.GetTable() == "raw.busy" && ev.GetVersion() == latest
	}
	if !busy || quiet < 2 {
		t.Fatalf("after the outage: latest of raw.busy announced %v, raw.quiet announced %d times (want a re-announcement)", busy, quiet)
	}
}
