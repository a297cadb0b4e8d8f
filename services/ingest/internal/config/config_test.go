package config

import (
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		check   func(Config) bool
		wantErr bool
	}{
		{
			name: "defaults",
			check: func(c Config) bool {
				return slices.Equal(c.Topics, []string{"plant_sensor_readings_raw", "plant_sensor_readings_oversized"}) &&
					c.Group == DefaultGroup && c.BatchMaxAge == 500*time.Millisecond && c.Shared.GRPCAddr == ":7003" &&
					c.Shared.MetricsAddr == ":9103" && !c.RunOnce
			},
		},
		{
			name: "flags",
			args: []string{"--topics", "a, b", "--batch-max-rows", "10", "--batch-max-age", "15m", "--run-once",
				"--kafka-config", "security.protocol=SASL_SSL", "--kafka-config", "sasl.mechanism=PLAIN"},
			check: func(c Config) bool {
				return slices.Equal(c.Topics, []string{"a", "b"}) && c.BatchMaxRows == 10 && c.BatchMaxAge == 15*time.Minute &&
					c.RunOnce && c.Shared.KafkaConfig["security.protocol"] == "SASL_SSL" && c.Shared.KafkaConfig["sasl.mechanism"] == "PLAIN"
			},
		},
		{
			name: "environment defaults",
			env:  map[string]string{"PLANTLAKE_GROUP": "g2", "PLANTLAKE_BATCH_MAX_BYTES": "1024", "PLANTLAKE_CATALOG_ADDR": "cat:1"},
			check: func(c Config) bool {
				return c.Group == "g2" && c.BatchMaxBytes == 1024 && c.Shared.CatalogAddr == "cat:1"
			},
		},
		{name: "age too long", args: []string{"--batch-max-age", "16m"}, wantErr: true},
		{name: "zero rows", args: []string{"--batch-max-rows", "0"}, wantErr: true},
		{name: "no topics", args: []string{"--topics", " , "}, wantErr: true},
		{name: "bad catalog address", args: []string{"--catalog-addr", "nocolon"}, wantErr: true},
		{name: "stray argument", args: []string{"extra"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			c, err := Load(tc.args, io.Discard)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Load(%q) error = %v, want error: %v", tc.args, err, tc.wantErr)
			}
			if tc.check != nil && !tc.check(c) {
				t.Errorf("Load(%q) = %+v", tc.args, c)
			}
		})
	}
}

func TestValidateNamesEveryFlag(t *testing.T) {
	c, err := Load(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c.BatchMaxRows, c.BatchMaxBytes, c.Group = -1, 0, ""
	err = c.Validate()
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("Validate() = %v, want ErrInvalid", err)
	}
	for _, flag := range []string{"--batch-max-rows", "--batch-max-bytes", "--group"} {
		if !contains(err.Error(), flag) {
			t.Errorf("error %q does not name %s", err, flag)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func TestBatchMaxBytesBounded(t *testing.T) {
	for _, tc := range []struct {
		arg string
		ok  bool
	}{
		{"--batch-max-bytes=1073741824", true},
		{"--batch-max-bytes=1073741825", false},
		{"--batch-max-bytes=4294967296", false},
	} {
		_, err := Load([]string{tc.arg}, io.Discard)
		if (err == nil) != tc.ok {
			t.Errorf("Load(%s) = %v, want ok=%v", tc.arg, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("Load(%s) = %v, want ErrInvalid", tc.arg, err)
		}
	}
}
