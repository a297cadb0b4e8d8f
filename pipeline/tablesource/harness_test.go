package tablesource

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"google.golang.org/protobuf/proto"

	"github.com/plantlake/plantlake/delta/datafile"
	"github.com/plantlake/plantlake/delta/storage"
	"github.com/plantlake/plantlake/delta/storage/storeuri"
	"github.com/plantlake/plantlake/devstack"
	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"
)

// kafkaBroker is the Kafka the tests that need events share (started by
// TestMain); each test announces on a topic of its own.
var kafkaBroker *devstack.KafkaBroker

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "tablesource-kafka-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	b, err := devstack.StartKafka(ctx, devstack.KafkaConfig{Dir: dir})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start kafka:", err)
		return 1
	}
	defer b.Stop()
	kafkaBroker = b
	return m.Run()
}

// env is a catalog process with one table of (id long, name string, part
// string) partitioned by part, written through the catalog's Commit RPC.
type env struct {
	t       testing.TB
	cat     *devstack.CatalogProcess
	client  catalogv1.CatalogServiceClient
	table   string
	store   storage.Store
	topic   string // events topic, "" when the catalog does not announce
	nextID  int64
	written map[int64]int64 // id -> version that wrote it
}

// newEnv starts a catalog (announcing on a fresh topic of the shared Kafka
// when announce is set) and creates the table.
func newEnv(t testing.TB, announce bool) *env {
	t.Helper()
	cfg := devstack.CatalogConfig{Args: []string{"--auto-maintenance=false", "--min-vacuum-retention", "0s", "--max-group-commit", "1"}}
	e := &env{t: t, table: "silver.followed", written: map[int64]int64{}}
	if announce {
		e.topic = "table-commits-" + strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
		kafkaBroker.CreateTopic(t, e.topic, 2)
		cfg.Brokers = kafkaBroker.Brokers()
		cfg.Args = append(cfg.Args, "--commit-topic", e.topic)
	}
	e.cat = devstack.Catalog(t, cfg)
	e.client = catalogv1.NewCatalogServiceClient(e.cat.Conn(t))
	resp, err := e.client.CreateTable(e.ctx(), &catalogv1.CreateTableRequest{
		Name: e.table,
		Columns: []*catalogv1.Column{
			{Name: "id", Type: "long"}, {Name: "name", Type: "string"}, {Name: "part", Type: "string"},
		},
		PartitionColumns: []string{"part"},
	})
	if err != nil {
		t.Fatalf("CreateTable: %v", err)
	}
	e.store, err = storeuri.Open(e.ctx(), resp.GetTable().GetLocation())
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	e.t.Cleanup(cancel)
	return ctx
}

// follower returns a follower of the table, running its event listener
// until the test ends when brokers are given.
func (e *env) follower(cfg Config) *Follower {
	e.t.Helper()
	cfg.Table = e.table
	f, err := New(cfg, e.client, slog.New(slog.NewTextHandler(testWriter{e.t}, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	e.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("Run: %v", err)
		}
	})
	return f
}

// waitListening waits until the follower's consumer is assigned.
func waitListening(t *testing.T, f *Follower) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !f.Stats().Listening {
		if time.Now().After(deadline) {
			t.Fatal("follower never listened to the events topic")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// write commits one version with one file of rows per entry of rowsPerFile
// (partitions "a b", "c%d", ... so paths need escaping) and returns it.
func (e *env) write(rowsPerFile ...int) int64 {
	e.t.Helper()
	req := &catalogv1.CommitRequest{Table: e.table, Operation: "WRITE", BlindAppend: true}
	var ids []int64
	for i, n := range rowsPerFile {
		part := []string{"a b", "c%d", "e=f"}[i%3]
		rec := e.record(n, part)
		add, err := datafile.Write(e.ctx(), e.store, datafile.Options{
			PartitionColumns: []string{"part"}, PartitionValues: map[string]string{"part": part},
		}, rec)
		for j := range n {
			ids = append(ids, rec.Column(0).(*array.Int64).Value(j))
		}
		rec.Release()
		if err != nil {
			e.t.Fatalf("write data file: %v", err)
		}
		req.Adds = append(req.Adds, &catalogv1.AddFile{
			Path: add.Path, PartitionValues: add.PartitionValues, Size: add.Size,
			ModificationTime: add.ModificationTime, DataChange: true, Stats: add.Stats,
		})
	}
	v := e.commit(req)
	for _, id := range ids {
		e.written[id] = v
	}
	return v
}

// commit sends req at the table's latest version and returns the new version.
func (e *env) commit(req *catalogv1.CommitRequest) int64 {
	e.t.Helper()
	t, err := e.client.GetTable(e.ctx(), &catalogv1.GetTableRequest{Name: e.table})
	if err != nil {
		e.t.Fatalf("GetTable: %v", err)
	}
	req.ReadVersion = t.GetTable().GetVersion()
	resp, err := e.client.Commit(e.ctx(), req)
	if err != nil {
		e.t.Fatalf("Commit: %v", err)
	}
	return resp.GetVersion()
}

// txnOnly commits a version with only a txn action.
func (e *env) txnOnly(appID string, pos int64) int64 {
	e.t.Helper()
	return e.commit(&catalogv1.CommitRequest{
		Table: e.table, Operation: "WRITE", Txns: []*catalogv1.Txn{{AppId: appID, Version: pos}}, ReadAppIds: []string{appID},
	})
}

// optimize compacts the table and returns the version it committed.
func (e *env) optimize() int64 {
	e.t.Helper()
	resp, err := e.client.Optimize(e.ctx(), &catalogv1.OptimizeRequest{Table: e.table})
	if err != nil || !resp.GetCommitted() {
		e.t.Fatalf("Optimize: %v %v", resp, err)
	}
	return resp.GetVersion()
}

// record builds n rows with fresh ids in partition part.
func (e *env) record(n int, part string) arrow.RecordBatch {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "name", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "part", Type: arrow.BinaryTypes.String, Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	for range n {
		e.nextID++
		b.Field(0).(*array.Int64Builder).Append(e.nextID)
		b.Field(1).(*array.StringBuilder).Append(fmt.Sprintf("row-%d", e.nextID))
		b.Field(2).(*array.StringBuilder).Append(part)
	}
	return b.NewRecordBatch()
}

// readRows reads a batch and returns id -> version as Read reported it,
// failing on a row read twice or a name that does not belong to its id.
func readRows(t *testing.T, b Batch, into map[int64]int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := b.Read(ctx, nil, func(version int64, rec arrow.RecordBatch) error {
		if version < b.FromVersion || version > b.ToVersion {
			return fmt.Errorf("version %d outside the batch %d..%d", version, b.FromVersion, b.ToVersion)
		}
		if got := rec.Schema().Field(2).Name; got != "part" {
			return fmt.Errorf("third column %q, want part", got)
		}
		ids := rec.Column(0).(*array.Int64)
		names := rec.Column(1).(*array.String)
		parts := rec.Column(2).(*array.String)
		for i := range int(rec.NumRows()) {
			id := ids.Value(i)
			if prev, ok := into[id]; ok {
				return fmt.Errorf("id %d read twice (versions %d and %d)", id, prev, version)
			}
			if names.Value(i) != fmt.Sprintf("row-%d", id) || !slices.Contains([]string{"a b", "c%d", "e=f"}, parts.Value(i)) {
				return fmt.Errorf("row %d: name %q part %q", id, names.Value(i), parts.Value(i))
			}
			into[id] = version
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Read %d..%d: %v", b.FromVersion, b.ToVersion, err)
	}
}

// produce sends fake TableCommitEvents to topic.
func produce(t *testing.T, topic string, evs ...*catalogv1.TableCommitEvent) {
	t.Helper()
	p, err := kafka.NewProducer(&kafka.ConfigMap{
		"bootstrap.servers": kafkaBroker.Brokers(), "acks": "all",
		"go.delivery.reports": false, // Flush counts undrained reports as outstanding
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, ev := range evs {
		v, err := proto.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Produce(&kafka.Message{
			TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: kafka.PartitionAny},
			Key:            []byte(ev.GetTable()), Value: v,
		}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := p.Flush(30_000); n != 0 {
		t.Fatalf("%d fake events not delivered", n)
	}
}

// testWriter sends the follower's logs to the test log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
