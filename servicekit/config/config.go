// Package config holds the settings every plantlake service shares (listen
// addresses, Kafka, the catalog, the warehouse, MQTT, logging, shutdown and
// auth), registered as flags on a service's own *flag.FlagSet, with each
// flag's default taken from the environment variable PLANTLAKE_<FLAG> in
// upper snake case (--catalog-addr ← PLANTLAKE_CATALOG_ADDR).
//
// A service fills in its own defaults, registers the groups of shared flags
// it needs and its own flags, then calls Parse:
//
//	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
//	shared := config.Shared{GRPCAddr: ":7003", MetricsAddr: ":9103"}
//	shared.Register(fs, config.Kafka, config.Catalog)
//	batch := fs.Int("batch-rows", 100000, "rows per commit")
//	if err := config.Parse(fs, os.Args[1:]); err != nil { ... }
//	if err := shared.Validate(); err != nil { ... }
package config

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// EnvPrefix is the prefix of the environment variables that give flags
// their defaults.
const EnvPrefix = "PLANTLAKE_"

// Defaults of the shared settings (DESIGN.md section 3).
const (
	DefaultKafkaBrokers    = "localhost:9092"
	DefaultCatalogAddr     = "localhost:7001"
	DefaultWarehouse       = "./warehouse"
	DefaultMQTTBroker      = "tcp://localhost:1883"
	DefaultKafkaPartitions = 6
	DefaultLogFormat       = "text"
	DefaultShutdownTimeout = 10 * time.Second
	// DefaultMaxRequestBytes bounds a gRPC request a server receives: a
	// commit of 100,000 adds is about 13 MiB.
	DefaultMaxRequestBytes = 16 << 20
)

// ErrInvalid is wrapped by every validation error of Shared.Validate.
var ErrInvalid = errors.New("invalid setting")

// Group selects a set of optional shared flags. The flags every service has
// (--grpc-addr, --metrics-addr, --log-level, --log-format,
// --shutdown-timeout, and the security flags --auth-token, --identities,
// --tls-cert, --tls-key, --tls-client-ca, --insecure-listen-any and
// --max-request-bytes) need no group.
type Group int

const (
	// Kafka registers --kafka-brokers, --kafka-config and --kafka-partitions.
	Kafka Group = iota + 1
	// Catalog registers --catalog-addr, for services that call the catalog,
	// with the client's TLS flags --tls-ca, --tls-client-cert and
	// --tls-client-key.
	Catalog
	// Warehouse registers --warehouse (the catalog only).
	Warehouse
	// MQTT registers --mqtt-broker (the bridge).
	MQTT
)

// Shared holds the shared settings. Fields set before Register are the
// flag defaults (GRPCAddr and MetricsAddr differ per service); zero fields
// get the package defaults. After Parse the fields hold the final values.
type Shared struct {
	// GRPCAddr is the gRPC listen address (--grpc-addr).
	GRPCAddr string
	// MetricsAddr is the HTTP /metrics listen address (--metrics-addr);
	// empty turns the metrics server off.
	MetricsAddr string
	// KafkaBrokers are the Kafka bootstrap servers, comma-separated (--kafka-brokers).
	KafkaBrokers string
	// KafkaConfig holds extra librdkafka settings (--kafka-config key=value, repeatable).
	KafkaConfig KeyValues
	// KafkaPartitions is the partition count of topics the service creates (--kafka-partitions).
	KafkaPartitions int
	// CatalogAddr is the catalog's gRPC address (--catalog-addr): host:port,
	// or "unix:///path" for the socket of the catalog's --unix-socket.
	CatalogAddr string
	// Warehouse is the warehouse root, a folder or a file:// URI (--warehouse).
	Warehouse string
	// MQTTBroker is the MQTT broker URL (--mqtt-broker).
	MQTTBroker string
	// LogLevel is the minimum level logged (--log-level: debug, info, warn, error).
	LogLevel slog.Level
	// LogFormat is "text" or "json" (--log-format).
	LogFormat string
	// ShutdownTimeout bounds the graceful shutdown (--shutdown-timeout).
	ShutdownTimeout time.Duration
	// AuthToken is the bearer token the service presents when it calls
	// another service (--auth-token). Without Identities the gRPC server
	// also accepts it, as an admin named "auth-token" (the shared-token mode
	// of earlier versions).
	AuthToken string
	// Identities is the identities file that says who may call the gRPC
	// server and what they may do (--identities; see package identity);
	// reloaded on SIGHUP.
	Identities string
	// TLSCert and TLSKey are the gRPC server's certificate and key files
	// (--tls-cert, --tls-key); empty serves plaintext.
	TLSCert, TLSKey string
	// TLSClientCA is the CA file that client certificates are verified
	// against (--tls-client-ca); a verified certificate proves an identity.
	TLSClientCA string
	// TLSCA is the CA file the gRPC clients verify servers against
	// (--tls-ca); set, the clients use TLS.
	TLSCA string
	// TLSClientCert and TLSClientKey are the certificate and key the gRPC
	// clients present (--tls-client-cert, --tls-client-key); set, the
	// clients use TLS.
	TLSClientCert, TLSClientKey string
	// InsecureListenAny allows a gRPC listen address other than loopback
	// without credentials or TLS (--insecure-listen-any).
	InsecureListenAny bool
	// Pprof serves Go's profiles at /debug/pprof/ on the metrics address
	// (--pprof). Off by default: the metrics port is often published, and a
	// CPU profile costs the service CPU while it runs.
	Pprof bool
	// MaxRequestBytes is the largest gRPC request the server receives
	// (--max-request-bytes); larger ones are refused with ResourceExhausted
	// before they are read.
	MaxRequestBytes int

	groups map[Group]bool
}

// Register adds the always-present shared flags and those of the given
// groups to fs, with the current field values (or the package defaults for
// zero fields) as defaults.
func (s *Shared) Register(fs *flag.FlagSet, groups ...Group) {
	s.applyDefaults()
	s.groups = make(map[Group]bool, len(groups))
	for _, g := range groups {
		s.groups[g] = true
	}
	fs.StringVar(&s.GRPCAddr, "grpc-addr", s.GRPCAddr, "gRPC listen address")
	fs.StringVar(&s.MetricsAddr, "metrics-addr", s.MetricsAddr, "HTTP /metrics listen address (empty: off)")
	fs.TextVar(&s.LogLevel, "log-level", s.LogLevel, "minimum log level: debug, info, warn, error")
	fs.StringVar(&s.LogFormat, "log-format", s.LogFormat, "log format: text or json")
	fs.DurationVar(&s.ShutdownTimeout, "shutdown-timeout", s.ShutdownTimeout, "how long a graceful shutdown may take before in-flight calls are cancelled")
	fs.StringVar(&s.AuthToken, "auth-token", s.AuthToken, "bearer token this service presents to other services; without --identities its gRPC server also requires it (as an admin)")
	fs.StringVar(&s.Identities, "identities", s.Identities, "JSON file of the identities that may call the gRPC server, with their tokens, certificate names and scopes (reloaded on SIGHUP)")
	fs.StringVar(&s.TLSCert, "tls-cert", s.TLSCert, "gRPC server certificate file (PEM; with --tls-key; reloaded on SIGHUP)")
	fs.StringVar(&s.TLSKey, "tls-key", s.TLSKey, "gRPC server private key file (PEM)")
	fs.StringVar(&s.TLSClientCA, "tls-client-ca", s.TLSClientCA, "CA file (PEM) that verifies client certificates; a verified certificate's name can be an identity (mTLS)")
	fs.BoolVar(&s.InsecureListenAny, "insecure-listen-any", s.InsecureListenAny, "allow a non-loopback --grpc-addr without --identities, --auth-token or --tls-cert")
	fs.BoolVar(&s.Pprof, "pprof", s.Pprof, "serve Go profiles at /debug/pprof/ on --metrics-addr (for diagnosing CPU and memory; keep that port private)")
	fs.IntVar(&s.MaxRequestBytes, "max-request-bytes", s.MaxRequestBytes, "largest gRPC request the server receives (larger: ResourceExhausted)")
	if s.groups[Kafka] {
		fs.StringVar(&s.KafkaBrokers, "kafka-brokers", s.KafkaBrokers, "Kafka bootstrap servers, comma-separated")
		fs.Var(&s.KafkaConfig, "kafka-config", "librdkafka setting key=value (repeatable; SASL, TLS, tuning)")
		fs.IntVar(&s.KafkaPartitions, "kafka-partitions", s.KafkaPartitions, "partitions of a topic the service creates when it finds it missing")
	}
	if s.groups[Catalog] {
		fs.StringVar(&s.CatalogAddr, "catalog-addr", s.CatalogAddr, "the catalog's gRPC address: host:port, or unix:///path for the catalog's --unix-socket on this machine")
		fs.StringVar(&s.TLSCA, "tls-ca", s.TLSCA, "CA file (PEM) that verifies the servers this service calls; set, calls use TLS")
		fs.StringVar(&s.TLSClientCert, "tls-client-cert", s.TLSClientCert, "client certificate file (PEM) presented to the servers this service calls (with --tls-client-key); set, calls use TLS")
		fs.StringVar(&s.TLSClientKey, "tls-client-key", s.TLSClientKey, "client private key file (PEM)")
	}
	if s.groups[Warehouse] {
		fs.StringVar(&s.Warehouse, "warehouse", s.Warehouse, "warehouse root: a folder or a file:// URI")
	}
	if s.groups[MQTT] {
		fs.StringVar(&s.MQTTBroker, "mqtt-broker", s.MQTTBroker, "MQTT broker URL (tcp://, ssl://, ws://, wss://)")
	}
}

func (s *Shared) applyDefaults() {
	if s.KafkaBrokers == "" {
		s.KafkaBrokers = DefaultKafkaBrokers
	}
	if s.KafkaPartitions == 0 {
		s.KafkaPartitions = DefaultKafkaPartitions
	}
	if s.CatalogAddr == "" {
		s.CatalogAddr = DefaultCatalogAddr
	}
	if s.Warehouse == "" {
		s.Warehouse = DefaultWarehouse
	}
	if s.MQTTBroker == "" {
		s.MQTTBroker = DefaultMQTTBroker
	}
	if s.LogFormat == "" {
		s.LogFormat = DefaultLogFormat
	}
	if s.ShutdownTimeout == 0 {
		s.ShutdownTimeout = DefaultShutdownTimeout
	}
	if s.MaxRequestBytes == 0 {
		s.MaxRequestBytes = DefaultMaxRequestBytes
	}
}

// Validate checks the registered settings and returns every problem found,
// each wrapping ErrInvalid and naming its flag.
func (s *Shared) Validate() error {
	var errs []error
	bad := func(flagName, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: --%s: %s", ErrInvalid, flagName, fmt.Sprintf(format, args...)))
	}
	if err := checkHostPort(s.GRPCAddr); err != nil {
		bad("grpc-addr", "%v", err)
	}
	if s.MetricsAddr != "" {
		if err := checkHostPort(s.MetricsAddr); err != nil {
			bad("metrics-addr", "%v", err)
		}
	}
	if s.LogFormat != "text" && s.LogFormat != "json" {
		bad("log-format", "%q is neither text nor json", s.LogFormat)
	}
	if s.ShutdownTimeout <= 0 {
		bad("shutdown-timeout", "%v is not positive", s.ShutdownTimeout)
	}
	if strings.ContainsAny(s.AuthToken, " \t\r\n") {
		bad("auth-token", "contains white space")
	}
	if (s.TLSCert == "") != (s.TLSKey == "") {
		bad("tls-cert", "--tls-cert and --tls-key go together")
	}
	if s.TLSClientCA != "" && s.TLSCert == "" {
		bad("tls-client-ca", "needs --tls-cert and --tls-key (client certificates are only sent over TLS)")
	}
	if (s.TLSClientCert == "") != (s.TLSClientKey == "") {
		bad("tls-client-cert", "--tls-client-cert and --tls-client-key go together")
	}
	if s.MaxRequestBytes < 4<<10 {
		bad("max-request-bytes", "%d is less than 4 KiB", s.MaxRequestBytes)
	}
	if err := checkHostPort(s.GRPCAddr); err == nil && !s.Secured() && !s.InsecureListenAny {
		if host, _, _ := net.SplitHostPort(s.GRPCAddr); host != "" && !isLoopback(host) {
			bad("grpc-addr", "%q is not a loopback address, and without --identities, --auth-token or --tls-cert anyone "+
				"who reaches it could call every method: configure one, listen on 127.0.0.1, or pass --insecure-listen-any", s.GRPCAddr)
		}
	}
	if s.groups[Kafka] {
		if strings.TrimSpace(s.KafkaBrokers) == "" {
			bad("kafka-brokers", "empty")
		}
		if s.KafkaPartitions <= 0 {
			bad("kafka-partitions", "%d is not positive", s.KafkaPartitions)
		}
	}
	if s.groups[Catalog] {
		if err := CheckTarget(s.CatalogAddr); err != nil {
			bad("catalog-addr", "%v", err)
		}
	}
	if s.groups[Warehouse] && strings.TrimSpace(s.Warehouse) == "" {
		bad("warehouse", "empty")
	}
	if s.groups[MQTT] {
		u, err := url.Parse(s.MQTTBroker)
		switch {
		case err != nil:
			bad("mqtt-broker", "%v", err)
		case u.Scheme != "tcp" && u.Scheme != "ssl" && u.Scheme != "tls" && u.Scheme != "mqtt" &&
			u.Scheme != "mqtts" && u.Scheme != "ws" && u.Scheme != "wss":
			bad("mqtt-broker", "%q: scheme must be tcp, ssl, tls, mqtt, mqtts, ws or wss", s.MQTTBroker)
		case u.Host == "":
			bad("mqtt-broker", "%q has no host", s.MQTTBroker)
		}
	}
	return errors.Join(errs...)
}

// Secured says whether the gRPC server checks who calls it or encrypts
// the connection: an identities file, a shared token or a TLS certificate
// is configured.
func (s *Shared) Secured() bool {
	return s.Identities != "" || s.AuthToken != "" || s.TLSCert != ""
}

// ListenAddr returns the address the gRPC server listens on. Without
// security (Secured) and without --insecure-listen-any, an address with an
// empty host (":7001", the services' defaults) listens on loopback only,
// and loopbackOnly is true so that the service can say so; Validate has
// refused every other non-loopback address in that case.
func (s *Shared) ListenAddr() (addr string, loopbackOnly bool) {
	host, port, err := net.SplitHostPort(s.GRPCAddr)
	if err != nil || s.Secured() || s.InsecureListenAny {
		return s.GRPCAddr, false
	}
	if host == "" {
		return net.JoinHostPort("127.0.0.1", port), true
	}
	return s.GRPCAddr, isLoopback(host)
}

// isLoopback says whether a listen host is a loopback name or address.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// CheckTarget checks an address a service dials: host:port, or a Unix
// socket as gRPC names one, "unix:///absolute/path" or "unix:relative/path"
// (a server that listens there: the catalog's --unix-socket).
func CheckTarget(addr string) error {
	rest, ok := strings.CutPrefix(addr, "unix:")
	if !ok {
		return checkHostPort(addr)
	}
	p := rest
	if after, ok := strings.CutPrefix(rest, "//"); ok {
		if !strings.HasPrefix(after, "/") {
			return fmt.Errorf("%q: a unix:// address takes an absolute path and no host (unix:///run/plantlake/catalog.sock)", addr)
		}
		p = after
	}
	if p == "" {
		return fmt.Errorf("%q names no socket path", addr)
	}
	return nil
}

func checkHostPort(addr string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("%q is not host:port: %w", addr, err)
	}
	return nil
}

// EnvName returns the environment variable that gives flag name its
// default: "catalog-addr" → "PLANTLAKE_CATALOG_ADDR".
func EnvName(flagName string) string {
	return EnvPrefix + strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(flagName))
}

// ApplyEnv sets every flag of fs whose environment variable (EnvName) is
// set to that variable's value, making it the default shown by --help
// (masked as "***" for flags that may hold secrets: names with "token",
// "password", "secret" or "credential", and --kafka-config), and adds the
// variable's name to every flag's usage text. Call it after all flags are
// registered and before fs.Parse; Parse does both.
func ApplyEnv(fs *flag.FlagSet) error {
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		env := EnvName(f.Name)
		note := "(env " + env + ")"
		if !strings.Contains(f.Usage, note) {
			f.Usage += " " + note
		}
		v, ok := os.LookupEnv(env)
		if !ok {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("%w: %s=%q (default of --%s): %w", ErrInvalid, env, v, f.Name, err))
			return
		}
		f.DefValue = f.Value.String()
		if mayHoldSecret(f.Name) {
			f.DefValue = "***"
		}
	})
	return errors.Join(errs...)
}

// mayHoldSecret says whether a flag's value must not be printed by --help.
func mayHoldSecret(flagName string) bool {
	for _, word := range []string{"token", "password", "secret", "credential"} {
		if strings.Contains(flagName, word) {
			return true
		}
	}
	return flagName == "kafka-config"
}

// Parse applies the environment defaults to fs (ApplyEnv), then parses args.
// With -h or --help it returns flag.ErrHelp after fs printed its usage.
func Parse(fs *flag.FlagSet, args []string) error {
	if err := ApplyEnv(fs); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("parse flags: %w", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", ErrInvalid, fs.Args())
	}
	return nil
}

// KeyValues is a repeatable key=value flag. Each value may also hold several
// pairs separated by commas ("a=1,b=2"); a comma-separated part without "="
// continues the previous value, so "debug=broker,topic" stays one setting.
// Later settings of a key replace earlier ones; an environment default
// comes first, so command-line values override it key by key.
type KeyValues map[string]string

// String returns the pairs sorted by key, comma-separated.
func (kv KeyValues) String() string {
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + kv[k]
	}
	return strings.Join(parts, ",")
}

// Set adds the pairs of one flag value.
func (kv *KeyValues) Set(value string) error {
	if *kv == nil {
		*kv = KeyValues{}
	}
	var key string
	for i, part := range strings.Split(value, ",") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			if i == 0 {
				return fmt.Errorf("%q is not key=value", part)
			}
			(*kv)[key] += "," + part
			continue
		}
		k = strings.TrimSpace(k)
		if k == "" {
			return fmt.Errorf("%q has an empty key", part)
		}
		key = k
		(*kv)[key] = v
	}
	return nil
}

// KafkaValue is the value to put in a confluent-kafka-go ConfigMap for a
// --kafka-config setting. librdkafka's own properties are strings, but the
// Go client's "go.*" properties (go.logs.channel.enable,
// go.events.channel.size, ...) must be Go booleans or integers: those are
// converted when they parse as one, and anything else is left for the client
// to refuse with its own message.
func KafkaValue(key, value string) any {
	if !strings.HasPrefix(key, "go.") {
		return value
	}
	if b, err := strconv.ParseBool(value); err == nil {
		return b
	}
	if n, err := strconv.Atoi(value); err == nil {
		return n
	}
	return value
}
