package kafkasource

import (
	"testing"
)

func TestConfigValidate(t *testing.T) {
	appID := func(string, int32) string { return "x" }
	good := Config{Brokers: "k:9092", GroupID: "g", Topics: []string{"t"}, AppID: appID}
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr bool
	}{
		{"valid", func(*Config) {}, false},
		{"no brokers", func(c *Config) { c.Brokers = "" }, true},
		{"no group", func(c *Config) { c.GroupID = "" }, true},
		{"no topics", func(c *Config) { c.Topics = nil }, true},
		{"no app ids", func(c *Config) { c.AppID = nil }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.edit(&c)
			if err := c.Validate(); (err != nil) != tc.wantErr {
				t.Errorf("Validate() = %v, want error: %v", err, tc.wantErr)
			}
		})
	}
}

func TestConsumerConfigKeepsExactlyOnceSettings(t *testing.T) {
	s := &Source{cfg: Config{Brokers: "k:1", GroupID: "g", KafkaConfig: map[string]string{
		"enable.auto.commit": "true", "enable.auto.offset.store": "true", "group.id": "other",
		"fetch.min.bytes": "1", "security.protocol": "SASL_SSL",
	}}}
	cm := s.consumerConfig()
	want := map[string]any{
		"enable.auto.commit": false, "enable.auto.offset.store": false, "group.id": "g",
		"fetch.min.bytes": "1", "security.protocol": "SASL_SSL", "bootstrap.servers": "k:1",
	}
	for k, v := range want {
		if cm[k] != v {
			t.Errorf("%s = %v, want %v", k, cm[k], v)
		}
	}
}
