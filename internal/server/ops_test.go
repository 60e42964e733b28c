package server

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/credsidecar/credsidecar/internal/creds"
	"github.com/credsidecar/credsidecar/internal/metrics"
)

func TestOpsEndpoint(t *testing.T) {
	valid := testCreds(testStart.Add(time.Hour))
	tests := []struct {
		name     string
		method   string
		path     string
		creds    *creds.Credentials
		wantCode int
		wantBody string // prefix
	}{
		{name: "healthz without credentials", path: "/healthz", wantCode: 200, wantBody: "ok\n"},
		{name: "healthz HEAD", method: http.MethodHead, path: "/healthz", wantCode: 200},
		{name: "readyz with credentials", path: "/readyz", creds: valid, wantCode: 200, wantBody: "ok\n"},
		{name: "readyz without credentials", path: "/readyz", wantCode: 503, wantBody: "not ready: no servable credentials for the unnamed role\n"},
		{name: "readyz with expired credentials", path: "/readyz", creds: testCreds(testStart), wantCode: 503},
		{name: "readyz POST", method: http.MethodPost, path: "/readyz", creds: valid, wantCode: 405},
		{name: "metrics", path: "/metrics", wantCode: 200, wantBody: "# HELP credsidecar_build_info"},
		{name: "no pprof", path: "/debug/pprof/", wantCode: 404},
		{name: "no credentials here", path: "/v1/credentials", creds: valid, wantCode: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			m := metrics.New(reg, "test")
			src := funcSource{servable: func() *creds.Credentials { return tt.creds }}
			ts := startServer(t, NewOps([]Role{{Source: src}}, reg, WithClock(fakeClock()), WithObserver(m)), nil)
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			req, _ := http.NewRequest(method, ts.URL+tt.path, nil)
			resp, err := ts.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantCode || !strings.HasPrefix(string(body), tt.wantBody) {
				t.Fatalf("got %d %q, want %d %q...", resp.StatusCode, body, tt.wantCode, tt.wantBody)
			}
		})
	}
}

// TestEndpointLabels checks that both handlers report the endpoint names the metrics package
// keeps, so that no request lands in "other" by mistake and unknown paths do.
func TestEndpointLabels(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, "test")
	valid := testCreds(testStart.Add(time.Hour))
	var ready atomic.Bool
	src := funcSource{
		servable: func() *creds.Credentials {
			if ready.Load() {
				return valid
			}
			return nil
		},
	}
	credsSrv := startServer(t, NewCredentials(src, loadToken(t), WithClock(fakeClock()), WithObserver(m),
		WithColdStartWait(time.Millisecond)), nil)
	opsSrv := startServer(t, NewOps([]Role{{Source: src}}, reg, WithClock(fakeClock()), WithObserver(m)), nil)
	get := func(url, auth string) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	get(credsSrv.URL+CredentialsPath, authToken) // 503
	ready.Store(true)
	get(credsSrv.URL+CredentialsPath, authToken) // 200
	get(credsSrv.URL+CredentialsPath, "wrong")   // 401
	get(credsSrv.URL+"/nope", "")                // 404
	get(opsSrv.URL+"/healthz", "")
	get(opsSrv.URL+"/readyz", "")
	get(opsSrv.URL+"/metrics", "")
	get(opsSrv.URL+"/favicon.ico", "")
	get(opsSrv.URL+"/metrics", "") // the first scrape is counted after it was written

	resp, err := http.Get(opsSrv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`credsidecar_http_requests_total{code="503",endpoint="credentials"} 1`,
		`credsidecar_http_requests_total{code="200",endpoint="credentials"} 1`,
		`credsidecar_http_requests_total{code="401",endpoint="credentials"} 1`,
		`credsidecar_http_requests_total{code="404",endpoint="other"} 2`,
		`credsidecar_http_requests_total{code="200",endpoint="healthz"} 1`,
		`credsidecar_http_requests_total{code="200",endpoint="readyz"} 1`,
		`credsidecar_http_requests_total{code="200",endpoint="metrics"} 2`,
	} {
		if !strings.Contains(string(body), want+"\n") {
			t.Errorf("metrics lack %s", want)
		}
	}
	if t.Failed() {
		t.Log(string(body))
	}
}
