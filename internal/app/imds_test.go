package app

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/credsidecar/credsidecar/internal/imds"
	"github.com/credsidecar/credsidecar/internal/testkit/testbed"
)

// TestIMDSRequestsCounted checks that the IMDS listener goes through the shared middleware: its
// requests appear in credsidecar_http_requests_total under endpoint="imds", on the registry the
// sidecar serves. STS is unreachable; the session-token exchange does not need it.
func TestIMDSRequestsCounted(t *testing.T) {
	cfg := testConfig(t, testbed.DefaultRoleARN, "/nonexistent/token", "http://"+testbed.ClosedAddr(t))
	cfg.IMDSListen = "127.0.0.1:0"
	a, err := New(context.Background(), cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	stop := started(t, a)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	send := func(method, path string, header http.Header) int {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(a.Addrs().IMDSURL(), "/")+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header = header
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := send(http.MethodPut, "/latest/api/token", http.Header{imds.TTLHeader: {"60"}}); code != http.StatusOK {
		t.Fatalf("PUT token = %d, want 200", code)
	}
	if code := send(http.MethodGet, "/latest/meta-data/iam/security-credentials/", http.Header{}); code != http.StatusUnauthorized {
		t.Fatalf("GET without a session token = %d, want 401", code)
	}

	_, metricsText := get(t, a.Addrs().MetricsURL()+"/metrics")
	for _, want := range []string{
		`credsidecar_http_requests_total{code="200",endpoint="imds"} 1` + "\n",
		`credsidecar_http_requests_total{code="401",endpoint="imds"} 1` + "\n",
	} {
		if !strings.Contains(metricsText, want) {
			t.Errorf("metrics lack %q", strings.TrimSpace(want))
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
}
