package ingester

import (
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	good := Config{Brokers: "k:9092", GroupID: "g", Topics: []string{"t"}, BatchMaxRows: 1, BatchMaxBytes: 1, BatchMaxAge: time.Second}
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr bool
	}{
		{"valid", func(*Config) {}, false},
		{"no brokers", func(c *Config) { c.Brokers = "" }, true},
		{"no group", func(c *Config) { c.GroupID = "" }, true},
		{"no topics", func(c *Config) { c.Topics = nil }, true},
		{"zero rows", func(c *Config) { c.BatchMaxRows = 0 }, true},
		{"zero bytes", func(c *Config) { c.BatchMaxBytes = 0 }, true},
		{"age 15m", func(c *Config) { c.BatchMaxAge = 15 * time.Minute }, false},
		{"age over 15m", func(c *Config) { c.BatchMaxAge = 15*time.Minute + 1 }, true},
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
	e := &Engine{cfg: Config{Brokers: "k:1", GroupID: "g", KafkaConfig: map[string]string{
		"enable.auto.commit": "true", "enable.auto.offset.store": "true", "group.id": "other",
		"fetch.min.bytes": "1", "security.protocol": "SASL_SSL",
	}}}
	cm := e.consumerConfig()
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

func TestRateWindow(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var w rateWindow
	steps := []struct {
		at                        time.Duration
		received, rows, dropped   int64
		wantRecv, wantRows, wantD float64
	}{
		{0, 0, 0, 0, 0, 0, 0},
		{10 * time.Second, 1000, 500, 10, 100, 50, 1},
		{30 * time.Second, 3000, 2500, 10, 100, 2500.0 / 30, 10.0 / 30},
		// Samples older than a minute leave the window: the rate is since the 30s one.
		{80 * time.Second, 9000, 7500, 10, 6000.0 / 50, 5000.0 / 50, 0},
	}
	for _, st := range steps {
		r, c, d := w.update(t0.Add(st.at), totals{received: st.received, rows: st.rows, rowsDropped: st.dropped})
		if r != st.wantRecv || c != st.wantRows || d != st.wantD {
			t.Errorf("at %s: rates %.2f %.2f %.2f, want %.2f %.2f %.2f", st.at, r, c, d, st.wantRecv, st.wantRows, st.wantD)
		}
	}
}
