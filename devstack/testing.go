package devstack

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// portAttempts is how often a test broker start is tried on fresh ports when
// another process took a port between choosing and binding it.
const portAttempts = 3

// Kafka starts (installing if missing) a single-node KRaft Kafka for the
// test on free loopback ports with its data in a t.TempDir. t.Cleanup kills
// it; if the test failed, the tail of the broker log goes to the test log.
// Start, Stop and CreateTopic report errors to t.
func Kafka(t testing.TB) *KafkaBroker {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "kafka")
	var b *KafkaBroker
	var err error
	for range portAttempts {
		b, err = StartKafka(context.Background(), KafkaConfig{Dir: dir})
		if err == nil || !portTaken(err) {
			break
		}
	}
	if err != nil {
		t.Fatalf("devstack: start kafka: %v", err)
	}
	b.tb = t
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("devstack: kafka at %s, logs in %s\n%s", b.Brokers(), b.LogPath(), logTail(b.LogPath(), 30))
		}
		b.kill()
	})
	return b
}

// CreateTopic creates a topic for the test, failing it on error.
func (b *KafkaBroker) CreateTopic(t testing.TB, name string, partitions int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := b.CreateTopics(ctx, partitions, name); err != nil {
		t.Fatalf("%v", err)
	}
}

// Mosquitto starts (installing if missing) a Mosquitto for the test on a
// free loopback port with its data in a t.TempDir, configured for
// at-least-once delivery. t.Cleanup kills it; if the test failed, the tail
// of the broker log goes to the test log. Start, Stop and Restart report
// errors to t.
func Mosquitto(t testing.TB) *MosquittoBroker {
	t.Helper()
	return MosquittoWith(t, MosquittoConfig{})
}

// MosquittoWith is Mosquitto with cfg's users and TLS listener; cfg.Dir,
// Port and TLSPort are chosen by the test helper when empty.
func MosquittoWith(t testing.TB, cfg MosquittoConfig) *MosquittoBroker {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = filepath.Join(t.TempDir(), "mosquitto")
	}
	var m *MosquittoBroker
	var err error
	for range portAttempts {
		m, err = StartMosquitto(context.Background(), cfg)
		if err == nil || !portTaken(err) {
			break
		}
	}
	if err != nil {
		t.Fatalf("devstack: start mosquitto: %v", err)
	}
	m.tb = t
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("devstack: mosquitto at %s, logs in %s\n%s", m.Addr(), m.LogPath(), logTail(m.LogPath(), 30))
		}
		m.kill()
	})
	return m
}

// Python returns the path of a python3 in a venv with deltalake and pyarrow
// installed (installing them if missing).
func Python(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	py, err := PythonPath(ctx, nil)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return py
}

// portTaken reports whether a start failed because its port was in use.
func portTaken(err error) bool {
	s := err.Error()
	return strings.Contains(s, "Address already in use") || strings.Contains(s, "address already in use")
}

// String describes the broker for logs.
func (b *KafkaBroker) String() string {
	return fmt.Sprintf("kafka %s (%s)", b.Brokers(), b.cfg.Dir)
}

// String describes the broker for logs.
func (m *MosquittoBroker) String() string {
	return fmt.Sprintf("mosquitto %s (%s)", m.URL(), m.cfg.Dir)
}
