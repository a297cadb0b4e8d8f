package main

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/plantlake/plantlake/devstack"
)

// publishMQTT publishes one QoS 1 message with a fresh client and waits for
// its PUBACK.
func publishMQTT(t *testing.T, broker, topic string, payload []byte, retained bool) {
	t.Helper()
	opts := mqtt.NewClientOptions().AddBroker(broker).SetClientID(fmt.Sprintf("pub-%d", time.Now().UnixNano()))
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect publisher: %v", tok.Error())
	}
	defer c.Disconnect(100)
	if tok := c.Publish(topic, 1, retained, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// readAll returns the values of every record of a one-partition topic, in
// offset order.
func readAll(t *testing.T, brokers, topic string) []string {
	t.Helper()
	c, err := kafka.NewConsumer(&kafka.ConfigMap{
		"bootstrap.servers": brokers, "group.id": "readall", "enable.auto.commit": false,
		"log_level": 0, "isolation.level": "read_committed",
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, high, err := c.QueryWatermarkOffsets(topic, 0, 10_000)
	if err != nil {
		t.Fatalf("watermarks of %s: %v", topic, err)
	}
	if high == 0 {
		return nil
	}
	if err := c.Assign([]kafka.TopicPartition{{Topic: &topic, Partition: 0, Offset: kafka.OffsetBeginning}}); err != nil {
		t.Fatal(err)
	}
	var out []string
	deadline := time.Now().Add(30 * time.Second)
	for int64(len(out)) < high {
		if time.Now().After(deadline) {
			t.Fatalf("read %d of %d records of %s", len(out), high, topic)
		}
		m, err := c.ReadMessage(time.Second)
		if err != nil {
			if kerr, ok := err.(kafka.Error); ok && kerr.IsTimeout() {
				continue
			}
			t.Fatalf("read %s: %v", topic, err)
		}
		out = append(out, string(m.Value))
	}
	return out
}

// TestRestartsDuplicateNoRetained keeps five retained readings on the
// broker and restarts the bridge process six times, by kill -9 and by
// SIGTERM: the retained readings reach Kafka once, at the first start, and
// not again on any restart (MQTT sends retained messages again on every
// SUBSCRIBE). A retained reading published while the bridge runs, and one
// published while it is stopped, each arrive exactly once.
func TestRestartsDuplicateNoRetained(t *testing.T) {
	bin := buildBridge(t)
	kafkaBroker := devstack.Kafka(t)
	mosq := devstack.Mosquitto(t)
	const raw = "plant_sensor_readings_raw"

	want := map[string]bool{}
	publish := func(topic, payload string, retained bool) {
		publishMQTT(t, mosq.URL(), topic, []byte(payload), retained)
		want[payload] = true
	}
	for i := range 5 {
		publish(fmt.Sprintf("plant/line1/sensor%d/config", i), fmt.Sprintf("retained-before-start-%d", i), true)
	}

	grpcAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	proc := startBridge(t, bin,
		"--mqtt-broker", mosq.URL(), "--kafka-brokers", kafkaBroker.Brokers(),
		"--mqtt-client-id", "restart-bridge", "--mqtt-topic-filter", "plant/#",
		"--grpc-addr", grpcAddr, "--metrics-addr", "",
		"--kafka-partitions", "1", "--shutdown-timeout", "10s", "--log-level", "info")
	ctl := dial(t, grpcAddr)

	// settled waits until a fresh probe reading is in Kafka: the broker sent
	// the retained copies of the SUBSCRIBE before it, so any duplicate would
	// be produced by now; then it leaves the PUBACKs a moment to go out.
	probes := 0
	settled := func(what string) []string {
		t.Helper()
		waitUntil(t, 60*time.Second, "bridge SERVING "+what, ctl.serving)
		probes++
		probe := fmt.Sprintf("probe-%d", probes)
		publish("plant/line1/probe", probe, false)
		var got []string
		waitUntil(t, 60*time.Second, probe+" in Kafka", func() bool {
			got = readAll(t, kafkaBroker.Brokers(), raw)
			for _, v := range got {
				if v == probe {
					return true
				}
			}
			return false
		})
		time.Sleep(2 * time.Second)
		return readAll(t, kafkaBroker.Brokers(), raw)
	}
	check := func(what string, got []string) {
		t.Helper()
		seen := map[string]int{}
		for _, v := range got {
			seen[v]++
		}
		for v, n := range seen {
			if !want[v] {
				t.Errorf("%s: unexpected record %q", what, v)
			}
			if n != 1 {
				t.Errorf("%s: %q is in Kafka %d times", what, v, n)
			}
		}
		for v := range want {
			if seen[v] == 0 {
				t.Errorf("%s: %q is missing", what, v)
			}
		}
		t.Logf("%s: %d records, %d distinct, %d expected", what, len(got), len(seen), len(want))
	}

	check("first start", settled("first start"))
	publish("plant/line1/sensor9/config", "retained-while-running", true)
	check("retained published while running", settled("while running"))

	for i := range 6 {
		what := fmt.Sprintf("restart %d", i+1)
		if i%2 == 0 {
			proc.kill9AndRestart()
			what += " (kill -9)"
		} else {
			if err, _ := proc.terminate(20 * time.Second); err != nil {
				t.Fatalf("SIGTERM: %v", err)
			}
			if i == 3 {
				publish("plant/line2/sensor1/config", "retained-while-stopped", true)
				what += " (SIGTERM, a retained reading published while stopped)"
			} else {
				what += " (SIGTERM)"
			}
			proc.start()
		}
		check(what, settled(what))
	}
	if err := mosq.Restart(); err != nil {
		t.Fatal(err)
	}
	check("Mosquitto restarted", settled("after Mosquitto restart"))

	// A filter added to the configuration of the same client id is
	// subscribed although the broker kept the session: its readings arrive
	// from then on, and the retained ones under plant/# still do not repeat.
	if err, _ := proc.terminate(20 * time.Second); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	proc.args = append(proc.args, "--mqtt-topic-filter", "plant/#,site/#")
	proc.start()
	got := settled("with an added filter")
	publish("site/hall2/crane/load", "reading-on-added-filter", false)
	waitUntil(t, 60*time.Second, "the reading on the added filter in Kafka", func() bool {
		got = readAll(t, kafkaBroker.Brokers(), raw)
		return slices.Contains(got, "reading-on-added-filter")
	})
	check("filter added", got)
}
