package devstack_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/plantlake/plantlake/devstack"
)

// connect connects a paho client and fails the test if it cannot.
func connect(t *testing.T, opts *mqtt.ClientOptions) mqtt.Client {
	t.Helper()
	c := mqtt.NewClient(opts.SetAutoReconnect(false).SetConnectTimeout(10 * time.Second))
	if tok := c.Connect(); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", opts.ClientID, tok.Error())
	}
	return c
}

// received collects the distinct payloads a subscriber gets.
type received struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (r *received) handle(_ mqtt.Client, m mqtt.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen[string(m.Payload())] = true
}

func (r *received) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
}

func (r *received) missing(n int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var miss []string
	for i := range n {
		if p := strconv.Itoa(i); !r.seen[p] {
			miss = append(miss, p)
		}
	}
	return miss
}

// TestMosquittoQueuesForOfflineSubscriber checks the broker configuration
// that the bridge's no-loss guarantee rests on: a persistent session gets
// every QoS 1 message published while it was offline — more than
// Mosquitto's default queue limit of 1000 — also across a broker restart.
func TestMosquittoQueuesForOfflineSubscriber(t *testing.T) {
	const messages = 2000
	tests := []struct {
		name    string
		restart bool
	}{
		{name: "offline", restart: false},
		{name: "offline and broker restarted", restart: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := devstack.Mosquitto(t)
			const subID, topic = "devstack-test-sub", "plant/l1/d1/temperature"
			var got received
			got.seen = map[string]bool{}
			subOpts := mqtt.NewClientOptions().AddBroker(m.URL()).SetClientID(subID).
				SetCleanSession(false).SetDefaultPublishHandler(got.handle)

			// Subscribe once, then go offline: the session stays on the broker.
			sub := connect(t, subOpts)
			if tok := sub.Subscribe("plant/#", 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatalf("subscribe: %v", tok.Error())
			}
			sub.Disconnect(250)

			pub := connect(t, mqtt.NewClientOptions().AddBroker(m.URL()).SetClientID("devstack-test-pub"))
			tokens := make([]mqtt.Token, messages)
			for i := range messages {
				tokens[i] = pub.Publish(topic, 1, false, strconv.Itoa(i))
			}
			for i, tok := range tokens {
				if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
					t.Fatalf("publish %d not acknowledged: %v", i, tok.Error())
				}
			}
			pub.Disconnect(250)

			if tt.restart {
				if err := m.Restart(); err != nil {
					t.Fatalf("restart: %v", err)
				}
			}

			sub = connect(t, subOpts)
			defer sub.Disconnect(250)
			deadline := time.Now().Add(30 * time.Second)
			for got.count() < messages && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			if miss := got.missing(messages); len(miss) > 0 {
				t.Fatalf("subscriber missed %d of %d messages (first: %s)", len(miss), messages,
					strings.Join(miss[:min(5, len(miss))], ","))
			}
		})
	}
}

// TestMosquittoConfigFile checks the settings that a test cannot observe
// quickly: persistence saved often, no queue limit, the in-flight window.
func TestMosquittoConfigFile(t *testing.T) {
	m := devstack.Mosquitto(t)
	b, err := os.ReadFile(filepath.Join(m.Dir(), "mosquitto.conf"))
	if err != nil {
		t.Fatalf("read config: %v", err)
	}
	conf := string(b)
	for _, line := range []string{
		"persistence true",
		"autosave_interval 1",
		"max_queued_messages 0",
		fmt.Sprintf("max_inflight_messages %d", devstack.DefaultMosquittoMaxInflight),
		fmt.Sprintf("listener %s", strings.Replace(strings.TrimPrefix(m.Addr(), "127.0.0.1:"), ":", " ", 1)),
	} {
		if !strings.Contains(conf, line) {
			t.Errorf("mosquitto.conf lacks %q", line)
		}
	}
}
