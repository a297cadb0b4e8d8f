package service

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/plantlake/plantlake/devstack"
	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"
)

// kafkaBroker is the Kafka every test of the package shares (started by
// TestMain); each test announces on a topic of its own.
var (
	kafkaBroker  *devstack.KafkaBroker
	kafkaBrokers string
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "catalog-kafka-")
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
	kafkaBroker, kafkaBrokers = b, b.Brokers()
	return m.Run()
}

// testCatalog is a catalog served in-process on a free port.
type testCatalog struct {
	addr      string
	warehouse string
	topic     string
	client    catalogv1.CatalogServiceClient
	conn      *grpc.ClientConn
	stop      func()
}

// startCatalog serves a catalog on warehouse with extra flags, announcing
// on a topic named after the test.
func startCatalog(t testing.TB, warehouse string, extra ...string) *testCatalog {
	t.Helper()
	topic := "table-commits-" + strings.NewReplacer("/", "-", "_", "-").Replace(strings.ToLower(t.Name()))
	args := append([]string{
		"--warehouse", warehouse, "--kafka-brokers", kafkaBrokers, "--commit-topic", topic,
		"--grpc-addr", "127.0.0.1:0", "--metrics-addr", "", "--kafka-partitions", "2",
		"--log-level", "warn", "--memory-limit", "0", // the limit would hold the whole test process
	}, extra...)
	cfg, err := ParseConfig(args)
	if err != nil {
		t.Fatalf("ParseConfig: %v", err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, Options{GRPCListener: lis, LogOutput: testWriter{t}}) }()
	tc := &testCatalog{addr: lis.Addr().String(), warehouse: warehouse, topic: topic}
	tc.conn = dial(t, tc.addr, tokenOf(extra))
	tc.client = catalogv1.NewCatalogServiceClient(tc.conn)
	var once sync.Once
	tc.stop = func() {
		once.Do(func() {
			tc.conn.Close()
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("catalog Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("catalog did not stop")
			}
		})
	}
	t.Cleanup(tc.stop)
	waitServing(t, tc.conn)
	return tc
}

func tokenOf(args []string) string {
	for i, a := range args {
		if a == "--auth-token" && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// testWriter sends the catalog's logs to the test log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}
func (bearer) RequireTransportSecurity() bool { return false }

func dial(t testing.TB, addr, token string) *grpc.ClientConn {
	t.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer(token)))
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

func waitServing(t testing.TB, conn *grpc.ClientConn) {
	t.Helper()
	hc := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("catalog not serving: %v %v", resp, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// createTable creates a table of (id long, name string, day date) partitioned by day.
func createTable(t testing.TB, c catalogv1.CatalogServiceClient, name string, props map[string]string) *catalogv1.Table {
	t.Helper()
	resp, err := c.CreateTable(ctxT(t), &catalogv1.CreateTableRequest{
		Name: name,
		Columns: []*catalogv1.Column{
			{Name: "id", Type: "long"}, {Name: "name", Type: "string"}, {Name: "day", Type: "date"},
		},
		PartitionColumns: []string{"day"},
		Properties:       props,
	})
	if err != nil {
		t.Fatalf("CreateTable %s: %v", name, err)
	}
	return resp.GetTable()
}

// tableDir is the folder of a table in the warehouse.
func tableDir(warehouse, name string) string {
	schema, table, _ := strings.Cut(name, ".")
	return filepath.Join(warehouse, schema, table)
}

// putFile writes an opaque data file into a table and returns its add
// (commit checks only that the file exists with that size).
func putFile(t testing.TB, warehouse, table, rel string, size int) *catalogv1.AddFile {
	t.Helper()
	p := filepath.Join(tableDir(warehouse, table), filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
	return &catalogv1.AddFile{Path: rel, Size: int64(size), DataChange: true,
		PartitionValues: map[string]string{"day": strings.TrimPrefix(strings.Split(rel, "/")[0], "day=")},
		Stats:           `{"numRecords":1}`}
}

func code(err error) codes.Code { return status.Code(err) }

// consumeEvents reads the topic from the start until done returns true for
// the events seen so far or the timeout passes.
func consumeEvents(t *testing.T, topic string, timeout time.Duration, done func([]*catalogv1.TableCommitEvent) bool) []*catalogv1.TableCommitEvent {
	t.Helper()
	c, err := kafka.NewConsumer(&kafka.ConfigMap{
		"bootstrap.servers": kafkaBrokers, "group.id": "test-" + topic + fmt.Sprint(time.Now().UnixNano()),
		"auto.offset.reset": "earliest", "enable.auto.commit": false,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Subscribe(topic, nil); err != nil {
		t.Fatal(err)
	}
	var evs []*catalogv1.TableCommitEvent
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		msg, err := c.ReadMessage(500 * time.Millisecond)
		var kerr kafka.Error
		if errors.As(err, &kerr) && kerr.Code() == kafka.ErrTimedOut {
			if done(evs) {
				return evs
			}
			continue
		}
		if err != nil {
			t.Logf("consume: %v", err)
			continue
		}
		ev := &catalogv1.TableCommitEvent{}
		if err := proto.Unmarshal(msg.Value, ev); err != nil {
			t.Fatalf("bad event: %v", err)
		}
		if string(msg.Key) != ev.GetTable() {
			t.Fatalf("event key %q for table %q", msg.Key, ev.GetTable())
		}
		evs = append(evs, ev)
		if done(evs) {
			return evs
		}
	}
	return evs
}
