package kafkatopic_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/plantlake/plantlake/devstack"
	"github.com/plantlake/plantlake/servicekit/kafkatopic"
)

func TestMaxMessageBytes(t *testing.T) {
	if got := kafkatopic.MaxMessageBytes(1 << 20); got != 1_180_414 {
		t.Errorf("MaxMessageBytes(1 MiB) = %d, want 1,180,414", got)
	}
}

// topicConfig returns a topic's partition count and its max.message.bytes
// and retention.ms, waiting until the broker's metadata knows the topic (a
// new topic reaches it a moment after CreateTopics returns).
func topicConfig(t *testing.T, admin *kafka.AdminClient, topic string) (int, map[string]string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		md, err := admin.GetMetadata(&topic, false, 10_000)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		res, derr := admin.DescribeConfigs(ctx, []kafka.ConfigResource{{Type: kafka.ResourceTopic, Name: topic}})
		cancel()
		if err == nil && derr == nil && len(res) == 1 && res[0].Error.Code() == kafka.ErrNoError && len(md.Topics[topic].Partitions) > 0 {
			out := map[string]string{}
			for _, k := range []string{"max.message.bytes", "retention.ms"} {
				out[k] = res[0].Config[k].Value
			}
			return len(md.Topics[topic].Partitions), out
		}
		if time.Now().After(deadline) {
			t.Fatalf("topic %s: metadata %v, configs %v %v", topic, err, derr, res)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitConfig waits until the topic has parts partitions (0: any) and the
// wanted settings: the broker applies a new topic's settings a moment
// after it first describes the topic.
func waitConfig(t *testing.T, admin *kafka.AdminClient, topic string, parts int, want map[string]string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, got := topicConfig(t, admin, topic)
		ok := parts == 0 || n == parts
		for k, v := range want {
			ok = ok && got[k] == v
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("topic %s: %d partitions, settings %v; want %d, %v", topic, n, got, parts, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestEnsure(t *testing.T) {
	broker := devstack.Kafka(t)
	admin, err := kafka.NewAdminClient(&kafka.ConfigMap{"bootstrap.servers": broker.Brokers(), "log_level": 0})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// ensure retries as callers do: a topic created a moment ago may not
	// be described yet.
	ensure := func(specs ...kafkatopic.Spec) []kafkatopic.Result {
		t.Helper()
		for attempt := 1; ; attempt++ {
			res, err := kafkatopic.Ensure(ctx, admin, specs...)
			if err == nil {
				return res
			}
			if attempt == 50 {
				t.Fatalf("Ensure: %v", err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	// createPlain creates a topic the way `make up` did before this
	// package, optionally with a max.message.bytes of its own.
	createPlain := func(name string, cfg map[string]string) {
		t.Helper()
		res, err := admin.CreateTopics(ctx, []kafka.TopicSpecification{{Topic: name, NumPartitions: 1, ReplicationFactor: 1, Config: cfg}})
		if err != nil || res[0].Error.Code() != kafka.ErrNoError {
			t.Fatalf("create %s: %v %v", name, err, res)
		}
		waitConfig(t, admin, name, 1, cfg)
	}
	wantBytes := strconv.Itoa(kafkatopic.MaxMessageBytes(kafkatopic.DefaultMaxPayloadBytes))

	t.Run("a missing topic is created with the defaults", func(t *testing.T) {
		res := ensure(kafkatopic.Spec{Name: "fresh"})
		if res[0].Outcome != kafkatopic.Created {
			t.Errorf("outcome %v", res[0].Outcome)
		}
		waitConfig(t, admin, "fresh", kafkatopic.DefaultPartitions,
			map[string]string{"max.message.bytes": wantBytes, "retention.ms": "1209600000"}) // 14 days
		if res := ensure(kafkatopic.Spec{Name: "fresh"}); res[0].Outcome != kafkatopic.Existed {
			t.Errorf("second Ensure: outcome %v, want existed", res[0].Outcome)
		}
	})
	t.Run("explicit partitions, size and retention", func(t *testing.T) {
		ensure(kafkatopic.Spec{Name: "sized", Partitions: 2, MaxMessageBytes: 5 << 20, Retention: time.Hour},
			kafkatopic.Spec{Name: "forever", Partitions: 1, Retention: -1})
		waitConfig(t, admin, "sized", 2, map[string]string{"max.message.bytes": strconv.Itoa(5 << 20), "retention.ms": "3600000"})
		waitConfig(t, admin, "forever", 1, map[string]string{"retention.ms": "-1"})
	})
	t.Run("an inherited limit that is too small is raised", func(t *testing.T) {
		createPlain("inherited", nil)
		if _, cfg := topicConfig(t, admin, "inherited"); cfg["max.message.bytes"] == wantBytes {
			t.Fatalf("the broker's default is already %s", wantBytes)
		}
		res := ensure(kafkatopic.Spec{Name: "inherited"})
		if res[0].Outcome != kafkatopic.Raised {
			t.Errorf("outcome %v, want raised", res[0].Outcome)
		}
		waitConfig(t, admin, "inherited", 1, map[string]string{"max.message.bytes": wantBytes})
	})
	t.Run("a limit set on the topic is kept", func(t *testing.T) {
		createPlain("operator", map[string]string{"max.message.bytes": "4096"})
		res := ensure(kafkatopic.Spec{Name: "operator"})
		if res[0].Outcome != kafkatopic.KeptSmaller || res[0].MaxMessageBytes != 4096 {
			t.Errorf("result %+v, want kept 4096", res[0])
		}
		if _, cfg := topicConfig(t, admin, "operator"); cfg["max.message.bytes"] != "4096" {
			t.Errorf("max.message.bytes %s, want the operator's 4096", cfg["max.message.bytes"])
		}
	})
	t.Run("a spec without a name is refused", func(t *testing.T) {
		if _, err := kafkatopic.Ensure(ctx, admin, kafkatopic.Spec{}); !errors.Is(err, kafkatopic.ErrInvalidSpec) {
			t.Errorf("err %v, want ErrInvalidSpec", err)
		}
	})
}
