// Package metrics owns the sidecar's Prometheus metrics: what the STS exchange, the projected
// token and the HTTP endpoints report. Every label value comes from a small fixed set, so
// no role ARN, pod name or request path ever becomes a time series.
package metrics

import (
	"runtime"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/credsidecar/credsidecar/internal/creds"
)

// Endpoint label values of the HTTP metrics; anything else is counted as EndpointOther.
const (
	EndpointCredentials = "credentials"
	EndpointHealthz     = "healthz"
	EndpointReadyz      = "readyz"
	EndpointMetrics     = "metrics"
	EndpointIMDS        = "imds"
	EndpointOther       = "other"
)

// STS call results as creds.Observer reports them; anything else is counted as "other".
const (
	ResultSuccess = "success"
	ResultError   = "error"
)

// Metrics records the sidecar's metrics. Its methods are safe for concurrent use.
type Metrics struct {
	stsRequests  *prometheus.CounterVec
	stsDuration  prometheus.Histogram
	credsExpiry  *prometheus.GaugeVec
	tokenExpiry  prometheus.Gauge
	tokenReloads prometheus.Counter
	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
	ready        atomic.Pointer[readiness]
	// hot caches, per endpoint and usual status, the series a request updates, resolved on
	// first use (so unused ones never appear): a label lookup per request would be most of the
	// endpoint's own cost.
	hot [len(endpoints)][len(hotCodes)]atomic.Pointer[hotSeries]
}

// endpoints are the endpoint label's values, EndpointOther last.
var endpoints = [...]string{EndpointCredentials, EndpointHealthz, EndpointReadyz, EndpointMetrics, EndpointIMDS, EndpointOther}

// hotCodes are the statuses the endpoints answer in normal operation and at start-up.
var hotCodes = [...]int{200, 401, 404, 405, 503}

type hotSeries struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

var _ creds.Observer = (*Metrics)(nil)

// httpBuckets span the credentials endpoint's range: answers from memory take tens of
// microseconds, a cold start waits up to about a second for the first STS call.
var httpBuckets = []float64{
	0.000025, 0.00005, 0.0001, 0.00025, 0.0005,
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
}

// stsBuckets span a healthy regional STS call (tens of milliseconds) up to the SDK's retries.
var stsBuckets = []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// New registers the sidecar's metrics on reg. It panics if they are already registered there,
// which only a programming error can cause, as with prometheus.MustRegister.
func New(reg prometheus.Registerer, version string) *Metrics {
	m := &Metrics{
		stsRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credsidecar_sts_requests_total",
			Help: "STS calls (AssumeRoleWithWebIdentity and chained AssumeRole hops) by role (\"\" for the unnamed role), result and STS error code (empty on success).",
		}, []string{"role", "result", "code"}),
		stsDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "credsidecar_sts_request_duration_seconds",
			Help:    "Duration of AssumeRoleWithWebIdentity calls, including the SDK's retries.",
			Buckets: stsBuckets,
		}),
		credsExpiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "credsidecar_credentials_expiry_timestamp_seconds",
			Help: "Unix time at which the newest credentials from STS expire, by role (\"\" for the unnamed role).",
		}, []string{"role"}),
		tokenExpiry: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "credsidecar_token_expiry_timestamp_seconds",
			Help: "Unix time at which the current projected service-account token expires.",
		}),
		tokenReloads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "credsidecar_token_reloads_total",
			Help: "Times a new projected service-account token was read (rotation or recovery).",
		}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credsidecar_http_requests_total",
			Help: "HTTP requests served, by endpoint and status code.",
		}, []string{"endpoint", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "credsidecar_http_request_duration_seconds",
			Help:    "Time to answer HTTP requests, by endpoint.",
			Buckets: httpBuckets,
		}, []string{"endpoint"}),
	}
	readyOpts := prometheus.GaugeOpts{
		Name: "credsidecar_ready",
		Help: "1 while the role's credentials can be served, 0 otherwise, by role (\"\" for the unnamed role).",
	}
	ready := &readyCollector{m: m, desc: prometheus.NewDesc(readyOpts.Name, readyOpts.Help, []string{"role"}, nil)}
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "credsidecar_build_info",
		Help: "Always 1; labels carry the sidecar's version and the Go version it was built with.",
	}, []string{"version", "goversion"})
	buildInfo.WithLabelValues(version, runtime.Version()).Set(1)

	reg.MustRegister(m.stsRequests, m.stsDuration, m.credsExpiry, m.tokenExpiry, m.tokenReloads,
		m.httpRequests, m.httpDuration, ready, buildInfo)
	return m
}

// readiness is what credsidecar_ready reports: the roles, and whether each is servable.
type readiness struct {
	roles []string
	ready func(role string) bool
}

// SetReady sets the roles credsidecar_ready reports (the configured names, "" for the unnamed
// role: a bounded set) and how to tell whether each can be served. Until it is called the
// gauge reads 0 for the unnamed role. It exists because the credentials sources are built
// after the metrics they report to.
func (m *Metrics) SetReady(roles []string, ready func(role string) bool) {
	m.ready.Store(&readiness{roles: slices.Clone(roles), ready: ready})
}

// readyCollector reports credsidecar_ready for each role at scrape time.
type readyCollector struct {
	m    *Metrics
	desc *prometheus.Desc
}

func (c *readyCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *readyCollector) Collect(ch chan<- prometheus.Metric) {
	r := c.m.ready.Load()
	if r == nil {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, 0, "")
		return
	}
	for _, role := range r.roles {
		v := 0.0
		if r.ready(role) {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v, role)
	}
}

// ForRole returns the observer of one named role's credentials manager: its STS calls and its
// credentials' expiry are reported under role=name; token events are the sidecar's.
func (m *Metrics) ForRole(name string) creds.Observer {
	return roleObserver{Metrics: m, role: name, expiry: m.credsExpiry.WithLabelValues(name)}
}

type roleObserver struct {
	*Metrics
	role   string
	expiry prometheus.Gauge
}

func (o roleObserver) CredentialsUpdated(expiry time.Time) { o.expiry.Set(unixSeconds(expiry)) }

func (o roleObserver) STSCall(result, code string, took time.Duration) {
	o.stsCall(o.role, result, code, took)
}

// STSCall counts one STS call of the unnamed role and its duration.
func (m *Metrics) STSCall(result, code string, took time.Duration) { m.stsCall("", result, code, took) }

func (m *Metrics) stsCall(role, result, code string, took time.Duration) {
	if result != ResultSuccess && result != ResultError {
		result = "other"
	}
	m.stsRequests.WithLabelValues(role, result, boundedCode(code)).Inc()
	m.stsDuration.Observe(took.Seconds())
}

// CredentialsUpdated records the expiry of the unnamed role's newly published credentials.
func (m *Metrics) CredentialsUpdated(expiry time.Time) {
	m.credsExpiry.WithLabelValues("").Set(unixSeconds(expiry))
}

// TokenReloaded counts a newly read projected token and records its expiry.
func (m *Metrics) TokenReloaded(expiry time.Time) {
	m.tokenReloads.Inc()
	m.tokenExpiry.Set(unixSeconds(expiry))
}

// ObserveHTTP counts one HTTP request. Unknown endpoint names are counted as EndpointOther,
// so a caller's mistake cannot grow the number of series.
func (m *Metrics) ObserveHTTP(endpoint string, code int, took time.Duration) {
	e := len(endpoints) - 1
	for i, name := range endpoints {
		if name == endpoint {
			e = i
			break
		}
	}
	endpoint = endpoints[e]
	if code < 100 || code > 599 {
		code = 0
	}
	for c, hot := range hotCodes {
		if hot != code {
			continue
		}
		s := m.hot[e][c].Load()
		if s == nil {
			s = &hotSeries{
				requests: m.httpRequests.WithLabelValues(endpoint, strconv.Itoa(code)),
				duration: m.httpDuration.WithLabelValues(endpoint),
			}
			m.hot[e][c].Store(s)
		}
		s.requests.Inc()
		s.duration.Observe(took.Seconds())
		return
	}
	m.httpRequests.WithLabelValues(endpoint, strconv.Itoa(code)).Inc()
	m.httpDuration.WithLabelValues(endpoint).Observe(took.Seconds())
}

// boundedCode keeps the code label to the short identifiers creds.ErrorCode returns. A value that
// does not look like one is counted as "other" rather than trusted as a label.
func boundedCode(code string) string {
	const maxLen = 64
	if len(code) > maxLen {
		return "other"
	}
	for _, r := range code {
		isWord := r == '_' || r == '.' || r == '-' ||
			(r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
		if !isWord {
			return "other"
		}
	}
	return code
}

// unixSeconds reports the zero time as 0, which dashboards read as "never set", rather than the
// overflowed value UnixNano gives for it.
func unixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}
