package bridge

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

func TestMatchFilter(t *testing.T) {
	tests := []struct {
		filter, topic string
		want          bool
	}{
		{"plant/#", "plant/l1/press01/temperature", true},
		{"plant/#", "plant", true},
		{"plant/#", "plants/x", false},
		{"#", "plant/a", true},
		{"#", "$SYS/broker", false},
		{"+/a", "$SYS/a", false},
		{"plant/+/+/temperature", "plant/l1/press01/temperature", true},
		{"plant/+/+/temperature", "plant/l1/press01/pressure", false},
		{"plant/+", "plant/l1/press01", false},
		{"plant/+", "plant/", true},
		{"plant/l1", "plant/l1", true},
		{"plant/l1", "plant/l1/x", false},
		{"plant/l1/x", "plant/l1", false},
		{"+", "plant", true},
		{"+/+", "/plant", true},
	}
	for _, tc := range tests {
		if got := matchFilter(tc.filter, tc.topic); got != tc.want {
			t.Errorf("matchFilter(%q, %q) = %v, want %v", tc.filter, tc.topic, got, tc.want)
		}
	}
}

func TestValidateFilter(t *testing.T) {
	tests := []struct {
		filter string
		ok     bool
	}{
		{"plant/#", true},
		{"plant/+/x", true},
		{"#", true},
		{"", false},
		{"plant/#/x", false},
		{"plant/a#", false},
		{"plant/a+/x", false},
		{"$share/g/plant/#", false},
	}
	for _, tc := range tests {
		err := validateFilter(tc.filter)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrInvalidFilter)) {
			t.Errorf("validateFilter(%q) = %v, want ok=%v", tc.filter, err, tc.ok)
		}
	}
}

func TestParseRoute(t *testing.T) {
	tests := []struct {
		in   string
		want Route
		ok   bool
	}{
		{"plant/l1/#=line1_raw", Route{"plant/l1/#", "line1_raw"}, true},
		{" plant/# = raw ", Route{"plant/#", "raw"}, true},
		{"plant/#", Route{}, false},
		{"=raw", Route{}, false},
		{"plant/#=", Route{}, false},
	}
	for _, tc := range tests {
		got, err := ParseRoute(tc.in)
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("ParseRoute(%q) = %v, %v; want %v, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	valid := DefaultConfig()
	valid.ClientID = "bridge-0"
	tests := []struct {
		name   string
		change func(*Config)
		ok     bool
	}{
		{"defaults with client id", func(*Config) {}, true},
		{"no client id", func(c *Config) { c.ClientID = "" }, false},
		{"share group with slash", func(c *Config) { c.ShareGroup = "a/b" }, false},
		{"no filters", func(c *Config) { c.TopicFilters = nil }, false},
		{"route alone subscribes", func(c *Config) { c.TopicFilters = nil; c.Routes = []Route{{"a/#", "t"}} }, true},
		{"bad filter", func(c *Config) { c.TopicFilters = []string{"a/#/b"} }, false},
		{"tiny payload limit", func(c *Config) { c.MaxPayloadBytes = 10 }, false},
		{"sample ratio above 1", func(c *Config) { c.TraceSampleRatio = 1.5 }, false},
		{"no partitions", func(c *Config) { c.KafkaPartitions = 0 }, false},
	}
	for _, tc := range tests {
		c := valid
		tc.change(&c)
		err := c.Validate()
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrInvalidConfig)) {
			t.Errorf("%s: Validate() = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestSubscribeFilters(t *testing.T) {
	c := DefaultConfig()
	c.TopicFilters = []string{"plant/#", "lab/+/x"}
	c.Routes = []Route{{"lab/+/x", "lab_raw"}, {"test/#", "test_raw"}}
	c.ShareGroup = "bridges"
	got := strings.Join(c.subscribeFilters(), ",")
	want := "$share/bridges/plant/#,$share/bridges/lab/+/x,$share/bridges/test/#"
	if got != want {
		t.Errorf("subscribeFilters() = %s, want %s", got, want)
	}
	if got, want := strings.Join(c.topics(), ","), DefaultKafkaTopic+","+DefaultOversizedTopic+",lab_raw,test_raw"; got != want {
		t.Errorf("topics() = %s, want %s", got, want)
	}
}

func header(m *kafka.Message, key string) (string, bool) {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

func TestMapperRecord(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxPayloadBytes = 4096
	cfg.Routes = []Route{{"lab/#", "lab_raw"}}
	m := newMapper(cfg)
	now := time.UnixMilli(1625000000123)
	big := bytes.Repeat([]byte("x"), 10000)
	tests := []struct {
		name          string
		in            inbound
		wantTopic     string
		wantOversized bool
		wantValue     []byte
		wantHeaders   map[string]string
	}{
		{
			name:      "reading passes untouched",
			in:        inbound{topic: "plant/l1/press01/temperature", qos: 1, payload: []byte(`{"v":1}`)},
			wantTopic: DefaultKafkaTopic,
			wantValue: []byte(`{"v":1}`),
			wantHeaders: map[string]string{
				HeaderMQTTTopic: "plant/l1/press01/temperature", HeaderMQTTQoS: "1",
				HeaderMQTTRetain: "false", HeaderMQTTDup: "false", HeaderBridgeTSMs: "1625000000123",
			},
		},
		{
			name:        "empty payload passes",
			in:          inbound{topic: "plant/a", qos: 0, retained: true, dup: true},
			wantTopic:   DefaultKafkaTopic,
			wantValue:   nil,
			wantHeaders: map[string]string{HeaderMQTTQoS: "0", HeaderMQTTRetain: "true", HeaderMQTTDup: "true"},
		},
		{
			name:        "routed by filter",
			in:          inbound{topic: "lab/x", qos: 1, payload: []byte("p")},
			wantTopic:   "lab_raw",
			wantValue:   []byte("p"),
			wantHeaders: map[string]string{HeaderMQTTTopic: "lab/x"},
		},
		{
			name:          "payload at the limit is not oversized",
			in:            inbound{topic: "plant/a", qos: 1, payload: big[:4096]},
			wantTopic:     DefaultKafkaTopic,
			wantValue:     big[:4096],
			wantHeaders:   map[string]string{HeaderMQTTTopic: "plant/a"},
			wantOversized: false,
		},
		{
			name:          "oversized is diverted and cut",
			in:            inbound{topic: "plant/a", qos: 1, payload: big},
			wantTopic:     DefaultOversizedTopic,
			wantOversized: true,
			wantHeaders:   map[string]string{HeaderOversizedSize: "10000", HeaderMQTTTopic: "plant/a", HeaderMQTTQoS: "1"},
		},
	}
	for _, tc := range tests {
		msg, oversized := m.record(tc.in, now)
		if got := *msg.TopicPartition.Topic; got != tc.wantTopic || oversized != tc.wantOversized {
			t.Errorf("%s: topic %s oversized %v, want %s %v", tc.name, got, oversized, tc.wantTopic, tc.wantOversized)
		}
		if string(msg.Key) != tc.in.topic {
			t.Errorf("%s: key %q, want %q", tc.name, msg.Key, tc.in.topic)
		}
		if !tc.wantOversized && !bytes.Equal(msg.Value, tc.wantValue) {
			t.Errorf("%s: value of %d bytes, want %d", tc.name, len(msg.Value), len(tc.wantValue))
		}
		for k, want := range tc.wantHeaders {
			if got, _ := header(msg, k); got != want {
				t.Errorf("%s: header %s = %q, want %q", tc.name, k, got, want)
			}
		}
	}
}

// TestDivertFits checks that a cut record, with key, headers and batch
// overhead, never exceeds the payload limit, whatever the topic length.
func TestDivertFits(t *testing.T) {
	cfg := DefaultConfig()
	m := newMapper(cfg)
	for _, topicLen := range []int{1, 100, 10000, maxTopicBytes} {
		topic := strings.Repeat("t", topicLen)
		payload := bytes.Repeat([]byte("y"), cfg.MaxPayloadBytes+1)
		msg, oversized := m.record(inbound{topic: topic, qos: 1, payload: payload}, time.Now())
		size := len(msg.Key) + len(msg.Value) + headerBytes(msg.Headers) + recordOverhead
		if !oversized || size > cfg.MaxPayloadBytes {
			t.Errorf("topic of %d bytes: oversized %v, record of %d bytes, limit %d", topicLen, oversized, size, cfg.MaxPayloadBytes)
		}
		if got, _ := header(msg, HeaderOversizedSize); got != strconv.Itoa(len(payload)) {
			t.Errorf("topic of %d bytes: oversized_bytes %q", topicLen, got)
		}
		if !bytes.HasPrefix(payload, msg.Value) {
			t.Errorf("topic of %d bytes: cut value is not a prefix of the payload", topicLen)
		}
	}
	if producerMessageMaxBytes(cfg.MaxPayloadBytes) < cfg.MaxPayloadBytes+2*maxTopicBytes {
		t.Errorf("producer message.max.bytes leaves no room for key and headers")
	}
}

func TestRetryBackoff(t *testing.T) {
	tests := []struct {
		attempts int
		want     time.Duration
	}{
		{1, 100 * time.Millisecond},
		{2, 200 * time.Millisecond},
		{4, 800 * time.Millisecond},
		{7, 5 * time.Second},
		{100, 5 * time.Second},
	}
	for _, tc := range tests {
		if got := retryBackoff(tc.attempts); got != tc.want {
			t.Errorf("retryBackoff(%d) = %v, want %v", tc.attempts, got, tc.want)
		}
	}
}

// TestTopicLimitDiverts checks that a record larger than its topic's
// max.message.bytes is diverted before it is produced, cut to fit the
// oversized topic's own limit.
func TestTopicLimitDiverts(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Routes = []Route{{Filter: "plant/small/#", Topic: "small"}}
	m := newMapper(cfg)
	m.setTopicLimits(map[string]int{"small": 10_000, cfg.OversizedTopic: 50_000})
	for _, tc := range []struct {
		topic         string
		payload       int
		wantTopic     string
		wantOversized bool
	}{
		{"plant/small/a", 9_000, "small", false},
		{"plant/small/a", 10_000, cfg.OversizedTopic, true}, // payload fits, the record does not
		{"plant/big/a", 500_000, cfg.KafkaTopic, false},
		{"plant/big/a", cfg.MaxPayloadBytes + 1, cfg.OversizedTopic, true},
	} {
		msg, oversized := m.record(inbound{topic: tc.topic, qos: 1, payload: bytes.Repeat([]byte("p"), tc.payload)}, time.Now())
		if *msg.TopicPartition.Topic != tc.wantTopic || oversized != tc.wantOversized {
			t.Errorf("%s, %d bytes: topic %s oversized %v, want %s %v", tc.topic, tc.payload, *msg.TopicPartition.Topic, oversized, tc.wantTopic, tc.wantOversized)
		}
		if oversized && recordSize(msg) > 50_000 {
			t.Errorf("%s, %d bytes: diverted record of %d bytes exceeds the oversized topic's 50000", tc.topic, tc.payload, recordSize(msg))
		}
	}
}
