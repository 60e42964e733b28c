package server

import (
	"fmt"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewOps returns the ops endpoint, on its own ServeMux: /healthz answers 200 while the process
// runs, /readyz 200 only while src has credentials to serve, /metrics what gatherer collects.
// There is no pprof: the port is reachable from the cluster.
func NewOps(src Source, gatherer prometheus.Gatherer, opts ...Option) http.Handler {
	o := buildOptions(opts)
	return newProbes(func() bool { return fresh(src.Servable(), o.clock.Now()) != nil }, gatherer, o)
}

// NewProbes is NewOps for a process whose readiness is ready() (the webhook: its certificate
// loaded and its ServiceAccount cache synced).
func NewProbes(ready func() bool, gatherer prometheus.Gatherer, opts ...Option) http.Handler {
	return newProbes(ready, gatherer, buildOptions(opts))
}

func newProbes(ready func() bool, gatherer prometheus.Gatherer, o *options) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/healthz", wrap(EndpointHealthz, probe(func() bool { return true }), o))
	mux.Handle("/readyz", wrap(EndpointReadyz, probe(ready), o))
	mux.Handle("/metrics", wrap(EndpointMetrics, promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{
		ErrorLog:            promLogger{o.log},
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             WriteTimeout / 2,
	}), o))
	mux.Handle("/", wrap(EndpointOther, http.NotFoundHandler(), o))
	return mux
}

// probe answers GET and HEAD with 200 while ok() holds, 503 otherwise.
func probe(ok func() bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if !ok() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready: no servable credentials\n"))
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
}

// promLogger passes promhttp's gathering errors to slog.
type promLogger struct{ log *slog.Logger }

func (l promLogger) Println(v ...any) {
	l.log.Warn("serving metrics", "error", fmt.Sprint(v...))
}
