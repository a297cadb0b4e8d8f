package overview

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/plantlake/plantlake/devstack"
	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"
	pipelinev1 "github.com/plantlake/plantlake/proto/plantlake/pipeline/v1"
	"github.com/plantlake/plantlake/servicekit/pipelinesvc"
)

// hopController is a hop's control surface with a fixed status, served by
// the kit's real PipelineService handlers.
type hopController struct{ status *pipelinev1.Status }

func (h hopController) Status() *pipelinev1.Status { return h.status }
func (hopController) Pause(context.Context) error  { return nil }
func (hopController) Resume(context.Context) error { return nil }
func (hopController) TriggerCommit(context.Context) (pipelinesvc.Committed, error) {
	return pipelinesvc.Committed{}, nil
}

// serveHop serves PipelineService on a free loopback port.
func serveHop(t *testing.T, st *pipelinev1.Status) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	pipelinev1.RegisterPipelineServiceServer(s, pipelinesvc.New(hopController{st}, slog.New(slog.DiscardHandler)))
	done := make(chan error, 1)
	go func() { done <- s.Serve(lis) }()
	t.Cleanup(func() {
		s.Stop()
		<-done
	})
	return lis.Addr().String()
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func TestOverview(t *testing.T) {
	// No maintenance: an OPTIMIZE of the two files below would be a newer version.
	cat := devstack.Catalog(t, devstack.CatalogConfig{Args: []string{"--auto-maintenance=false"}})
	catConn := cat.Conn(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	ingestAddr := serveHop(t, &pipelinev1.Status{Service: "ingest", State: pipelinev1.State_STATE_RUNNING,
		Position: "plant_sensor_readings_raw[0]=41", Lag: 7,
		Rates:         &pipelinev1.Rates{ReceivedPerSecond: 812.5, WrittenPerSecond: 800.25},
		NewestDataAge: durationpb.New(1500 * time.Millisecond)})
	mergeAddr := serveHop(t, &pipelinev1.Status{Service: "merge", State: pipelinev1.State_STATE_FAILED,
		Position: "bronze@v12", Lag: 3, LastError: "catalog: unavailable\nretrying", LastErrorTime: timestamppb.New(time.Now().Add(-90 * time.Second))})
	deserializeAddr := serveHop(t, &pipelinev1.Status{Service: "deserialize", State: pipelinev1.State_STATE_PAUSED,
		Position: "bronze@v9", PauseReason: "rules change\non line 3", PausedSince: timestamppb.New(time.Now().Add(-125 * time.Second)),
		LastError: "catalog: unavailable", LastErrorTime: timestamppb.New(time.Now().Add(-10 * time.Minute))})
	downAddr := closedAddr(t)
	hops := []Hop{
		{Name: "bridge", Addr: downAddr, Conn: dial(t, downAddr)},
		{Name: "ingest", Addr: ingestAddr, Conn: dial(t, ingestAddr)},
		{Name: "deserialize", Addr: deserializeAddr, Conn: dial(t, deserializeAddr)},
		{Name: "merge", Addr: mergeAddr, Conn: dial(t, mergeAddr)},
	}

	// Before merge ran: no gold table.
	rep := Collect(ctx, hops, catConn, cat.Addr(), 3*time.Second)
	var out bytes.Buffer
	if err := rep.Write(&out); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", out.String())
	if rep.Freshness.Exists || rep.Freshness.Err != nil {
		t.Fatalf("freshness without gold: %+v", rep.Freshness)
	}
	if rep.Down() != 1 {
		t.Errorf("Down() = %d, want 1 (the bridge)", rep.Down())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	wantLines := []struct {
		prefix string
		fields []string
	}{
		{"HOP", []string{"STATE", "POSITION", "LAG", "NEWEST DATA AGE"}},
		{"bridge", []string{downAddr, "DOWN", "connection refused"}},
		{"ingest", []string{ingestAddr, "RUNNING", "plant_sensor_readings_raw[0]=41", " 7 ", "812.5", "800.2", "1.5s"}},
		{"deserialize", []string{deserializeAddr, "PAUSED", "bronze@v9", "paused 2m", "s ago: rules change on line 3; 10m0s ago: catalog: unavailable"}},
		{"merge", []string{mergeAddr, "FAILED", "bronze@v12", " 3 ", "1m3", "s ago: catalog: unavailable retrying"}},
		{"gold:", []string{"gold.plant_sensor_readings does not exist yet"}},
	}
	if len(lines) != len(wantLines) {
		t.Fatalf("%d lines, want %d", len(lines), len(wantLines))
	}
	for i, w := range wantLines {
		if !strings.HasPrefix(lines[i], w.prefix) {
			t.Errorf("line %d %q does not start with %q", i, lines[i], w.prefix)
		}
		for _, f := range w.fields {
			if !strings.Contains(lines[i], f) {
				t.Errorf("line %d %q lacks %q", i, lines[i], f)
			}
		}
	}

	// A gold table with two files whose stats say their newest bridge_ts.
	cc := catalogv1.NewCatalogServiceClient(catConn)
	if _, err := cc.CreateTable(ctx, &catalogv1.CreateTableRequest{Name: GoldTable, Columns: []*catalogv1.Column{
		{Name: "sensor_id", Type: "string"}, {Name: "value", Type: "double"}, {Name: "bridge_ts", Type: "timestamp"},
	}}); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(cat.Warehouse(), "gold", "plant_sensor_readings")
	newest := time.Now().Add(-2 * time.Second).UTC().Truncate(time.Millisecond)
	var adds []*catalogv1.AddFile
	for i, bts := range []time.Time{newest.Add(-time.Minute), newest} {
		name := fmt.Sprintf("part-%d.parquet", i)
		data := bytes.Repeat([]byte{'x'}, 100+i)
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
		adds = append(adds, &catalogv1.AddFile{Path: name, Size: int64(len(data)), DataChange: true,
			ModificationTime: time.Now().UnixMilli(),
			Stats: fmt.Sprintf(`{"numRecords":%d,"minValues":{"bridge_ts":"%s"},"maxValues":{"bridge_ts":"%s"},"nullCount":{"bridge_ts":0}}`,
				10*(i+1), bts.Add(-time.Second).Format("2006-01-02T15:04:05.000Z"), bts.Format("2006-01-02T15:04:05.000Z"))})
	}
	committed, err := cc.Commit(ctx, &catalogv1.CommitRequest{Table: GoldTable, ReadVersion: 0, Operation: "WRITE", Adds: adds, BlindAppend: true})
	if err != nil {
		t.Fatal(err)
	}

	rep = Collect(ctx, hops, catConn, cat.Addr(), 3*time.Second)
	f := rep.Freshness
	if !f.Exists || f.Err != nil || f.Version != committed.GetVersion() || f.Rows != 30 {
		t.Fatalf("freshness %+v, want version %d with 30 rows", f, committed.GetVersion())
	}
	// The commit time is History's (commitInfo's, in milliseconds); the
	// Commit response's is the log file's, which may differ by a clock tick
	// or so either way.
	hist, err := cc.History(ctx, &catalogv1.HistoryRequest{Table: GoldTable, Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	commitTime := hist.GetEntries()[0].GetTimestamp().AsTime()
	if d := committed.GetCommitTime().AsTime().Sub(commitTime); d.Abs() > time.Second {
		t.Errorf("History's commit time %v is %v from the Commit response's", commitTime, d)
	}
	if !f.CommitTime.Equal(commitTime) || !f.NewestBridgeTS.Equal(newest) {
		t.Errorf("commit time %v newest bridge_ts %v, want %v and %v", f.CommitTime, f.NewestBridgeTS, commitTime, newest)
	}
	lag, ok := f.Lag()
	if want := commitTime.Sub(newest); !ok || lag != want {
		t.Errorf("Lag() = %v, %v; want %v", lag, ok, want)
	}
	out.Reset()
	if err := rep.Write(&out); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", out.String())
	if want := fmt.Sprintf("gold: version %d, 30 rows", committed.GetVersion()); !strings.Contains(out.String(), want) ||
		!strings.Contains(out.String(), "freshness "+lag.Round(time.Millisecond).String()) {
		t.Errorf("output lacks %q and the freshness %v", want, lag)
	}

	// The catalog down: gold's line says so; nothing crashes.
	cat.Kill()
	rep = Collect(ctx, hops, catConn, cat.Addr(), 2*time.Second)
	out.Reset()
	if err := rep.Write(&out); err != nil {
		t.Fatal(err)
	}
	if rep.Freshness.Err == nil || !strings.Contains(out.String(), "DOWN or failing") || rep.Down() != 2 {
		t.Errorf("with the catalog killed: %+v\n%s", rep.Freshness, out.String())
	}
}
