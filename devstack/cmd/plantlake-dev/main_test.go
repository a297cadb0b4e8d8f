package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/plantlake/plantlake/devstack"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestUpDownKeepsData runs the command as `make up` and `make down` do: up
// starts daemons and creates the topics, status sees them, down stops them,
// and a second up finds the record produced before.
func TestUpDownKeepsData(t *testing.T) {
	dir := t.TempDir()
	kport, cport, mport := freePort(t), freePort(t), freePort(t)
	flags := []string{"--dir", dir,
		"--kafka-port", strconv.Itoa(kport), "--kafka-controller-port", strconv.Itoa(cport),
		"--mqtt-port", strconv.Itoa(mport), "--kafka-heap-mb", "512"}
	cmd := func(name string) (string, error) {
		var out, errOut bytes.Buffer
		err := run(context.Background(), append([]string{name}, flags...), &out, &errOut)
		if err != nil {
			err = fmt.Errorf("%s: %w\n%s", name, err, errOut.String())
		}
		return out.String(), err
	}
	t.Cleanup(func() { _, _ = cmd("down") })

	if _, err := cmd("status"); !errors.Is(err, devstack.ErrNotRunning) {
		t.Fatalf("status before up = %v, want ErrNotRunning", err)
	}
	out, err := cmd("up")
	if err != nil {
		t.Fatal(err)
	}
	brokers := "127.0.0.1:" + strconv.Itoa(kport)
	for _, want := range []string{"--kafka-brokers=" + brokers, fmt.Sprintf("--mqtt-broker=tcp://127.0.0.1:%d", mport)} {
		if !strings.Contains(out, want) {
			t.Errorf("up printed no %q:\n%s", want, out)
		}
	}
	produceOne(t, brokers, devstack.TopicRaw, "before-down")

	if out, err := cmd("up"); err != nil || !strings.Contains(out, "kafka already running") {
		t.Fatalf("second up: %v\n%s", err, out)
	}
	if _, err := cmd("down"); err != nil {
		t.Fatal(err)
	}
	if _, err := cmd("status"); !errors.Is(err, devstack.ErrNotRunning) {
		t.Fatalf("status after down = %v, want ErrNotRunning", err)
	}
	if _, err := cmd("up"); err != nil {
		t.Fatal(err)
	}
	if got := consumeOne(t, brokers, devstack.TopicRaw); got != "before-down" {
		t.Fatalf("after down and up read %q, want %q", got, "before-down")
	}
}

func produceOne(t *testing.T, brokers, topic, value string) {
	t.Helper()
	p, err := kafka.NewProducer(&kafka.ConfigMap{"bootstrap.servers": brokers, "acks": "all", "log_level": 3})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	reports := make(chan kafka.Event, 1)
	if err := p.Produce(&kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: 0}, Value: []byte(value)}, reports); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-reports:
		if err := ev.(*kafka.Message).TopicPartition.Error; err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no delivery report in 30s")
	}
}

func consumeOne(t *testing.T, brokers, topic string) string {
	t.Helper()
	c, err := kafka.NewConsumer(&kafka.ConfigMap{"bootstrap.servers": brokers, "group.id": "plantlake-dev-test", "auto.offset.reset": "earliest"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Assign([]kafka.TopicPartition{{Topic: &topic, Partition: 0, Offset: kafka.OffsetBeginning}}); err != nil {
		t.Fatal(err)
	}
	m, err := c.ReadMessage(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return string(m.Value)
}
