package service

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"
)

// TestReadAPI covers CreateTable's idempotence, GetTable, ListTables,
// GetSnapshot at a version and a time, GetTransactionVersion, GetChanges,
// History, Checkpoint and Vacuum.
func TestReadAPI(t *testing.T) {
	wh := t.TempDir()
	tc := startCatalog(t, wh, "--auto-maintenance=false", "--min-vacuum-retention", "0s")
	c := tc.client
	tbl := createTable(t, c, "raw.a", map[string]string{"delta.logRetentionDuration": "interval 30 days"})
	again, err := c.CreateTable(ctxT(t), &catalogv1.CreateTableRequest{Name: "raw.a", Columns: []*catalogv1.Column{
		{Name: "id", Type: "long"}, {Name: "name", Type: "string"}, {Name: "day", Type: "date"},
	}, PartitionColumns: []string{"day"}, Properties: map[string]string{"delta.logRetentionDuration": "interval 30 days"}})
	if err != nil || again.GetCreated() || again.GetTable().GetId() != tbl.GetId() {
		t.Fatalf("identical CreateTable = %v, %v; want the same table, created=false", again, err)
	}
	if want := "file://" + filepath.ToSlash(filepath.Join(wh, "raw", "a")) + "/"; tbl.GetLocation() != want {
		t.Fatalf("location %q, want %q", tbl.GetLocation(), want)
	}
	createTable(t, c, "gold.b", nil)
	// A folder that is not a table is not listed.
	if err := os.MkdirAll(filepath.Join(wh, "raw", "not_a_table"), 0o755); err != nil {
		t.Fatal(err)
	}
	list, err := c.ListTables(ctxT(t), &catalogv1.ListTablesRequest{})
	if err != nil || len(list.GetTables()) != 2 || list.GetTables()[0].GetName() != "gold.b" || list.GetTables()[1].GetName() != "raw.a" {
		t.Fatalf("ListTables = %v, %v", list, err)
	}
	list, err = c.ListTables(ctxT(t), &catalogv1.ListTablesRequest{Schema: "raw"})
	if err != nil || len(list.GetTables()) != 1 {
		t.Fatalf("ListTables(raw) = %v, %v", list, err)
	}

	var times []time.Time
	for i := range 3 {
		add := putFile(t, wh, "raw.a", "day=2024-02-01/f"+string(rune('0'+i))+".parquet", 10)
		resp, err := c.Commit(ctxT(t), &catalogv1.CommitRequest{Table: "raw.a", ReadVersion: int64(i), BlindAppend: true,
			Adds: []*catalogv1.AddFile{add}, Txns: []*catalogv1.Txn{{AppId: "app", Version: int64(10 + i)}},
			OperationMetrics: map[string]string{"numOutputRows": "1"}})
		if err != nil {
			t.Fatal(err)
		}
		times = append(times, resp.GetCommitTime().AsTime())
		time.Sleep(20 * time.Millisecond)
	}
	tv, err := c.GetTransactionVersion(ctxT(t), &catalogv1.GetTransactionVersionRequest{Table: "raw.a", AppId: "app"})
	if err != nil || !tv.GetFound() || tv.GetVersion() != 12 || tv.GetTableVersion() != 3 {
		t.Fatalf("GetTransactionVersion = %v, %v", tv, err)
	}
	tv, err = c.GetTransactionVersion(ctxT(t), &catalogv1.GetTransactionVersionRequest{Table: "raw.a", AppId: "other"})
	if err != nil || tv.GetFound() {
		t.Fatalf("GetTransactionVersion(other) = %v, %v", tv, err)
	}
	at2, err := c.GetSnapshot(ctxT(t), &catalogv1.GetSnapshotRequest{Table: "raw.a", At: &catalogv1.GetSnapshotRequest_Version{Version: 2}})
	if err != nil || at2.GetVersion() != 2 || len(at2.GetFiles()) != 2 || at2.GetTxnVersions()["app"] != 11 {
		t.Fatalf("GetSnapshot(version 2) = %v, %v", at2, err)
	}
	// The log's times are the commit files' modification times, which
	// follow the acknowledged commit times within a few milliseconds.
	atTime, err := c.GetSnapshot(ctxT(t), &catalogv1.GetSnapshotRequest{Table: "raw.a", At: &catalogv1.GetSnapshotRequest_Timestamp{Timestamp: timestamppb.New(times[1].Add(10 * time.Millisecond))}})
	if err != nil || atTime.GetVersion() != 2 {
		t.Fatalf("GetSnapshot(time of version 2) = version %d, %v", atTime.GetVersion(), err)
	}
	latest, err := c.GetSnapshot(ctxT(t), &catalogv1.GetSnapshotRequest{Table: "raw.a"})
	if err != nil || latest.GetVersion() != 3 || len(latest.GetFiles()) != 3 || latest.GetFiles()[0].GetStats() == "" ||
		latest.GetFiles()[0].GetPartitionValues()["day"] != "2024-02-01" || latest.GetProtocol().GetMinReaderVersion() != 1 {
		t.Fatalf("GetSnapshot(latest) = %v, %v", latest, err)
	}
	chg, err := c.GetChanges(ctxT(t), &catalogv1.GetChangesRequest{Table: "raw.a", StartVersion: 1})
	if err != nil || len(chg.GetChanges()) != 3 || chg.GetLatestVersion() != 3 || len(chg.GetChanges()[0].GetAdds()) != 1 ||
		chg.GetChanges()[2].GetTxns()[0].GetVersion() != 12 {
		t.Fatalf("GetChanges = %v, %v", chg, err)
	}
	hist, err := c.History(ctxT(t), &catalogv1.HistoryRequest{Table: "raw.a", Limit: 2})
	if err != nil || len(hist.GetEntries()) != 2 || hist.GetEntries()[0].GetVersion() != 3 ||
		hist.GetEntries()[0].GetOperation() != "WRITE" || !hist.GetEntries()[0].GetIsBlindAppend() ||
		hist.GetEntries()[0].GetOperationMetrics()["numFiles"] != "1" || hist.GetEntries()[0].GetOperationMetrics()["numOutputRows"] != "1" {
		t.Fatalf("History = %v, %v", hist, err)
	}
	cp, err := c.Checkpoint(ctxT(t), &catalogv1.CheckpointRequest{Table: "raw.a", CleanupLog: true})
	if err != nil || cp.GetVersion() != 3 {
		t.Fatalf("Checkpoint = %v, %v", cp, err)
	}
	if _, err := os.Stat(filepath.Join(wh, "raw", "a", "_delta_log", "00000000000000000003.checkpoint.parquet")); err != nil {
		t.Fatal(err)
	}

	// Vacuum: remove a file, then vacuum with zero retention.
	if _, err := c.Commit(ctxT(t), &catalogv1.CommitRequest{Table: "raw.a", ReadVersion: 3, Operation: "DELETE",
		Removes: []*catalogv1.RemoveFile{{Path: "day=2024-02-01/f0.parquet", DataChange: true}}}); err != nil {
		t.Fatal(err)
	}
	orphan := putFile(t, wh, "raw.a", "day=2024-02-01/orphan.parquet", 3)
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(filepath.Join(wh, "raw", "a", "day=2024-02-01", "orphan.parquet"), old, old); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"f0.parquet", "f1.parquet"} {
		_ = os.Chtimes(filepath.Join(wh, "raw", "a", "day=2024-02-01", f), old, old)
	}
	dry, err := c.Vacuum(ctxT(t), &catalogv1.VacuumRequest{Table: "raw.a", Retention: durationpb.New(0), DryRun: true})
	if err != nil || dry.GetFilesDeleted() != 2 {
		t.Fatalf("Vacuum dry run = %v, %v; want f0 and the orphan", dry, err)
	}
	if _, err := os.Stat(filepath.Join(wh, "raw", "a", orphan.GetPath())); err != nil {
		t.Fatalf("dry run deleted: %v", err)
	}
	vac, err := c.Vacuum(ctxT(t), &catalogv1.VacuumRequest{Table: "raw.a", Retention: durationpb.New(0)})
	if err != nil || vac.GetFilesDeleted() != 2 || vac.GetBytesDeleted() != 13 || !strings.Contains(strings.Join(vac.GetFiles(), ","), "orphan") {
		t.Fatalf("Vacuum = %v, %v", vac, err)
	}
	if _, err := os.Stat(filepath.Join(wh, "raw", "a", "day=2024-02-01", "f1.parquet")); err != nil {
		t.Fatalf("vacuum deleted a live file: %v", err)
	}
	scan, err := c.Scan(ctxT(t), &catalogv1.ScanRequest{Table: "raw.a", At: &catalogv1.ScanRequest_Version{Version: 99}})
	if err == nil {
		_, err = scan.Recv()
	}
	if code(err) != codes.NotFound {
		t.Fatalf("Scan at a missing version = %v, want NotFound", err)
	}
}

// TestAutoMaintenance: with maintenance on, checkpoints follow
// delta.checkpointInterval (coalesced, off the commit path) and a partition
// with many small files is compacted.
func TestAutoMaintenance(t *testing.T) {
	wh := t.TempDir()
	tc := startCatalog(t, wh, "--maintenance-interval", "200ms")
	c := tc.client
	const table = "raw.auto"
	schema := createReadings(t, c, table, map[string]string{"delta.checkpointInterval": "5", "plantlake.autoOptimize.minFiles": "6"})
	var all []reading
	for i := range 12 {
		rows := makeReadings("2024-06-01", i*10, 10)
		all = append(all, rows...)
		add := writeReadings(t, wh, table, schema, rows)
		snap, err := c.GetSnapshot(ctxT(t), &catalogv1.GetSnapshotRequest{Table: table, OmitStats: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Commit(ctxT(t), &catalogv1.CommitRequest{Table: table, ReadVersion: snap.GetVersion(), BlindAppend: true, Adds: []*catalogv1.AddFile{add}}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		hist, err := c.History(ctxT(t), &catalogv1.HistoryRequest{Table: table})
		if err != nil {
			t.Fatal(err)
		}
		optimized := false
		for _, e := range hist.GetEntries() {
			optimized = optimized || e.GetOperation() == "OPTIMIZE"
		}
		_, cpErr := os.Stat(filepath.Join(wh, "raw", "auto", "_delta_log", "_last_checkpoint"))
		snap, err := c.GetSnapshot(ctxT(t), &catalogv1.GetSnapshotRequest{Table: table, OmitStats: true})
		if err != nil {
			t.Fatal(err)
		}
		// Compaction may have run while commits still came in; it runs
		// again until fewer than minFiles small files are left.
		if optimized && cpErr == nil && len(snap.GetFiles()) < 6 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no automatic compaction (%v), checkpoint (%v), or still %d files", optimized, cpErr, len(snap.GetFiles()))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got, want := scanKeys(t, c, &catalogv1.ScanRequest{Table: table}), keysOf(all); strings.Join(got, ";") != strings.Join(want, ";") {
		t.Fatalf("rows changed by compaction: %d rows, want %d", len(got), len(want))
	}
}
