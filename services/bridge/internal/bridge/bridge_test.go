package bridge

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/plantlake/plantlake/devstack"
	"github.com/plantlake/plantlake/servicekit/kafkatrace"
	"github.com/plantlake/plantlake/services/bridge/internal/loadtest"
)

// brokers are the real Kafka and Mosquitto the subtests of TestBridge share;
// each subtest uses its own MQTT topics, Kafka topics and client ids.
type brokers struct {
	kafka *devstack.KafkaBroker
	mqtt  *devstack.MosquittoBroker
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

// config is a bridge configuration for subtest name: filter plant/<name>/#,
// Kafka topics <name>_raw and <name>_oversized.
func (bk brokers) config(name, clientID string) Config {
	cfg := DefaultConfig()
	cfg.MQTTBroker = bk.mqtt.URL()
	cfg.KafkaBrokers = bk.kafka.Brokers()
	cfg.ClientID = clientID
	cfg.TopicFilters = []string{"plant/" + name + "/#"}
	cfg.KafkaTopic = name + "_raw"
	cfg.OversizedTopic = name + "_oversized"
	cfg.KafkaPartitions = 3
	cfg.ShutdownTimeout = 10 * time.Second
	return cfg
}

// run starts a bridge that t.Cleanup stops, and waits until it is healthy.
func run(t *testing.T, cfg Config, opts Options) *Bridge {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t).With("client_id", cfg.ClientID)
	}
	b, err := New(cfg, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("bridge %s: Run: %v", cfg.ClientID, err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("bridge %s did not stop within 30s", cfg.ClientID)
		}
	})
	waitFor(t, 60*time.Second, "bridge healthy", b.Healthy)
	return b
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func topicOf(name string) func(int) string {
	return func(id int) string { return fmt.Sprintf("plant/%s/line%d/press%02d/temperature", name, id%3, id%17) }
}

// publishAndCollect publishes ids [first, first+count) and checks that
// every one arrives in the subtest's raw topic.
func publishAndCollect(t *testing.T, bk brokers, name string, first, count, workers int) loadtest.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	pubErr := make(chan error, 1)
	go func() {
		pubErr <- loadtest.Publish(ctx, loadtest.PublishConfig{
			Broker: bk.mqtt.URL(), ClientPrefix: name + "-pub-" + strconv.Itoa(first),
			Topic: topicOf(name), First: first, Count: count, Workers: workers,
		})
	}()
	res, err := loadtest.Collect(ctx, bk.kafka.Brokers(), name+"_raw", first, count, nil)
	if perr := <-pubErr; perr != nil {
		t.Fatalf("publish: %v", perr)
	}
	if err != nil {
		t.Fatalf("collect: %v", err)
	}
	return res
}

func TestBridge(t *testing.T) {
	bk := brokers{kafka: devstack.Kafka(t), mqtt: devstack.Mosquitto(t)}

	t.Run("every reading arrives", func(t *testing.T) {
		b := run(t, bk.config("all", "bridge-all"), Options{})
		const n = 100_000
		start := time.Now()
		res := publishAndCollect(t, bk, "all", 0, n, 4)
		elapsed := time.Since(start)
		t.Logf("%d readings in %v (%.0f/s), %d duplicates; status %+v",
			n, elapsed.Round(time.Millisecond), n/elapsed.Seconds(), res.Duplicates, b.Status())
		waitFor(t, 10*time.Second, "all acked", func() bool { return b.Status().Acked >= n })
	})

	t.Run("record shape", func(t *testing.T) {
		tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
		rec := tracetest.NewSpanRecorder()
		tp.RegisterSpanProcessor(rec)
		cfg := bk.config("shape", "bridge-shape")
		cfg.TraceSampleRatio = 1
		run(t, cfg, Options{TracerProvider: tp})
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := loadtest.Publish(ctx, loadtest.PublishConfig{
			Broker: bk.mqtt.URL(), ClientPrefix: "shape-pub", Topic: topicOf("shape"), Count: 5,
		}); err != nil {
			t.Fatal(err)
		}
		var msgs []*kafka.Message
		if _, err := loadtest.Collect(ctx, bk.kafka.Brokers(), "shape_raw", 0, 5, func(m *kafka.Message) { msgs = append(msgs, m) }); err != nil {
			t.Fatal(err)
		}
		_ = tp.ForceFlush(ctx)
		spans := make(map[trace.TraceID]bool)
		for _, s := range rec.Ended() {
			spans[s.SpanContext().TraceID()] = true
		}
		for _, m := range msgs {
			id, _, _ := loadtest.ParseID(m.Value)
			wantTopic := topicOf("shape")(id)
			checks := map[string]string{HeaderMQTTTopic: wantTopic, HeaderMQTTQoS: "1", HeaderMQTTRetain: "false", HeaderMQTTDup: "false"}
			for k, want := range checks {
				if got, _ := header(m, k); got != want {
					t.Errorf("record %d: header %s = %q, want %q", id, k, got, want)
				}
			}
			if string(m.Key) != wantTopic {
				t.Errorf("record %d: key %q, want %q", id, m.Key, wantTopic)
			}
			ts, _ := header(m, HeaderBridgeTSMs)
			if ms, err := strconv.ParseInt(ts, 10, 64); err != nil || time.Since(time.UnixMilli(ms)) > time.Minute {
				t.Errorf("record %d: bridge_ts_ms %q is not a recent decimal time", id, ts)
			}
			sc := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), kafkatrace.HeaderCarrier{Headers: &m.Headers}))
			if !sc.IsValid() || !spans[sc.TraceID()] {
				t.Errorf("record %d: traceparent %q does not name an ended span", id, headerOr(m, HeaderTraceparent))
			}
		}
	})

	t.Run("oversized and empty payloads", func(t *testing.T) {
		// The bridge creates big_raw with room for a full-size payload.
		// small_raw exists beforehand with an operator's max.message.bytes
		// set on the topic (the broker's default 1 MiB + 12, which the
		// bridge keeps), so Kafka refuses a full-size payload there: the
		// bridge must divert it to the oversized topic instead of stalling.
		createTopicWithLimit(t, bk.kafka.Brokers(), "small_raw", 1048588)
		cfg := bk.config("big", "bridge-big")
		cfg.Routes = []Route{{Filter: "plant/big/small/#", Topic: "small_raw"}}
		b := run(t, cfg, Options{})
		limit := cfg.MaxPayloadBytes
		payloads := map[string][]byte{
			"plant/big/empty":        nil,
			"plant/big/huge":         bytes.Repeat([]byte("h"), limit+limit/2),
			"plant/big/at-limit":     bytes.Repeat([]byte("a"), limit),
			"plant/big/small/at-lim": bytes.Repeat([]byte("s"), limit), // refused by small_raw's default limit
		}
		pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(bk.mqtt.URL()).SetClientID("big-pub"))
		if tok := pub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("connect publisher: %v", tok.Error())
		}
		defer pub.Disconnect(100)
		for topic, p := range payloads {
			if tok := pub.Publish(topic, 1, false, p); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatalf("publish %s: %v", topic, tok.Error())
			}
		}
		type want struct {
			kafkaTopic    string
			valueLen      int // -1: cut, at most the limit
			oversizedSize string
		}
		wants := map[string]want{
			"plant/big/empty":        {"big_raw", 0, ""},
			"plant/big/at-limit":     {"big_raw", limit, ""},
			"plant/big/huge":         {"big_oversized", -1, strconv.Itoa(limit + limit/2)},
			"plant/big/small/at-lim": {"big_oversized", -1, strconv.Itoa(limit)},
		}
		got := consumeByKey(t, bk.kafka.Brokers(), []string{"big_raw", "big_oversized", "small_raw"}, len(wants))
		for key, w := range wants {
			m, ok := got[key]
			if !ok {
				st := b.Status()
				t.Errorf("%s: no record (of %d keys found; bridge: received %d, produced %d, acked %d, failed %d, retried %d, oversized %d, stale %d, in flight %d, last error %q); the topics hold:\n%s",
					key, len(got), st.Received, st.Produced, st.Acked, st.Failed, st.Retried, st.Oversized, st.StaleAcks, st.InFlight, st.LastError,
					dumpTopics(t, bk.kafka.Brokers(), "big_raw", "big_oversized", "small_raw"))
				continue
			}
			size, hasSize := header(m, HeaderOversizedSize)
			if *m.TopicPartition.Topic != w.kafkaTopic || size != w.oversizedSize || hasSize != (w.oversizedSize != "") {
				t.Errorf("%s: in %s with oversized_bytes %q, want %s and %q", key, *m.TopicPartition.Topic, size, w.kafkaTopic, w.oversizedSize)
			}
			if w.valueLen >= 0 && len(m.Value) != w.valueLen {
				t.Errorf("%s: value of %d bytes, want %d", key, len(m.Value), w.valueLen)
			}
			if w.valueLen < 0 && (len(m.Value) == 0 || len(m.Value) > limit || !bytes.Equal(m.Value, payloads[key][:len(m.Value)])) {
				t.Errorf("%s: cut value of %d bytes is not a prefix within the %d limit", key, len(m.Value), limit)
			}
			if mt, _ := header(m, HeaderMQTTTopic); mt != key {
				t.Errorf("%s: mqtt_topic header %q", key, mt)
			}
		}
		if s := b.Status(); s.Oversized != 2 || s.Acked != 4 {
			t.Errorf("status: oversized %d acked %d, want 2 and 4", s.Oversized, s.Acked)
		}
	})

	t.Run("pause holds readings and resume delivers them", func(t *testing.T) {
		b := run(t, bk.config("pause", "bridge-pause"), Options{})
		publishAndCollect(t, bk, "pause", 0, 2000, 2)
		b.Pause()
		waitFor(t, 10*time.Second, "in-flight settled", func() bool { return b.Status().InFlight == 0 })
		before := endOffsets(t, bk.kafka.Brokers(), "pause_raw")
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := loadtest.Publish(ctx, loadtest.PublishConfig{
			Broker: bk.mqtt.URL(), ClientPrefix: "pause-pub2", Topic: topicOf("pause"), First: 2000, Count: 3000, Workers: 2,
		}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		if after := endOffsets(t, bk.kafka.Brokers(), "pause_raw"); after != before {
			t.Fatalf("paused bridge produced %d records", after-before)
		}
		if s := b.Status(); !s.Paused || s.Acked != 2000 {
			t.Fatalf("while paused: paused %v acked %d, want true and 2000", s.Paused, s.Acked)
		}
		b.Resume()
		res, err := loadtest.Collect(ctx, bk.kafka.Brokers(), "pause_raw", 0, 5000, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("after resume: %d unique, %d duplicates", res.Unique, res.Duplicates)
	})

	t.Run("a topic that shrinks after start", func(t *testing.T) {
		// The bridge learns its topics' limits at start; a topic whose limit
		// is lowered later refuses a record, and the bridge diverts it on
		// the failed delivery instead. One reading only, so that no other
		// record is in flight when the producer takes the permanent error.
		cfg := bk.config("shrink", "bridge-shrink")
		b := run(t, cfg, Options{})
		admin, err := kafka.NewAdminClient(&kafka.ConfigMap{"bootstrap.servers": bk.kafka.Brokers()})
		if err != nil {
			t.Fatal(err)
		}
		defer admin.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		res, err := admin.IncrementalAlterConfigs(ctx, []kafka.ConfigResource{{
			Type: kafka.ResourceTopic, Name: cfg.KafkaTopic,
			Config: []kafka.ConfigEntry{{Name: "max.message.bytes", Value: "100000", IncrementalOperation: kafka.AlterConfigOpTypeSet}},
		}})
		if err != nil || res[0].Error.Code() != kafka.ErrNoError {
			t.Fatalf("shrink %s: %v %v", cfg.KafkaTopic, err, res)
		}
		time.Sleep(time.Second) // the broker applies topic configs asynchronously
		pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(bk.mqtt.URL()).SetClientID("shrink-pub"))
		if tok := pub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("connect publisher: %v", tok.Error())
		}
		defer pub.Disconnect(100)
		const size = 500_000
		if tok := pub.Publish("plant/shrink/big", 1, false, bytes.Repeat([]byte("z"), size)); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
		got := consumeByKey(t, bk.kafka.Brokers(), []string{cfg.KafkaTopic, cfg.OversizedTopic}, 1)
		m, ok := got["plant/shrink/big"]
		if !ok {
			st := b.Status()
			t.Fatalf("no record (bridge: produced %d, failed %d, oversized %d, last error %q)", st.Produced, st.Failed, st.Oversized, st.LastError)
		}
		if size, _ := header(m, HeaderOversizedSize); *m.TopicPartition.Topic != cfg.OversizedTopic || size != strconv.Itoa(500_000) {
			t.Errorf("record in %s with oversized_bytes %q, want %s and 500000", *m.TopicPartition.Topic, size, cfg.OversizedTopic)
		}
		if st := b.Status(); st.Failed != 1 || st.Oversized != 1 || st.Acked != 1 {
			t.Errorf("bridge counted failed %d, oversized %d, acked %d; want 1, 1, 1 (refused, then diverted)", st.Failed, st.Oversized, st.Acked)
		}
	})

	t.Run("replicas share a subscription", func(t *testing.T) {
		cfg1 := bk.config("shared", "bridge-shared-1")
		cfg1.ShareGroup = "bridges"
		cfg2 := cfg1
		cfg2.ClientID = "bridge-shared-2"
		b1 := run(t, cfg1, Options{})
		b2 := run(t, cfg2, Options{})
		const n = 20_000
		res := publishAndCollect(t, bk, "shared", 0, n, 2)
		s1, s2 := b1.Status(), b2.Status()
		t.Logf("replica 1 acked %d, replica 2 acked %d, %d duplicates", s1.Acked, s2.Acked, res.Duplicates)
		if s1.Acked < n/10 || s2.Acked < n/10 {
			t.Errorf("load not shared: replica 1 acked %d, replica 2 acked %d of %d", s1.Acked, s2.Acked, n)
		}
		if s1.Subscriptions[0] != "$share/bridges/plant/shared/#" {
			t.Errorf("subscription %q", s1.Subscriptions[0])
		}
	})
}

// createTopicWithLimit creates a one-partition topic whose
// max.message.bytes is set on the topic itself, as an operator would.
func createTopicWithLimit(t *testing.T, brokers, topic string, limit int) {
	t.Helper()
	ac, err := kafka.NewAdminClient(&kafka.ConfigMap{"bootstrap.servers": brokers, "log_level": 0})
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := ac.CreateTopics(ctx, []kafka.TopicSpecification{{Topic: topic, NumPartitions: 1, ReplicationFactor: 1,
		Config: map[string]string{"max.message.bytes": strconv.Itoa(limit)}}})
	if err != nil || res[0].Error.Code() != kafka.ErrNoError {
		t.Fatalf("create %s: %v %v", topic, err, res)
	}
}

func headerOr(m *kafka.Message, key string) string {
	v, _ := header(m, key)
	return v
}

// consumeByKey reads topics until n distinct keys arrived; the last record
// per key wins.
// dumpTopics lists every record of topics, read partition by partition
// without a consumer group, for a failure message.
func dumpTopics(t *testing.T, brokers string, topics ...string) string {
	t.Helper()
	c, err := kafka.NewConsumer(&kafka.ConfigMap{"bootstrap.servers": brokers, "group.id": "dump", "log_level": 0})
	if err != nil {
		return err.Error()
	}
	defer c.Close()
	var b strings.Builder
	for _, topic := range topics {
		md, err := c.GetMetadata(&topic, false, 10000)
		if err != nil {
			fmt.Fprintf(&b, "%s: metadata: %v\n", topic, err)
			continue
		}
		for _, p := range md.Topics[topic].Partitions {
			low, high, err := c.QueryWatermarkOffsets(topic, p.ID, 10000)
			fmt.Fprintf(&b, "%s[%d]: offsets %d..%d %v\n", topic, p.ID, low, high, err)
			if err != nil || high <= low {
				continue
			}
			tp := kafka.TopicPartition{Topic: &topic, Partition: p.ID, Offset: kafka.OffsetBeginning}
			if err := c.Assign([]kafka.TopicPartition{tp}); err != nil {
				fmt.Fprintf(&b, "  assign: %v\n", err)
				continue
			}
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
				m, ok := c.Poll(100).(*kafka.Message)
				if !ok {
					continue
				}
				fmt.Fprintf(&b, "  offset %d key %q value %d bytes\n", m.TopicPartition.Offset, m.Key, len(m.Value))
				if int64(m.TopicPartition.Offset) >= high-1 {
					break
				}
			}
		}
	}
	return b.String()
}

func consumeByKey(t *testing.T, brokers string, topics []string, n int) map[string]*kafka.Message {
	t.Helper()
	c, err := kafka.NewConsumer(&kafka.ConfigMap{
		"bootstrap.servers": brokers, "group.id": "bykey-" + strings.Join(topics, "-"),
		"auto.offset.reset": "earliest", "enable.auto.commit": false, "log_level": 0,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SubscribeTopics(topics, nil); err != nil {
		t.Fatal(err)
	}
	got := make(map[string]*kafka.Message)
	deadline := time.Now().Add(60 * time.Second)
	for len(got) < n && time.Now().Before(deadline) {
		if m, ok := c.Poll(100).(*kafka.Message); ok {
			got[string(m.Key)] = m
		}
	}
	return got
}

// endOffsets sums the high watermarks of topic's partitions.
func endOffsets(t *testing.T, brokers, topic string) int64 {
	t.Helper()
	c, err := kafka.NewConsumer(&kafka.ConfigMap{"bootstrap.servers": brokers, "group.id": "offsets", "log_level": 0})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	md, err := c.GetMetadata(&topic, false, 10000)
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, p := range md.Topics[topic].Partitions {
		_, high, err := c.QueryWatermarkOffsets(topic, p.ID, 10000)
		if err != nil {
			t.Fatal(err)
		}
		sum += high
	}
	return sum
}
