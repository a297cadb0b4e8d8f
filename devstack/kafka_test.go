package devstack_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/plantlake/plantlake/devstack"
)

// produce sends total records to topic with an idempotent, acks=all
// producer, round-robin over the partitions; the i-th record of partition p
// has the value "p/i". It fails the test unless every delivery report is a
// success.
func produce(t *testing.T, brokers, topic string, partitions, total int) {
	t.Helper()
	p, err := kafka.NewProducer(&kafka.ConfigMap{
		"bootstrap.servers":  brokers,
		"enable.idempotence": true,
		"acks":               "all",
		"linger.ms":          5,
		"log_level":          3, // "coordinator load in progress" at the first idempotent producer is expected
	})
	if err != nil {
		t.Fatalf("producer: %v", err)
	}
	defer p.Close()
	reports := make(chan kafka.Event, total)
	for i := range total {
		part, seq := i%partitions, i/partitions
		err := p.Produce(&kafka.Message{
			TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: int32(part)},
			Key:            []byte("key-" + strconv.Itoa(part)),
			Value:          fmt.Appendf(nil, "%d/%d", part, seq),
		}, reports)
		if err != nil {
			t.Fatalf("produce %d/%d: %v", part, seq, err)
		}
	}
	timeout := time.After(60 * time.Second)
	for range total {
		select {
		case ev := <-reports:
			m := ev.(*kafka.Message)
			if m.TopicPartition.Error != nil {
				t.Fatalf("delivery of %s failed: %v", m.Value, m.TopicPartition.Error)
			}
		case <-timeout:
			t.Fatalf("delivery reports missing after 60s")
		}
	}
}

// consumeAll reads topic from the beginning until want records arrived and
// returns the values per partition in the order they were read.
func consumeAll(t *testing.T, brokers, topic string, want int) map[int32][]string {
	t.Helper()
	c, err := kafka.NewConsumer(&kafka.ConfigMap{
		"bootstrap.servers":  brokers,
		"group.id":           "devstack-test-" + strconv.FormatInt(time.Now().UnixNano(), 36),
		"auto.offset.reset":  "earliest",
		"enable.auto.commit": false,
	})
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	defer c.Close()
	if err := c.Subscribe(topic, nil); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	got := map[int32][]string{}
	deadline := time.Now().Add(90 * time.Second)
	for n := 0; n < want; {
		if time.Now().After(deadline) {
			t.Fatalf("consumed %d of %d records in 90s", n, want)
		}
		ev := c.Poll(200)
		switch e := ev.(type) {
		case *kafka.Message:
			got[e.TopicPartition.Partition] = append(got[e.TopicPartition.Partition], string(e.Value))
			n++
		case kafka.Error:
			if e.IsFatal() {
				t.Fatalf("consumer: %v", e)
			}
		}
	}
	// Anything after the last expected record is a duplicate or a stray.
	for end := time.Now().Add(time.Second); time.Now().Before(end); {
		if m, ok := c.Poll(100).(*kafka.Message); ok {
			t.Fatalf("extra record after %d: %s", want, m.Value)
		}
	}
	return got
}

// checkInOrder fails the test unless the partitions hold exactly what
// produce sent: partition p the values "p/0", "p/1", … in that order.
func checkInOrder(t *testing.T, got map[int32][]string, partitions, total int) {
	t.Helper()
	if len(got) != partitions {
		t.Errorf("records in %d partitions, want %d", len(got), partitions)
	}
	for part, values := range got {
		if n := (total + partitions - 1 - int(part)) / partitions; len(values) != n {
			t.Errorf("partition %d: %d records, want %d", part, len(values), n)
		}
		for i, v := range values {
			if want := fmt.Sprintf("%d/%d", part, i); v != want {
				t.Fatalf("partition %d record %d = %q, want %q (first of %s)", part, i, v, want,
					strings.Join(values[i:min(i+3, len(values))], ","))
			}
		}
	}
}

func TestKafkaProduceConsumeInOrder(t *testing.T) {
	const partitions, records = 6, 10000
	start := time.Now()
	k := devstack.Kafka(t)
	t.Logf("kafka started in %s at %s", time.Since(start).Round(time.Millisecond), k.Brokers())
	k.CreateTopic(t, "orders", partitions)

	produce(t, k.Brokers(), "orders", partitions, records)
	got := consumeAll(t, k.Brokers(), "orders", records)
	checkInOrder(t, got, partitions, records)
}

func TestKafkaStopStartKeepsData(t *testing.T) {
	const partitions, records = 3, 300
	k := devstack.Kafka(t)
	k.CreateTopic(t, "kept", partitions)
	produce(t, k.Brokers(), "kept", partitions, records)
	pid := k.Pid()

	if err := k.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if k.Running() {
		t.Fatalf("kafka still running after Stop")
	}
	start := time.Now()
	if err := k.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Logf("kafka restarted in %s", time.Since(start).Round(time.Millisecond))
	if k.Pid() == pid {
		t.Fatalf("kafka pid %d unchanged: not restarted", pid)
	}

	got := consumeAll(t, k.Brokers(), "kept", records)
	checkInOrder(t, got, partitions, records)
}

func TestCreatePipelineTopics(t *testing.T) {
	k := devstack.Kafka(t)
	ctx := t.Context()
	if err := devstack.CreatePipelineTopics(ctx, k.Brokers()); err != nil {
		t.Fatalf("create: %v", err)
	}
	// Creating again is not an error: `make up` runs it on every start.
	if err := devstack.CreatePipelineTopics(ctx, k.Brokers()); err != nil {
		t.Fatalf("create again: %v", err)
	}
	ac, err := kafka.NewAdminClient(&kafka.ConfigMap{"bootstrap.servers": k.Brokers()})
	if err != nil {
		t.Fatalf("admin: %v", err)
	}
	defer ac.Close()
	md, err := ac.GetMetadata(nil, true, 10000)
	if err != nil {
		t.Fatalf("metadata: %v", err)
	}
	for _, name := range devstack.PipelineTopics {
		if n := len(md.Topics[name].Partitions); n != devstack.PipelinePartitions {
			t.Errorf("topic %s has %d partitions, want %d", name, n, devstack.PipelinePartitions)
		}
	}
	// Automatic topic creation is off: producing to an unknown topic fails.
	if _, ok := md.Topics["not-created"]; ok {
		t.Fatalf("topic not-created exists before anyone created it")
	}
	md2, err := ac.GetMetadata(ptr("not-created"), false, 5000)
	if err == nil && md2.Topics["not-created"].Error.Code() == kafka.ErrNoError {
		t.Errorf("metadata request created topic not-created: auto creation is on")
	}
}

func ptr[T any](v T) *T { return &v }
