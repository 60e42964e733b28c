package server

import (
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewOps returns the ops endpoint, on its own ServeMux: /healthz answers 200 while the process
// runs, /readyz 200 only while every role has credentials to serve (a 503 names those that have
// none), /metrics what gatherer collects. There is no pprof: the port is reachable from the
// cluster.
func NewOps(roles []Role, gatherer prometheus.Gatherer, opts ...Option) http.Handler {
	o := buildOptions(opts)
	roles = slices.Clone(roles)
	return newProbes(func() string {
		var missing []string
		for _, r := range roles {
			if fresh(r.Source.Servable(), o.clock.Now()) == nil {
				missing = append(missing, roleLabel(r.Name))
			}
		}
		if len(missing) == 0 {
			return ""
		}
		return "no servable credentials for " + strings.Join(missing, ", ")
	}, gatherer, o)
}

// roleLabel names a role in messages: the unnamed one is "the unnamed role".
func roleLabel(name string) string {
	if name == "" {
		return "the unnamed role"
	}
	return "role " + name
}

// NewProbes is NewOps for a process whose readiness is ready() (the webhook: its certificate
// loaded and its ServiceAccount cache synced).
func NewProbes(ready func() bool, gatherer prometheus.Gatherer, opts ...Option) http.Handler {
	return newProbes(func() string {
		if ready() {
			return ""
		}
		return "not ready"
	}, gatherer, buildOptions(opts))
}

// newProbes serves the probes; notReady says why the process is not ready, "" when it is.
func newProbes(notReady func() string, gatherer prometheus.Gatherer, o *options) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/healthz", wrap(EndpointHealthz, probe(func() string { return "" }), o))
	mux.Handle("/readyz", wrap(EndpointReadyz, probe(notReady), o))
	mux.Handle("/metrics", wrap(EndpointMetrics, promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{
		ErrorLog:            promLogger{o.log},
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             WriteTimeout / 2,
	}), o))
	mux.Handle("/", wrap(EndpointOther, http.NotFoundHandler(), o))
	return mux
}

// probe answers GET and HEAD with 200 while notReady() says nothing, 503 with its reason
// otherwise.
func probe(notReady func() string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if why := notReady(); why != "" {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready: " + why + "\n"))
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
