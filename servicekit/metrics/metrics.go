// Package metrics gives a plantlake service its Prometheus registry (with
// the Go runtime and process collectors) and the HTTP server that exposes
// it at /metrics.
package metrics

import (
	"net/http"
	httppprof "net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Path is where the metrics are served.
const Path = "/metrics"

// NewRegistry returns a registry holding the Go runtime and process
// collectors; the service registers its own collectors on it.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// Handler serves reg's metrics in the Prometheus exposition formats.
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, EnableOpenMetrics: true})
}

// PprofPath is where Go's profiles are served when NewServer is asked to.
const PprofPath = "/debug/pprof/"

// NewServer returns an HTTP server that serves reg at /metrics, a liveness
// answer ("ok") at /healthz and, with pprof, Go's profiles under
// PprofPath; the caller serves and shuts it down (servicekit.Run does
// both).
func NewServer(reg *prometheus.Registry, pprof bool) *http.Server {
	mux := http.NewServeMux()
	if pprof {
		mux.HandleFunc(PprofPath, httppprof.Index)
		mux.HandleFunc(PprofPath+"cmdline", httppprof.Cmdline)
		mux.HandleFunc(PprofPath+"profile", httppprof.Profile)
		mux.HandleFunc(PprofPath+"symbol", httppprof.Symbol)
		mux.HandleFunc(PprofPath+"trace", httppprof.Trace)
	}
	mux.Handle(Path, Handler(reg))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	return &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
}
