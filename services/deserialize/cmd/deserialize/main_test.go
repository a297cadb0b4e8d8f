package main

// The process-level tests of deserialize (issue 12, item 6): Kafka
// records go through a real ingest process into raw, through a real
// deserialize process into bronze and dead letters, and are read back
// with delta-rs. One Kafka serves every test of the binary; each test has
// its own topics, consumer group, commit-events topic and catalog.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/plantlake/plantlake/devstack"
	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"
	pipelinev1 "github.com/plantlake/plantlake/proto/plantlake/pipeline/v1"
)

// Table names and the txn app id of deserialize's targets.
const (
	rawTable      = "raw.plant_sensor_readings"
	bronzeTable   = "bronze.plant_sensor_readings"
	deadTable     = "bronze.plant_sensor_dead_letters"
	appID         = "deserialize/raw.plant_sensor_readings"
	readRowsPy    = "testdata/read_rows.py"
	defaultRegexp = `msg=serving .*grpc=(\S+)`
)

// The binaries under test and the shared Kafka, made once by TestMain.
var (
	catalogBin, ingestBin, deserializeBin string
	broker                                *devstack.KafkaBroker
	testSeq                               atomic.Int64
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "deserialize-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if catalogBin, err = devstack.CatalogBinary(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// Kafka starts while the binaries build.
	kafkaErr := make(chan error, 1)
	go func() {
		var err error
		broker, err = devstack.StartKafka(ctx, devstack.KafkaConfig{Dir: filepath.Join(dir, "kafka")})
		kafkaErr <- err
	}()
	ingestBin = filepath.Join(dir, "ingest")
	deserializeBin = filepath.Join(dir, "deserialize")
	var buildErr error
	for bin, pkg := range map[string]string{ingestBin: "../../../ingest/cmd/ingest", deserializeBin: "."} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg)
		if out, err := cmd.CombinedOutput(); err != nil && buildErr == nil {
			buildErr = fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
		}
	}
	if err := <-kafkaErr; err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer broker.Stop()
	if buildErr != nil {
		fmt.Fprintln(os.Stderr, buildErr)
		return 1
	}
	return m.Run()
}

// env is one test's topics, catalog and processes.
type env struct {
	t        *testing.T
	dir      string
	id       int64
	topicRaw string
	topicBig string
	events   string
	catalog  *devstack.CatalogProcess
	client   catalogv1.CatalogServiceClient
	n        int
}

// newEnv creates the test's topics and starts its catalog.
func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), id: testSeq.Add(1)}
	e.topicRaw = fmt.Sprintf("t%d_readings_raw", e.id)
	e.topicBig = fmt.Sprintf("t%d_readings_oversized", e.id)
	e.events = fmt.Sprintf("t%d_table_commits", e.id)
	broker.CreateTopic(t, e.topicRaw, 3)
	broker.CreateTopic(t, e.topicBig, 1)
	broker.CreateTopic(t, e.events, 1)
	e.catalog = devstack.Catalog(t, devstack.CatalogConfig{Bin: catalogBin, Warehouse: filepath.Join(e.dir, "warehouse"),
		Brokers: broker.Brokers(), Args: []string{"--commit-topic", e.events}, LogPath: filepath.Join(e.dir, "catalog.log")})
	e.client = catalogv1.NewCatalogServiceClient(e.catalog.Conn(t))
	return e
}

// proc is a child process of the test.
type proc struct {
	name, log string
	cmd       *exec.Cmd
	done      chan struct{}
	err       error
}

// start starts bin with args, its output in a log file of the test; the
// process dies with the test binary and is killed at the end of the test.
func (e *env) start(name, bin string, args ...string) *proc {
	e.t.Helper()
	e.n++
	p := &proc{name: fmt.Sprintf("%s-%d", name, e.n), log: filepath.Join(e.dir, fmt.Sprintf("%s-%d.log", name, e.n)), done: make(chan struct{})}
	f, err := os.Create(p.log)
	if err != nil {
		e.t.Fatal(err)
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		f.Close()
		e.t.Fatalf("start %s: %v", p.name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		f.Close()
		close(p.done)
	}()
	e.t.Cleanup(func() {
		p.kill()
		if e.t.Failed() {
			e.t.Logf("%s log tail:\n%s", p.name, p.tail(25))
		}
	})
	return p
}

// kill sends SIGKILL and waits for the exit.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// exited reports whether the process has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// tail returns the last n lines of the process's log.
func (p *proc) tail(n int) string {
	data, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

var servingLine = regexp.MustCompile(defaultRegexp)

// grpcAddr waits until the process logs the address it serves gRPC on.
func (p *proc) grpcAddr(t *testing.T) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if data, err := os.ReadFile(p.log); err == nil {
			if m := servingLine.FindSubmatch(data); m != nil {
				return string(m[1])
			}
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited before serving: %v\n%s", p.name, p.err, p.tail(30))
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("%s did not serve within 60s\n%s", p.name, p.tail(30))
	return ""
}

// ingest starts an ingest process on the test's topics.
func (e *env) ingest(extra ...string) *proc {
	e.t.Helper()
	args := []string{
		"--kafka-brokers", broker.Brokers(), "--catalog-addr", e.catalog.Addr(),
		"--grpc-addr", "127.0.0.1:0", "--metrics-addr", "",
		"--topics", e.topicRaw + "," + e.topicBig, "--group", fmt.Sprintf("t%d-ingest", e.id),
		"--batch-max-age", "200ms", "--kafka-config", "session.timeout.ms=6000",
	}
	return e.start("ingest", ingestBin, append(args, extra...)...)
}

// deserializeArgs are the flags of a deserialize process of the test.
func (e *env) deserializeArgs(extra ...string) []string {
	args := []string{
		"--kafka-brokers", broker.Brokers(), "--catalog-addr", e.catalog.Addr(),
		"--grpc-addr", "127.0.0.1:0", "--metrics-addr", "",
		"--events-topic", e.events, "--poll-interval", "300ms", "--batch-max-age", "100ms",
	}
	return append(args, extra...)
}

// deserialize starts a deserialize process.
func (e *env) deserialize(extra ...string) *proc {
	e.t.Helper()
	return e.start("deserialize", deserializeBin, e.deserializeArgs(extra...)...)
}

// pipeline returns a PipelineService client of a process.
func (e *env) pipeline(p *proc) pipelinev1.PipelineServiceClient {
	e.t.Helper()
	conn, err := grpc.NewClient(p.grpcAddr(e.t), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { conn.Close() })
	return pipelinev1.NewPipelineServiceClient(conn)
}

// status returns the deserialize status of a process.
func status(t *testing.T, c pipelinev1.PipelineServiceClient) *pipelinev1.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.GetStatus(ctx, &pipelinev1.GetStatusRequest{})
	if err != nil {
		t.Fatalf("GetStatus: %v", err)
	}
	return resp.GetStatus()
}

// record is one Kafka record the test produces.
type record struct {
	topic   string
	key     []byte // the MQTT topic
	value   []byte
	headers []kafka.Header
	// Where it landed in Kafka, set by produce.
	partition int32
	offset    int64
	bridgeMS  int64
}

// pos is a Kafka record's position.
type pos struct {
	Topic     string
	Partition int32
	Offset    int64
}

// newRecord is a record shaped like the bridge's: key and mqtt_topic
// header the MQTT topic, bridge_ts_ms now.
func newRecord(topic, mqttTopic string, payload []byte, extra ...kafka.Header) *record {
	ms := time.Now().UnixMilli()
	h := []kafka.Header{
		{Key: "mqtt_topic", Value: []byte(mqttTopic)},
		{Key: "mqtt_qos", Value: []byte("1")},
		{Key: "bridge_ts_ms", Value: strconv.AppendInt(nil, ms, 10)},
	}
	return &record{topic: topic, key: []byte(mqttTopic), value: payload, headers: append(h, extra...), bridgeMS: ms}
}

// produce sends the records with an idempotent producer and records where
// each landed.
func produce(t *testing.T, recs []*record) {
	t.Helper()
	p, err := kafka.NewProducer(&kafka.ConfigMap{"bootstrap.servers": broker.Brokers(), "enable.idempotence": true,
		"linger.ms": 5, "batch.size": 1 << 20, "message.max.bytes": 4 << 20, "go.logs.channel.enable": false})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	delivery := make(chan kafka.Event, 8192)
	errc := make(chan error, 1)
	go func() {
		var first error
		for range recs {
			m := (<-delivery).(*kafka.Message)
			if m.TopicPartition.Error != nil {
				first = cmpErr(first, m.TopicPartition.Error)
				continue
			}
			r := recs[m.Opaque.(int)]
			r.partition, r.offset = m.TopicPartition.Partition, int64(m.TopicPartition.Offset)
		}
		errc <- first
	}()
	for i, r := range recs {
		topic := r.topic
		m := &kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: kafka.PartitionAny},
			Key: r.key, Value: r.value, Headers: r.headers, Opaque: i}
		for {
			err := p.Produce(m, delivery)
			if err == nil {
				break
			}
			var kerr kafka.Error
			if !errors.As(err, &kerr) || kerr.Code() != kafka.ErrQueueFull {
				t.Fatalf("produce: %v", err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("delivery: %v", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("deliveries not acknowledged within 2m")
	}
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// location returns a table's folder.
func (e *env) location(table string) string {
	e.t.Helper()
	resp, err := e.client.GetTable(context.Background(), &catalogv1.GetTableRequest{Name: table})
	if err != nil {
		e.t.Fatalf("GetTable %s: %v", table, err)
	}
	return strings.TrimPrefix(resp.GetTable().GetLocation(), "file://")
}

// tableVersion returns a table's latest version.
func (e *env) tableVersion(table string) int64 {
	e.t.Helper()
	resp, err := e.client.GetTable(context.Background(), &catalogv1.GetTableRequest{Name: table})
	if err != nil {
		e.t.Fatalf("GetTable %s: %v", table, err)
	}
	return resp.GetTable().GetVersion()
}

// txn returns a table's txn version for deserialize's app id (-1: none).
func (e *env) txn(table string) int64 {
	e.t.Helper()
	resp, err := e.client.GetTransactionVersion(context.Background(),
		&catalogv1.GetTransactionVersionRequest{Table: table, AppId: appID})
	if err != nil || !resp.GetFound() {
		return -1
	}
	return resp.GetVersion()
}

// rawRows counts raw's rows through delta-rs.
func (e *env) rawRows() int {
	e.t.Helper()
	return len(e.read(rawTable, "kafka_offset"))
}

// waitRaw waits until raw holds n rows.
func (e *env) waitRaw(n int, timeout time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if _, err := e.client.GetTable(context.Background(), &catalogv1.GetTableRequest{Name: rawTable}); err == nil {
			if got := e.rawRows(); got == n {
				return
			} else if time.Now().After(deadline) {
				e.t.Fatalf("raw holds %d rows after %s, want %d", got, timeout, n)
			}
		} else if time.Now().After(deadline) {
			e.t.Fatalf("no raw table after %s: %v", timeout, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// lastDataVersion returns raw's last version that added rows (a later
// compaction adds none) and its latest version.
func (e *env) lastDataVersion() (data, latest int64) {
	e.t.Helper()
	latest = e.tableVersion(rawTable)
	resp, err := e.client.GetChanges(context.Background(), &catalogv1.GetChangesRequest{Table: rawTable, StartVersion: max(0, latest-100)})
	if err != nil {
		e.t.Fatalf("GetChanges of raw: %v", err)
	}
	data = -1
	for _, ch := range resp.GetChanges() {
		for _, a := range ch.GetAdds() {
			if a.GetDataChange() {
				data = max(data, ch.GetVersion())
			}
		}
	}
	return data, latest
}

// waitDerived waits until raw has rows and both targets' txns reach raw's
// last version that added rows, and returns that version. Callers wait for
// raw to hold what they produced first (waitRaw).
func (e *env) waitDerived(p *proc, timeout time.Duration) int64 {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		raw, _ := e.lastDataVersion()
		dl, br := e.txn(deadTable), e.txn(bronzeTable)
		if raw >= 0 && dl == raw && br == raw {
			return raw
		}
		if p != nil && p.exited() {
			e.t.Fatalf("%s exited: %v\n%s", p.name, p.err, p.tail(30))
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("after %s: raw's last data version %d, dead letters' txn %d, bronze's %d", timeout, raw, dl, br)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// row is one row read back by delta-rs.
type row map[string]any

// read reads a table's columns (all: none named) with delta-rs.
func (e *env) read(table string, columns ...string) []row {
	e.t.Helper()
	python := devstack.Python(e.t)
	script, err := filepath.Abs(readRowsPy)
	if err != nil {
		e.t.Fatal(err)
	}
	cmd := exec.Command(python, append([]string{script, e.location(table)}, columns...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		e.t.Fatalf("delta-rs read of %s: %v\n%s", table, err, stderr.String())
	}
	var res struct {
		Rows []row `json:"rows"`
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.UseNumber()
	if err := dec.Decode(&res); err != nil {
		e.t.Fatalf("delta-rs output of %s: %v", table, err)
	}
	return res.Rows
}

// posOf returns a row's lineage position.
func posOf(r row) pos {
	p, _ := r["kafka_partition"].(json.Number).Int64()
	o, _ := r["kafka_offset"].(json.Number).Int64()
	return pos{Topic: r["kafka_topic"].(string), Partition: int32(p), Offset: o}
}

// num reads a JSON number column as int64 (-1: null).
func num(r row, col string) int64 {
	n, ok := r[col].(json.Number)
	if !ok {
		return -1
	}
	v, err := n.Int64()
	if err != nil {
		return -1
	}
	return v
}

// defaultRules is the path of the documented default rules file, whose
// custom rules (unlike the built-in defaults) the corpus exercises.
func defaultRules(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs("../../rules.default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// writeRules writes a rules file.
func writeRules(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}
