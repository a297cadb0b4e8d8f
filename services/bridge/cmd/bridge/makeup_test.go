package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/plantlake/plantlake/devstack"
	"github.com/plantlake/plantlake/services/bridge/internal/bridge"
)

// repoRoot is the folder of go.work.
func repoRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOWORK").Output()
	work := strings.TrimSpace(string(out))
	if err != nil || work == "" || work == "off" {
		t.Fatalf("no go.work (%v): the test needs the workspace", err)
	}
	return filepath.Dir(work)
}

// consumeTopic reads every partition of topic from the start until want
// records arrived or the timeout passed.
func consumeTopic(t *testing.T, brokers, topic string, want int, timeout time.Duration) []*kafka.Message {
	t.Helper()
	c, err := kafka.NewConsumer(&kafka.ConfigMap{
		"bootstrap.servers": brokers, "group.id": "consume-" + topic + strconv.FormatInt(time.Now().UnixNano(), 10),
		"auto.offset.reset": "earliest", "enable.auto.commit": false, "log_level": 0,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Subscribe(topic, nil); err != nil {
		t.Fatal(err)
	}
	var got []*kafka.Message
	deadline := time.Now().Add(timeout)
	for len(got) < want && time.Now().Before(deadline) {
		m, err := c.ReadMessage(500 * time.Millisecond)
		if err == nil {
			got = append(got, m)
		}
	}
	return got
}

// TestMakeUpPassesPayloadAtLimit starts the brokers as `make up` does
// (plantlake-dev up, which creates the pipeline topics) and the bridge with
// up.sh's flags and the default --max-payload-bytes, then publishes a
// payload of exactly that size: it must reach the raw topic whole, and
// nothing may go to the oversized topic. Before the topics were created
// through kafkatopic, they had the broker's default max.message.bytes and
// the payload was cut and diverted. The catalog and ingest then carry it
// into the raw table, where delta-rs reads it byte for byte.
func TestMakeUpPassesPayloadAtLimit(t *testing.T) {
	root := repoRoot(t)
	tmp := t.TempDir()
	dev := filepath.Join(tmp, "plantlake-dev")
	build := exec.Command("go", "build", "-o", dev, "./devstack/cmd/plantlake-dev")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build plantlake-dev: %v\n%s", err, out)
	}
	kport, cport, mport := freePort(t), freePort(t), freePort(t)
	stackFlags := []string{"--dir", filepath.Join(tmp, "stack"),
		"--kafka-port", strconv.Itoa(kport), "--kafka-controller-port", strconv.Itoa(cport),
		"--mqtt-port", strconv.Itoa(mport), "--kafka-heap-mb", "512"}
	devCmd := func(name string) ([]byte, error) {
		return exec.Command(dev, append([]string{name}, stackFlags...)...).CombinedOutput()
	}
	t.Cleanup(func() {
		if out, err := devCmd("down"); err != nil {
			t.Errorf("plantlake-dev down: %v\n%s", err, out)
		}
	})
	if out, err := devCmd("up"); err != nil {
		t.Fatalf("plantlake-dev up: %v\n%s", err, out)
	}
	brokers := "127.0.0.1:" + strconv.Itoa(kport)
	mqttURL := "tcp://127.0.0.1:" + strconv.Itoa(mport)

	grpcAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	startBridge(t, buildBridge(t),
		"--mqtt-client-id=plantlake-bridge-1", // as scripts/up.sh starts it
		"--grpc-addr="+grpcAddr, "--metrics-addr=127.0.0.1:"+strconv.Itoa(freePort(t)),
		"--mqtt-broker="+mqttURL, "--kafka-brokers="+brokers)
	waitUntil(t, 60*time.Second, "bridge SERVING", dial(t, grpcAddr).serving)

	payload := make([]byte, bridge.DefaultMaxPayloadBytes)
	_, _ = rand.Read(payload)
	const topic = "plant/line3/press01/waveform"
	publishMQTT(t, mqttURL, topic, payload, false)

	got := consumeTopic(t, brokers, devstack.TopicRaw, 1, 60*time.Second)
	if len(got) != 1 {
		oversized := consumeTopic(t, brokers, devstack.TopicOversized, 1, 5*time.Second)
		t.Fatalf("raw topic has %d records, want 1; the oversized topic has %d", len(got), len(oversized))
	}
	if !bytes.Equal(got[0].Value, payload) || string(got[0].Key) != topic {
		t.Errorf("record key %q, value of %d bytes (equal: %v); want the %d-byte payload whole under %q",
			got[0].Key, len(got[0].Value), bytes.Equal(got[0].Value, payload), len(payload), topic)
	}
	if n := len(consumeTopic(t, brokers, devstack.TopicOversized, 1, 3*time.Second)); n != 0 {
		t.Errorf("the oversized topic has %d records, want none", n)
	}

	// On into raw.plant_sensor_readings: the catalog and ingest as make up
	// runs them (ingest --run-once), then delta-rs reads the row.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	warehouse := filepath.Join(tmp, "warehouse")
	cat, err := devstack.StartCatalog(ctx, devstack.CatalogConfig{Warehouse: warehouse, Brokers: brokers})
	if err != nil {
		t.Fatalf("start catalog: %v", err)
	}
	defer func() { _ = cat.Stop(10 * time.Second) }()
	ingestBin := filepath.Join(tmp, "ingest")
	build = exec.Command("go", "build", "-o", ingestBin, "./services/ingest/cmd/ingest")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build ingest: %v\n%s", err, out)
	}
	ingest := exec.CommandContext(ctx, ingestBin, "--run-once", "--kafka-brokers="+brokers, "--catalog-addr="+cat.Addr(),
		"--grpc-addr=127.0.0.1:0", "--metrics-addr=")
	if out, err := ingest.CombinedOutput(); err != nil {
		t.Fatalf("ingest --run-once: %v\n%s", err, tail(out, 4000))
	}
	read := exec.Command(devstack.Python(t), "-c", `
import hashlib, sys
from deltalake import DeltaTable
t = DeltaTable(sys.argv[1]).to_pyarrow_table(columns=["kafka_key", "raw_payload"]).to_pylist()
for r in t:
    print(r["kafka_key"], len(r["raw_payload"] or b""), hashlib.sha256(r["raw_payload"] or b"").hexdigest())
`, filepath.Join(warehouse, "raw", "plant_sensor_readings"))
	out, err := read.Output()
	if err != nil {
		t.Fatalf("delta-rs read of the raw table: %v", err)
	}
	sum := sha256.Sum256(payload)
	want := fmt.Sprintf("%s %d %s", topic, len(payload), hex.EncodeToString(sum[:]))
	row := strings.TrimSpace(string(out))
	if row != want {
		t.Errorf("raw table rows (key, payload length, sha256):\n%s\nwant exactly:\n%s", row, want)
	}
	t.Logf("raw table, read by delta-rs: %s", row)
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
