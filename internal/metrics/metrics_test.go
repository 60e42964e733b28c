package metrics

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func newTest(t *testing.T) (*Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	return New(reg, "v1.2.3"), reg
}

func TestSTSCall(t *testing.T) {
	tests := []struct {
		name   string
		calls  [][2]string
		expect string
	}{
		{
			name:  "success and errors by code",
			calls: [][2]string{{"success", ""}, {"success", ""}, {"error", "AccessDenied"}, {"error", "Throttling"}},
			expect: `
# HELP credsidecar_sts_requests_total STS calls (AssumeRoleWithWebIdentity and chained AssumeRole hops) by role ("" for the unnamed role), result and STS error code (empty on success).
# TYPE credsidecar_sts_requests_total counter
credsidecar_sts_requests_total{code="",result="success",role=""} 2
credsidecar_sts_requests_total{code="AccessDenied",result="error",role=""} 1
credsidecar_sts_requests_total{code="Throttling",result="error",role=""} 1
`,
		},
		{
			name:  "unbounded values are folded into other",
			calls: [][2]string{{"weird", "x"}, {"error", "arn:aws:iam::123456789012:role/x"}, {"error", strings.Repeat("A", 65)}},
			expect: `
# HELP credsidecar_sts_requests_total STS calls (AssumeRoleWithWebIdentity and chained AssumeRole hops) by role ("" for the unnamed role), result and STS error code (empty on success).
# TYPE credsidecar_sts_requests_total counter
credsidecar_sts_requests_total{code="other",result="error",role=""} 2
credsidecar_sts_requests_total{code="x",result="other",role=""} 1
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, reg := newTest(t)
			for _, c := range tt.calls {
				m.STSCall(c[0], c[1], 30*time.Millisecond)
			}
			if err := testutil.GatherAndCompare(reg, strings.NewReader(tt.expect), "credsidecar_sts_requests_total"); err != nil {
				t.Fatal(err)
			}
			if got := testutil.CollectAndCount(m.stsDuration); got != 1 {
				t.Fatalf("duration histogram series = %d, want 1", got)
			}
		})
	}
}

func TestSTSDuration(t *testing.T) {
	m, reg := newTest(t)
	m.STSCall("success", "", 40*time.Millisecond)
	m.STSCall("error", "Throttling", 3*time.Second)
	const want = `
# HELP credsidecar_sts_request_duration_seconds Duration of AssumeRoleWithWebIdentity calls, including the SDK's retries.
# TYPE credsidecar_sts_request_duration_seconds histogram
credsidecar_sts_request_duration_seconds_bucket{le="0.01"} 0
credsidecar_sts_request_duration_seconds_bucket{le="0.025"} 0
credsidecar_sts_request_duration_seconds_bucket{le="0.05"} 1
credsidecar_sts_request_duration_seconds_bucket{le="0.1"} 1
credsidecar_sts_request_duration_seconds_bucket{le="0.25"} 1
credsidecar_sts_request_duration_seconds_bucket{le="0.5"} 1
credsidecar_sts_request_duration_seconds_bucket{le="1"} 1
credsidecar_sts_request_duration_seconds_bucket{le="2.5"} 1
credsidecar_sts_request_duration_seconds_bucket{le="5"} 2
credsidecar_sts_request_duration_seconds_bucket{le="10"} 2
credsidecar_sts_request_duration_seconds_bucket{le="30"} 2
credsidecar_sts_request_duration_seconds_bucket{le="+Inf"} 2
credsidecar_sts_request_duration_seconds_sum 3.04
credsidecar_sts_request_duration_seconds_count 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "credsidecar_sts_request_duration_seconds"); err != nil {
		t.Fatal(err)
	}
}

func TestExpiryGauges(t *testing.T) {
	tests := []struct {
		name        string
		setCreds    bool
		credsExpiry time.Time
		tokenExpiry []time.Time
		wantCreds   float64
		wantToken   float64
		wantReloads float64
	}{
		{name: "never set", wantCreds: 0, wantToken: 0},
		{
			name:        "set",
			setCreds:    true,
			credsExpiry: time.Date(2026, 8, 22, 13, 4, 5, 500_000_000, time.UTC),
			tokenExpiry: []time.Time{time.Unix(1_700_000_000, 0), time.Unix(1_700_003_600, 0)},
			wantCreds:   1787403845.5,
			wantToken:   1_700_003_600,
			wantReloads: 2,
		},
		{name: "zero time reads as unset", setCreds: true, credsExpiry: time.Time{}, tokenExpiry: []time.Time{{}}, wantReloads: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _ := newTest(t)
			if tt.setCreds {
				m.CredentialsUpdated(tt.credsExpiry)
			}
			for _, e := range tt.tokenExpiry {
				m.TokenReloaded(e)
			}
			if got := testutil.ToFloat64(m.credsExpiry.WithLabelValues("")); got != tt.wantCreds {
				t.Errorf("credentials expiry = %v, want %v", got, tt.wantCreds)
			}
			if got := testutil.ToFloat64(m.tokenExpiry); got != tt.wantToken {
				t.Errorf("token expiry = %v, want %v", got, tt.wantToken)
			}
			if got := testutil.ToFloat64(m.tokenReloads); got != tt.wantReloads {
				t.Errorf("token reloads = %v, want %v", got, tt.wantReloads)
			}
		})
	}
}

func TestObserveHTTP(t *testing.T) {
	m, reg := newTest(t)
	m.ObserveHTTP(EndpointCredentials, 200, 30*time.Microsecond)
	m.ObserveHTTP(EndpointCredentials, 200, 40*time.Microsecond)
	m.ObserveHTTP(EndpointCredentials, 401, 20*time.Microsecond)
	m.ObserveHTTP(EndpointReadyz, 503, time.Millisecond)
	m.ObserveHTTP("/v1/credentials/../etc/passwd", 404, time.Millisecond)
	m.ObserveHTTP(EndpointHealthz, 1000, time.Millisecond)
	m.ObserveHTTP(EndpointIMDS, 401, time.Millisecond)
	const want = `
# HELP credsidecar_http_requests_total HTTP requests served, by endpoint and status code.
# TYPE credsidecar_http_requests_total counter
credsidecar_http_requests_total{code="200",endpoint="credentials"} 2
credsidecar_http_requests_total{code="401",endpoint="credentials"} 1
credsidecar_http_requests_total{code="503",endpoint="readyz"} 1
credsidecar_http_requests_total{code="404",endpoint="other"} 1
credsidecar_http_requests_total{code="0",endpoint="healthz"} 1
credsidecar_http_requests_total{code="401",endpoint="imds"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "credsidecar_http_requests_total"); err != nil {
		t.Fatal(err)
	}
}

// The credentials endpoint answers in microseconds: those answers must spread over the first
// buckets, not all land in one.
func TestHTTPDurationBuckets(t *testing.T) {
	m, reg := newTest(t)
	m.ObserveHTTP(EndpointCredentials, 200, 20*time.Microsecond)
	m.ObserveHTTP(EndpointCredentials, 200, 40*time.Microsecond)
	m.ObserveHTTP(EndpointCredentials, 503, 800*time.Millisecond)
	const want = `
# HELP credsidecar_http_request_duration_seconds Time to answer HTTP requests, by endpoint.
# TYPE credsidecar_http_request_duration_seconds histogram
credsidecar_http_request_duration_seconds_bucket{endpoint="credentials",le="2.5e-05"} 1
credsidecar_http_request_duration_seconds_bucket{endpoint="credentials",le="5e-05"} 2
credsidecar_http_request_duration_seconds_bucket{endpoint="credentials",le="0.0001"} 2
credsidecar_http_request_duration_seconds_bucket{endpoint="credentials",le="0.00025"} 2
credsidecar_http_request_duration_seconds_bucket{endpoint="credentials",le="0.0005"} 2
credsidecar_http_request_duration_seconds_bucket{endpoint="credentials",le="0.001"} 2
credsidecar_http_request_duration_seconds_bucket{endpoint="credentials",le="0.0025"} 2
credsidecar_http_request_duration_seconds_bucket{endpoint="credentials",le="0.005"} 2
credsidecar_http_request_duration_seconds_bucket{endpoint="credentials",le="0.01"} 2
credsidecar_http_request_duration_seconds_bucket{endpoint="credentials",le="0.025"} 2
credsidecar_http_request_duration_seconds_bucket{endpoint="credentials",le="0.05"} 2
credsidecar_http_request_duration_seconds_bucket{endpoint="credentials",le="0.1"} 2
credsidecar_http_request_duration_seconds_bucket{endpoint="credentials",le="0.25"} 2
credsidecar_http_request_duration_seconds_bucket{endpoint="credentials",le="0.5"} 2
credsidecar_http_request_duration_seconds_bucket{endpoint="credentials",le="1"} 3
credsidecar_http_request_duration_seconds_bucket{endpoint="credentials",le="2.5"} 3
credsidecar_http_request_duration_seconds_bucket{endpoint="credentials",le="+Inf"} 3
credsidecar_http_request_duration_seconds_sum{endpoint="credentials"} 0.80006
credsidecar_http_request_duration_seconds_count{endpoint="credentials"} 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "credsidecar_http_request_duration_seconds"); err != nil {
		t.Fatal(err)
	}
}

// TestReady: one credsidecar_ready series per configured role, read at scrape time, and the
// expiry gauge by role; before SetReady the unnamed role reads 0.
func TestReady(t *testing.T) {
	m, reg := newTest(t)
	compare := func(want string) {
		t.Helper()
		want = "# HELP credsidecar_ready 1 while the role's credentials can be served, 0 otherwise, by role (\"\" for the unnamed role).\n" +
			"# TYPE credsidecar_ready gauge\n" + want
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "credsidecar_ready"); err != nil {
			t.Fatal(err)
		}
	}
	compare(`credsidecar_ready{role=""} 0` + "\n")
	ready := map[string]bool{"reader": true}
	m.SetReady([]string{"", "reader", "writer"}, func(role string) bool { return ready[role] })
	compare(`credsidecar_ready{role=""} 0` + "\n" + `credsidecar_ready{role="reader"} 1` + "\n" + `credsidecar_ready{role="writer"} 0` + "\n")
	ready[""], ready["writer"] = true, true
	compare(`credsidecar_ready{role=""} 1` + "\n" + `credsidecar_ready{role="reader"} 1` + "\n" + `credsidecar_ready{role="writer"} 1` + "\n")

	m.CredentialsUpdated(time.Unix(1000, 0))
	m.ForRole("reader").CredentialsUpdated(time.Unix(2000, 0))
	m.ForRole("reader").STSCall(ResultSuccess, "", time.Millisecond)
	want := `
# HELP credsidecar_credentials_expiry_timestamp_seconds Unix time at which the newest credentials from STS expire, by role ("" for the unnamed role).
# TYPE credsidecar_credentials_expiry_timestamp_seconds gauge
credsidecar_credentials_expiry_timestamp_seconds{role=""} 1000
credsidecar_credentials_expiry_timestamp_seconds{role="reader"} 2000
# HELP credsidecar_sts_requests_total STS calls (AssumeRoleWithWebIdentity and chained AssumeRole hops) by role ("" for the unnamed role), result and STS error code (empty on success).
# TYPE credsidecar_sts_requests_total counter
credsidecar_sts_requests_total{code="",result="success",role="reader"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "credsidecar_credentials_expiry_timestamp_seconds",
		"credsidecar_sts_requests_total"); err != nil {
		t.Fatal(err)
	}
}

func TestBuildInfoAndNames(t *testing.T) {
	m, reg := newTest(t)
	m.SetReady([]string{""}, func(string) bool { return true })
	want := `
# HELP credsidecar_build_info Always 1; labels carry the sidecar's version and the Go version it was built with.
# TYPE credsidecar_build_info gauge
credsidecar_build_info{goversion="` + runtime.Version() + `",version="v1.2.3"} 1
# HELP credsidecar_ready 1 while the role's credentials can be served, 0 otherwise, by role ("" for the unnamed role).
# TYPE credsidecar_ready gauge
credsidecar_ready{role=""} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "credsidecar_build_info", "credsidecar_ready"); err != nil {
		t.Fatal(err)
	}
	// Vectors appear only once used; touch each so the exact set of names can be checked.
	m.STSCall("success", "", time.Millisecond)
	m.CredentialsUpdated(time.Now())
	m.ObserveHTTP(EndpointMetrics, 200, time.Millisecond)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	wantNames := []string{
		"credsidecar_build_info",
		"credsidecar_credentials_expiry_timestamp_seconds",
		"credsidecar_http_request_duration_seconds",
		"credsidecar_http_requests_total",
		"credsidecar_ready",
		"credsidecar_sts_request_duration_seconds",
		"credsidecar_sts_requests_total",
		"credsidecar_token_expiry_timestamp_seconds",
		"credsidecar_token_reloads_total",
	}
	if strings.Join(names, "\n") != strings.Join(wantNames, "\n") {
		t.Fatalf("metric names:\n%s\nwant:\n%s", strings.Join(names, "\n"), strings.Join(wantNames, "\n"))
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}
}

func TestNewTwiceOnOneRegistryPanics(t *testing.T) {
	reg := prometheus.NewRegistry()
	New(reg, "v1")
	defer func() {
		if recover() == nil {
			t.Fatal("second New on the same registry did not panic")
		}
	}()
	New(reg, "v1")
}

func BenchmarkObserveHTTP(b *testing.B) {
	m := New(prometheus.NewRegistry(), "bench")
	b.ReportAllocs()
	for b.Loop() {
		m.ObserveHTTP(EndpointCredentials, 200, 30*time.Microsecond)
	}
}
