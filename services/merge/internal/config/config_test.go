package config

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/plantlake/plantlake/services/merge/internal/gold"
	"github.com/plantlake/plantlake/services/merge/internal/mergeplan"
)

func TestLoadDefaults(t *testing.T) {
	c, err := Load(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Shared.GRPCAddr != ":7005" || c.Shared.MetricsAddr != ":9105" {
		t.Errorf("addresses %s %s, want :7005 :9105", c.Shared.GRPCAddr, c.Shared.MetricsAddr)
	}
	if c.Strategy != mergeplan.FirstWins || strings.Join(c.Key.Columns(), ",") != strings.Join(gold.KeyColumns, ",") {
		t.Errorf("strategy %s key %v", c.Strategy, c.Key.Columns())
	}
	if c.KeyCacheBytes != 32<<20 {
		t.Errorf("key cache %d bytes, want 32 MiB", c.KeyCacheBytes)
	}
}

func TestLoadFromEnvironment(t *testing.T) {
	t.Setenv("PLANTLAKE_STRATEGY", "latest_wins")
	t.Setenv("PLANTLAKE_KEY", "sensor_id,measurement,ts,line")
	c, err := Load(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Strategy != mergeplan.LatestWins || len(c.Key.Columns()) != 4 {
		t.Errorf("strategy %s key %v", c.Strategy, c.Key.Columns())
	}
}

func TestLoadRejects(t *testing.T) {
	for _, args := range [][]string{
		{"--key", "sensor_id,measurement"},
		{"--key", "sensor_id,value,ts"},
		{"--strategy", "newest"},
		{"--batch-max-rows", "0"},
		{"--batch-max-age", "16m"},
		{"--poll-interval", "0s"},
		{"--max-file-rows", "-1"},
		{"--key-cache-bytes", "-1"},
	} {
		if _, err := Load(args, io.Discard); !errors.Is(err, ErrInvalid) {
			t.Errorf("Load(%v) = %v, want ErrInvalid", args, err)
		}
	}
}
