package config_test

import (
	"bytes"
	"errors"
	"flag"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/plantlake/plantlake/servicekit/config"
)

func TestEnvName(t *testing.T) {
	tests := map[string]string{
		"catalog-addr":     "PLANTLAKE_CATALOG_ADDR",
		"grpc-addr":        "PLANTLAKE_GRPC_ADDR",
		"kafka-config":     "PLANTLAKE_KAFKA_CONFIG",
		"batch-rows":       "PLANTLAKE_BATCH_ROWS",
		"shutdown-timeout": "PLANTLAKE_SHUTDOWN_TIMEOUT",
		"rules.file":       "PLANTLAKE_RULES_FILE",
	}
	for flagName, want := range tests {
		if got := config.EnvName(flagName); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", flagName, got, want)
		}
	}
}

// newFlags registers the shared flags of an ingest-like service plus one
// service-specific flag.
func newFlags(groups ...config.Group) (*flag.FlagSet, *config.Shared, *int) {
	fs := flag.NewFlagSet("svc", flag.ContinueOnError)
	fs.SetOutput(&bytes.Buffer{})
	shared := &config.Shared{GRPCAddr: ":7003", MetricsAddr: ":9103"}
	shared.Register(fs, groups...)
	batch := fs.Int("batch-rows", 1000, "rows per commit")
	return fs, shared, batch
}

func TestParse(t *testing.T) {
	tests := []struct {
		name      string
		env       map[string]string
		args      []string
		want      config.Shared
		wantBatch int
	}{
		{
			name: "defaults",
			want: config.Shared{
				GRPCAddr: ":7003", MetricsAddr: ":9103", KafkaBrokers: "localhost:9092", KafkaPartitions: 6,
				CatalogAddr: "localhost:7001", Warehouse: "./warehouse", MQTTBroker: "tcp://localhost:1883",
				LogLevel: slog.LevelInfo, LogFormat: "text", ShutdownTimeout: 10 * time.Second,
			},
			wantBatch: 1000,
		},
		{
			name: "environment",
			env: map[string]string{
				"PLANTLAKE_GRPC_ADDR": "127.0.0.1:8000", "PLANTLAKE_KAFKA_BROKERS": "k1:9092,k2:9092",
				"PLANTLAKE_KAFKA_CONFIG": "security.protocol=SASL_SSL,debug=broker,topic", "PLANTLAKE_KAFKA_PARTITIONS": "12",
				"PLANTLAKE_CATALOG_ADDR": "catalog:7001", "PLANTLAKE_LOG_LEVEL": "debug", "PLANTLAKE_LOG_FORMAT": "json",
				"PLANTLAKE_SHUTDOWN_TIMEOUT": "3s", "PLANTLAKE_AUTH_TOKEN": "t0k", "PLANTLAKE_BATCH_ROWS": "5000",
			},
			want: config.Shared{
				GRPCAddr: "127.0.0.1:8000", MetricsAddr: ":9103", KafkaBrokers: "k1:9092,k2:9092",
				KafkaConfig:     config.KeyValues{"security.protocol": "SASL_SSL", "debug": "broker,topic"},
				KafkaPartitions: 12, CatalogAddr: "catalog:7001", Warehouse: "./warehouse", MQTTBroker: "tcp://localhost:1883",
				LogLevel: slog.LevelDebug, LogFormat: "json", ShutdownTimeout: 3 * time.Second, AuthToken: "t0k",
			},
			wantBatch: 5000,
		},
		{
			name: "arguments override the environment",
			env:  map[string]string{"PLANTLAKE_GRPC_ADDR": "127.0.0.1:8000", "PLANTLAKE_KAFKA_CONFIG": "acks=all,linger.ms=5", "PLANTLAKE_BATCH_ROWS": "5000"},
			args: []string{"--grpc-addr", ":9999", "--kafka-config", "linger.ms=20", "--kafka-config", "compression.type=lz4", "--batch-rows=7", "--metrics-addr="},
			want: config.Shared{
				GRPCAddr: ":9999", MetricsAddr: "", KafkaBrokers: "localhost:9092",
				KafkaConfig:     config.KeyValues{"acks": "all", "linger.ms": "20", "compression.type": "lz4"},
				KafkaPartitions: 6, CatalogAddr: "localhost:7001", Warehouse: "./warehouse", MQTTBroker: "tcp://localhost:1883",
				LogLevel: slog.LevelInfo, LogFormat: "text", ShutdownTimeout: 10 * time.Second,
			},
			wantBatch: 7,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			fs, shared, batch := newFlags(config.Kafka, config.Catalog)
			if err := config.Parse(fs, tt.args); err != nil {
				t.Fatal(err)
			}
			if err := shared.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			tt.want.Register(flag.NewFlagSet("want", flag.ContinueOnError), config.Kafka, config.Catalog) // same unexported groups
			if !reflect.DeepEqual(*shared, tt.want) {
				t.Errorf("settings = %+v\nwant       %+v", *shared, tt.want)
			}
			if *batch != tt.wantBatch {
				t.Errorf("--batch-rows = %d, want %d", *batch, tt.wantBatch)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr string
	}{
		{name: "bad env value", env: map[string]string{"PLANTLAKE_KAFKA_PARTITIONS": "many"}, wantErr: `PLANTLAKE_KAFKA_PARTITIONS="many" (default of --kafka-partitions)`},
		{name: "bad service env value", env: map[string]string{"PLANTLAKE_BATCH_ROWS": "x"}, wantErr: `PLANTLAKE_BATCH_ROWS="x"`},
		{name: "bad key=value", args: []string{"--kafka-config", "novalue"}, wantErr: `"novalue" is not key=value`},
		{name: "unknown flag", args: []string{"--nope"}, wantErr: "flag provided but not defined: -nope"},
		{name: "stray argument", args: []string{"extra"}, wantErr: `unexpected arguments ["extra"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			fs, _, _ := newFlags(config.Kafka)
			err := config.Parse(fs, tt.args)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Parse error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestHelpShowsEnvNamesAndEnvDefaults(t *testing.T) {
	t.Setenv("PLANTLAKE_CATALOG_ADDR", "catalog.internal:7001")
	t.Setenv("PLANTLAKE_AUTH_TOKEN", "hush")
	t.Setenv("PLANTLAKE_KAFKA_CONFIG", "sasl.password=hush")
	fs, _, _ := newFlags(config.Kafka, config.Catalog, config.MQTT)
	var out bytes.Buffer
	fs.SetOutput(&out)
	err := config.Parse(fs, []string{"--help"})
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("Parse(--help) = %v, want flag.ErrHelp", err)
	}
	help := out.String()
	for _, want := range []string{
		"(env PLANTLAKE_GRPC_ADDR) (default \":7003\")",
		"(env PLANTLAKE_CATALOG_ADDR) (default \"catalog.internal:7001\")",
		"(env PLANTLAKE_KAFKA_CONFIG) (default ***)",
		"(env PLANTLAKE_AUTH_TOKEN) (default \"***\")",
		"(env PLANTLAKE_MQTT_BROKER) (default \"tcp://localhost:1883\")",
		"rows per commit (env PLANTLAKE_BATCH_ROWS) (default 1000)",
		"(env PLANTLAKE_LOG_LEVEL) (default INFO)",
	} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q:\n%s", want, help)
		}
	}
	if strings.Contains(help, "hush") {
		t.Errorf("help shows a secret from the environment:\n%s", help)
	}
	if strings.Contains(help, "-warehouse") {
		t.Errorf("help lists --warehouse, which was not registered:\n%s", help)
	}
}

func TestRegisterOnlyChosenGroups(t *testing.T) {
	tests := []struct {
		groups []config.Group
		want   []string
	}{
		{nil, []string{"auth-token", "grpc-addr", "identities", "insecure-listen-any", "log-format", "log-level", "max-request-bytes", "metrics-addr", "pprof", "shutdown-timeout", "tls-cert", "tls-client-ca", "tls-key"}},
		{[]config.Group{config.Warehouse}, []string{"auth-token", "grpc-addr", "identities", "insecure-listen-any", "log-format", "log-level", "max-request-bytes", "metrics-addr", "pprof", "shutdown-timeout", "tls-cert", "tls-client-ca", "tls-key", "warehouse"}},
		{[]config.Group{config.MQTT, config.Kafka}, []string{"auth-token", "grpc-addr", "identities", "insecure-listen-any", "kafka-brokers", "kafka-config", "kafka-partitions", "log-format", "log-level", "max-request-bytes", "metrics-addr", "mqtt-broker", "pprof", "shutdown-timeout", "tls-cert", "tls-client-ca", "tls-key"}},
		{[]config.Group{config.Catalog}, []string{"auth-token", "catalog-addr", "grpc-addr", "identities", "insecure-listen-any", "log-format", "log-level", "max-request-bytes", "metrics-addr", "pprof", "shutdown-timeout", "tls-ca", "tls-cert", "tls-client-ca", "tls-client-cert", "tls-client-key", "tls-key"}},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("svc", flag.ContinueOnError)
		var shared config.Shared
		shared.Register(fs, tt.groups...)
		var got []string
		fs.VisitAll(func(f *flag.Flag) { got = append(got, f.Name) })
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("groups %v: flags %v, want %v", tt.groups, got, tt.want)
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		want  []string // each a substring of the error
		valid bool
	}{
		{name: "defaults", valid: true},
		{name: "bad addresses", args: []string{"--grpc-addr", "7001", "--metrics-addr", "x", "--catalog-addr", "nohost"}, want: []string{"--grpc-addr:", "--metrics-addr:", "--catalog-addr:"}},
		{name: "catalog on a unix socket", args: []string{"--catalog-addr", "unix:///run/plantlake/catalog.sock"}, valid: true},
		{name: "catalog on a relative unix socket", args: []string{"--catalog-addr", "unix:run/catalog.sock"}, valid: true},
		{name: "unix socket with a host", args: []string{"--catalog-addr", "unix://host/catalog.sock"}, want: []string{"--catalog-addr:", "absolute path and no host"}},
		{name: "unix socket without a path", args: []string{"--catalog-addr", "unix:"}, want: []string{"--catalog-addr:", "names no socket path"}},
		{name: "bad log format", args: []string{"--log-format", "xml"}, want: []string{`--log-format: "xml" is neither text nor json`}},
		{name: "bad numbers", args: []string{"--shutdown-timeout", "0s", "--kafka-partitions", "0"}, want: []string{"--shutdown-timeout: 0s is not positive", "--kafka-partitions: 0 is not positive"}},
		{name: "bad mqtt", args: []string{"--mqtt-broker", "http://x:1883"}, want: []string{"--mqtt-broker:"}},
		{name: "mqtt without host", args: []string{"--mqtt-broker", "tcp://"}, want: []string{"has no host"}},
		{name: "empty warehouse", args: []string{"--warehouse", ""}, want: []string{"--warehouse: empty"}},
		{name: "token with space", args: []string{"--auth-token", "a b"}, want: []string{"--auth-token: contains white space"}},
		{name: "metrics off is fine", args: []string{"--metrics-addr", ""}, valid: true},
		{name: "cert without key", args: []string{"--tls-cert", "c.pem"}, want: []string{"--tls-cert: --tls-cert and --tls-key go together"}},
		{name: "client CA without TLS", args: []string{"--tls-client-ca", "ca.pem"}, want: []string{"--tls-client-ca: needs --tls-cert"}},
		{name: "client cert without key", args: []string{"--tls-client-cert", "c.pem"}, want: []string{"--tls-client-cert: --tls-client-cert and --tls-client-key go together"}},
		{name: "tiny request limit", args: []string{"--max-request-bytes", "100"}, want: []string{"--max-request-bytes: 100 is less than 4 KiB"}},
		{name: "any address without security", args: []string{"--grpc-addr", "0.0.0.0:7001"}, want: []string{`--grpc-addr: "0.0.0.0:7001" is not a loopback address`, "--insecure-listen-any"}},
		{name: "a named host without security", args: []string{"--grpc-addr", "catalog:7001"}, want: []string{`"catalog:7001" is not a loopback address`}},
		{name: "IPv6 any without security", args: []string{"--grpc-addr", "[::]:7001"}, want: []string{"is not a loopback address"}},
		{name: "loopback without security", args: []string{"--grpc-addr", "127.0.0.1:7001"}, valid: true},
		{name: "localhost without security", args: []string{"--grpc-addr", "localhost:7001"}, valid: true},
		{name: "IPv6 loopback without security", args: []string{"--grpc-addr", "[::1]:7001"}, valid: true},
		{name: "any address, insecure on purpose", args: []string{"--grpc-addr", "0.0.0.0:7001", "--insecure-listen-any"}, valid: true},
		{name: "any address with identities", args: []string{"--grpc-addr", "0.0.0.0:7001", "--identities", "ids.json"}, valid: true},
		{name: "any address with a token", args: []string{"--grpc-addr", "0.0.0.0:7001", "--auth-token", "t"}, valid: true},
		{name: "any address with TLS", args: []string{"--grpc-addr", "0.0.0.0:7001", "--tls-cert", "c", "--tls-key", "k"}, valid: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, shared, _ := newFlags(config.Kafka, config.Catalog, config.Warehouse, config.MQTT)
			if err := config.Parse(fs, tt.args); err != nil {
				t.Fatal(err)
			}
			err := shared.Validate()
			if (err == nil) != tt.valid {
				t.Fatalf("Validate() = %v, want valid=%v", err, tt.valid)
			}
			for _, want := range tt.want {
				if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), want) {
					t.Errorf("Validate() = %v, want ErrInvalid containing %q", err, want)
				}
			}
		})
	}
}

func TestListenAddr(t *testing.T) {
	tests := []struct {
		args         []string
		want         string
		loopbackOnly bool
	}{
		{nil, "127.0.0.1:7003", true}, // the default ":7003"
		{[]string{"--grpc-addr", "127.0.0.1:7003"}, "127.0.0.1:7003", true},
		{[]string{"--grpc-addr", "[::1]:7003"}, "[::1]:7003", true},
		{[]string{"--insecure-listen-any"}, ":7003", false},
		{[]string{"--auth-token", "t"}, ":7003", false},
		{[]string{"--identities", "ids.json"}, ":7003", false},
		{[]string{"--tls-cert", "c", "--tls-key", "k"}, ":7003", false},
	}
	for _, tt := range tests {
		fs, shared, _ := newFlags()
		if err := config.Parse(fs, tt.args); err != nil {
			t.Fatal(err)
		}
		if err := shared.Validate(); err != nil {
			t.Fatal(err)
		}
		addr, loopbackOnly := shared.ListenAddr()
		if addr != tt.want || loopbackOnly != tt.loopbackOnly {
			t.Errorf("%v: ListenAddr() = %q, %v, want %q, %v", tt.args, addr, loopbackOnly, tt.want, tt.loopbackOnly)
		}
	}
}

func TestKeyValues(t *testing.T) {
	tests := []struct {
		name    string
		values  []string
		want    config.KeyValues
		wantStr string
	}{
		{name: "one", values: []string{"acks=all"}, want: config.KeyValues{"acks": "all"}, wantStr: "acks=all"},
		{name: "several in one", values: []string{"b=2,a=1"}, want: config.KeyValues{"a": "1", "b": "2"}, wantStr: "a=1,b=2"},
		{name: "comma in a value", values: []string{"debug=broker,topic,msg,acks=1"}, want: config.KeyValues{"debug": "broker,topic,msg", "acks": "1"}, wantStr: "acks=1,debug=broker,topic,msg"},
		{name: "equals in a value", values: []string{"sasl.jaas=a=b"}, want: config.KeyValues{"sasl.jaas": "a=b"}, wantStr: "sasl.jaas=a=b"},
		{name: "later wins", values: []string{"a=1", "a=2"}, want: config.KeyValues{"a": "2"}, wantStr: "a=2"},
		{name: "empty value", values: []string{"client.id="}, want: config.KeyValues{"client.id": ""}, wantStr: "client.id="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var kv config.KeyValues
			for _, v := range tt.values {
				if err := kv.Set(v); err != nil {
					t.Fatalf("Set(%q): %v", v, err)
				}
			}
			if !reflect.DeepEqual(kv, tt.want) {
				t.Errorf("got %v, want %v", kv, tt.want)
			}
			if kv.String() != tt.wantStr {
				t.Errorf("String() = %q, want %q", kv.String(), tt.wantStr)
			}
		})
	}
	for _, bad := range []string{"", "novalue", "=v", " =v,a=1"} {
		var kv config.KeyValues
		if err := kv.Set(bad); err == nil {
			t.Errorf("Set(%q) accepted", bad)
		}
	}
}

func TestKafkaValue(t *testing.T) {
	for _, tc := range []struct {
		key, value string
		want       any
	}{
		{"go.logs.channel.enable", "false", false},
		{"go.logs.channel.enable", "true", true},
		{"go.events.channel.size", "5000", 5000},
		{"go.delivery.report.fields", "key,value", "key,value"},
		{"enable.idempotence", "true", "true"}, // librdkafka's own: a string
		{"linger.ms", "50", "50"},
	} {
		if got := config.KafkaValue(tc.key, tc.value); got != tc.want {
			t.Errorf("KafkaValue(%q, %q) = %#v, want %#v", tc.key, tc.value, got, tc.want)
		}
	}
}
