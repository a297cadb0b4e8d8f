package devstack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// JaegerConfig says where and how to run Jaeger (all-in-one, spans kept in
// memory).
type JaegerConfig struct {
	// Dir holds jaeger.yaml (the configuration written here) and jaeger.log.
	Dir string
	// Host is the loopback address to listen on; default 127.0.0.1.
	Host string
	// QueryPort is the query API's HTTP port (16686 in `make up`), OTLPPort
	// the OTLP gRPC receiver's (4317) and OTLPHTTPPort the OTLP HTTP one
	// (4318); 0 picks a free one.
	QueryPort, OTLPPort, OTLPHTTPPort int
	// MaxTraces bounds the traces kept in memory; default 100,000.
	MaxTraces int
	// StartTimeout bounds the wait until the ports accept; default 60s.
	StartTimeout time.Duration
	// Daemon makes Jaeger outlive this program and writes Dir/jaeger.pid.
	Daemon bool
	// BinDir, when set, gets a link named jaeger to the built binary, and
	// Jaeger runs from there (make up's bin folder).
	BinDir string
	// Log receives devstack's own progress messages (and the build's, the
	// first time); nil discards them.
	Log *slog.Logger
}

// JaegerServer is a running Jaeger: an OTLP receiver and the query API
// (/api/services, /api/traces), from the binary JaegerBinary builds. That
// binary has no web UI assets: the UI needs the official Docker image.
type JaegerServer struct {
	cfg    JaegerConfig
	binary string
	proc   *process
}

// StartJaeger builds Jaeger if needed (JaegerBinary), writes its
// configuration to cfg.Dir and starts it, waiting until the query API and
// the OTLP receivers accept connections.
func StartJaeger(ctx context.Context, cfg JaegerConfig) (*JaegerServer, error) {
	if cfg.Dir == "" {
		return nil, errors.New("devstack: JaegerConfig.Dir is required")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("devstack: jaeger dir: %w", err)
	}
	cfg.Dir = dir
	cfg.Log = orDiscard(cfg.Log)
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.MaxTraces <= 0 {
		cfg.MaxTraces = 100_000
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 60 * time.Second
	}
	for _, p := range []*int{&cfg.QueryPort, &cfg.OTLPPort, &cfg.OTLPHTTPPort} {
		if *p == 0 {
			if *p, err = freePort(); err != nil {
				return nil, err
			}
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("devstack: create %s: %w", dir, err)
	}
	bin, err := JaegerBinary(ctx, cfg.Log)
	if err != nil {
		return nil, fmt.Errorf("devstack: jaeger binary: %w", err)
	}
	if cfg.BinDir != "" {
		link := filepath.Join(cfg.BinDir, "jaeger")
		if err := os.MkdirAll(cfg.BinDir, 0o755); err != nil {
			return nil, fmt.Errorf("devstack: create %s: %w", cfg.BinDir, err)
		}
		if err := os.Remove(link); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("devstack: replace %s: %w", link, err)
		}
		if err := os.Symlink(bin, link); err != nil {
			return nil, fmt.Errorf("devstack: link jaeger into %s: %w", cfg.BinDir, err)
		}
		bin = link
	}
	j := &JaegerServer{cfg: cfg, binary: bin}
	if cfg.Daemon {
		if p, err := findProcess(j.spec()); err == nil {
			return nil, fmt.Errorf("devstack: jaeger from %s is already running as pid %d", dir, p.pid)
		}
	}
	if err := os.WriteFile(j.configPath(), []byte(j.config()), 0o644); err != nil {
		return nil, fmt.Errorf("devstack: write jaeger.yaml: %w", err)
	}
	p, err := startProcess(j.spec())
	if err != nil {
		return nil, err
	}
	for _, addr := range []string{j.addr(cfg.QueryPort), j.addr(cfg.OTLPPort), j.addr(cfg.OTLPHTTPPort)} {
		if err := waitPort(ctx, p, addr, cfg.StartTimeout); err != nil {
			p.kill()
			return nil, fmt.Errorf("%w\n%s", err, p.logTail(30))
		}
	}
	j.proc = p
	cfg.Log.Info("jaeger serving", "query", j.QueryURL(), "otlp", j.OTLPEndpoint(), "pid", p.pid)
	return j, nil
}

// Jaeger starts a Jaeger for the test on free loopback ports with its files
// in a t.TempDir. t.Cleanup kills it; if the test failed, the tail of its
// log goes to the test log.
func Jaeger(t testing.TB) *JaegerServer {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "jaeger")
	var j *JaegerServer
	var err error
	for range portAttempts {
		j, err = StartJaeger(context.Background(), JaegerConfig{Dir: dir})
		if err == nil || !portTaken(err) {
			break
		}
	}
	if err != nil {
		t.Fatalf("devstack: start jaeger: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("devstack: jaeger at %s\n%s", j.QueryURL(), j.proc.logTail(30))
		}
		j.proc.kill()
	})
	return j
}

func (j *JaegerServer) addr(port int) string { return j.cfg.Host + ":" + strconv.Itoa(port) }

func (j *JaegerServer) configPath() string { return filepath.Join(j.cfg.Dir, "jaeger.yaml") }

// LogPath is Jaeger's log file.
func (j *JaegerServer) LogPath() string { return filepath.Join(j.cfg.Dir, "jaeger.log") }

// QueryURL is the base URL of the query API, e.g. http://127.0.0.1:16686.
func (j *JaegerServer) QueryURL() string { return "http://" + j.addr(j.cfg.QueryPort) }

// OTLPEndpoint is the OTLP gRPC receiver as OTEL_EXPORTER_OTLP_ENDPOINT
// takes it (http://: without TLS).
func (j *JaegerServer) OTLPEndpoint() string { return "http://" + j.addr(j.cfg.OTLPPort) }

// OTLPHTTPEndpoint is the OTLP HTTP receiver's base URL.
func (j *JaegerServer) OTLPHTTPEndpoint() string { return "http://" + j.addr(j.cfg.OTLPHTTPPort) }

// Env returns the variables that make a plantlake service export its spans
// to this Jaeger (servicekit/telemetry reads them).
func (j *JaegerServer) Env() []string {
	return []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + j.OTLPEndpoint(), "OTEL_EXPORTER_OTLP_INSECURE=true"}
}

// Pid is the process id.
func (j *JaegerServer) Pid() int { return j.proc.pid }

// Stop stops Jaeger with SIGTERM (its spans are in memory: they are gone).
func (j *JaegerServer) Stop() error { return j.proc.stop(10 * time.Second) }

func (j *JaegerServer) spec() procSpec {
	pid := ""
	if j.cfg.Daemon {
		pid = filepath.Join(j.cfg.Dir, "jaeger.pid")
	}
	return procSpec{
		name:    "jaeger",
		argv:    []string{j.binary, "--config", j.configPath()},
		logPath: j.LogPath(),
		pidFile: pid,
		marker:  j.configPath(),
		daemon:  j.cfg.Daemon,
	}
}

// config is Jaeger v2's (OpenTelemetry collector) configuration: the OTLP
// receivers, memory storage and the query API only, on the chosen ports
// (the built-in all-in-one configuration binds a dozen fixed ones).
func (j *JaegerServer) config() string {
	return fmt.Sprintf(`service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    resource:
      service.name: jaeger
    metrics:
      level: none
    logs:
      level: info
extensions:
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: %q
    grpc:
      endpoint: %q
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: %d
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %q
      http:
        endpoint: %q
processors:
  batch:
    timeout: 200ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`, j.addr(j.cfg.QueryPort), j.cfg.Host+":0", j.cfg.MaxTraces, j.addr(j.cfg.OTLPPort), j.addr(j.cfg.OTLPHTTPPort))
}

// JaegerTrace is one trace as Jaeger's query API returns it.
type JaegerTrace struct {
	TraceID string       `json:"traceID"`
	Spans   []JaegerSpan `json:"spans"`
	// Processes maps a span's ProcessID to the service that sent it.
	Processes map[string]struct {
		ServiceName string `json:"serviceName"`
	} `json:"processes"`
}

// JaegerSpan is one span of a JaegerTrace.
type JaegerSpan struct {
	TraceID       string `json:"traceID"`
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	// References are the parent (CHILD_OF) and the links (FOLLOWS_FROM).
	References []JaegerRef `json:"references"`
	// StartTime is in Unix microseconds, Duration in microseconds.
	StartTime int64  `json:"startTime"`
	Duration  int64  `json:"duration"`
	ProcessID string `json:"processID"`
	Tags      []struct {
		Key   string `json:"key"`
		Value any    `json:"value"`
	} `json:"tags"`
}

// JaegerRef is a span's reference to another span: its parent (RefType
// CHILD_OF) or a link (FOLLOWS_FROM).
type JaegerRef struct {
	RefType string `json:"refType"`
	TraceID string `json:"traceID"`
	SpanID  string `json:"spanID"`
}

// Parent returns the id of s's parent span ("" for a root).
func (s *JaegerSpan) Parent() string {
	for _, r := range s.References {
		if r.RefType == "CHILD_OF" {
			return r.SpanID
		}
	}
	return ""
}

// Links returns the spans s links to.
func (s *JaegerSpan) Links() []JaegerRef {
	var out []JaegerRef
	for _, r := range s.References {
		if r.RefType == "FOLLOWS_FROM" {
			out = append(out, r)
		}
	}
	return out
}

// Span returns the span of t with id spanID, nil if none.
func (t *JaegerTrace) Span(spanID string) *JaegerSpan {
	for i := range t.Spans {
		if t.Spans[i].SpanID == spanID {
			return &t.Spans[i]
		}
	}
	return nil
}

// Service returns the name of the service that sent s.
func (t *JaegerTrace) Service(s *JaegerSpan) string { return t.Processes[s.ProcessID].ServiceName }

// Traces asks the query API for up to limit recent traces with a span of
// service (and of operation, unless empty): GET /api/traces?service=...
func (j *JaegerServer) Traces(ctx context.Context, service, operation string, limit int) ([]JaegerTrace, error) {
	q := url.Values{"service": {service}, "limit": {strconv.Itoa(limit)}, "lookback": {"1h"}}
	if operation != "" {
		q.Set("operation", operation)
	}
	return j.getTraces(ctx, "/api/traces?"+q.Encode())
}

// Trace asks the query API for one trace by its hex id (nil, nil when
// Jaeger does not have it).
func (j *JaegerServer) Trace(ctx context.Context, traceID string) (*JaegerTrace, error) {
	ts, err := j.getTraces(ctx, "/api/traces/"+url.PathEscape(traceID))
	if err != nil || len(ts) == 0 {
		return nil, err
	}
	return &ts[0], nil
}

func (j *JaegerServer) getTraces(ctx context.Context, path string) ([]JaegerTrace, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.QueryURL()+path, nil)
	if err != nil {
		return nil, fmt.Errorf("devstack: jaeger query %s: %w", path, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("devstack: jaeger query %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("devstack: jaeger query %s: %w", path, err)
	}
	if resp.StatusCode == http.StatusNotFound {
		return nil, nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("devstack: jaeger query %s: %s: %s", path, resp.Status, body)
	}
	var out struct {
		Data []JaegerTrace `json:"data"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("devstack: jaeger query %s: decode: %w", path, err)
	}
	return out.Data, nil
}
