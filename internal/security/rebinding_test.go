package security

import (
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/credsidecar/credsidecar/internal/testkit/podenv"
)

// TestDNSRebinding: a page on evil.example.com whose name an attacker makes resolve to
// 127.0.0.1 lets a browser in the pod reach the sidecar's ports, but its requests still say
// Host: evil.example.com. Both endpoints refuse them with a JSON 403 before anything else
// (IMDS has no other authentication), and keep serving requests that name loopback.
func TestDNSRebinding(t *testing.T) {
	w := podenv.Shared(t)
	s := startBinary(t, w, runOptions{Args: []string{"--imds-listen=127.0.0.1:0"}})
	auth, err := os.ReadFile(s.AuthFile)
	if err != nil {
		t.Fatal(err)
	}
	imds := strings.TrimSuffix(s.IMDSURL, "/")
	endpoints := []struct {
		name, method, url string
		header            http.Header
	}{
		{"credentials", http.MethodGet, s.CredentialsURL, http.Header{"Authorization": {string(auth)}}},
		{"imds token", http.MethodPut, imds + "/latest/api/token", http.Header{"X-Aws-Ec2-Metadata-Token-Ttl-Seconds": {"60"}}},
	}
	hosts := []struct {
		host string
		want int
	}{
		{"", http.StatusOK}, // the URL's own 127.0.0.1:<port>
		{"localhost", http.StatusOK},
		{"evil.example.com", http.StatusForbidden},
		{"evil.example.com:80", http.StatusForbidden},
		{"127.0.0.1.nip.io", http.StatusForbidden},
	}
	for _, e := range endpoints {
		for _, h := range hosts {
			t.Run(e.name+"/"+h.host, func(t *testing.T) {
				req, err := http.NewRequestWithContext(t.Context(), e.method, e.url, nil)
				if err != nil {
					t.Fatal(err)
				}
				req.Header = e.header.Clone()
				if h.host != "" {
					req.Host = h.host
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body := readAll(t, resp)
				if resp.StatusCode != h.want {
					t.Fatalf("Host %q: %s %q, want %d", req.Host, resp.Status, body, h.want)
				}
				if h.want != http.StatusForbidden {
					return
				}
				var answer map[string]string
				if err := json.Unmarshal([]byte(body), &answer); err != nil || answer["Code"] != "Forbidden" ||
					resp.Header.Get("Content-Type") != "application/json" || strings.Contains(body, "SecretAccessKey") {
					t.Errorf("403 answer %q (%v, %s): want the JSON error, no credentials", body, err, resp.Header.Get("Content-Type"))
				}
			})
		}
	}
	// The probes and the scrape come from the kubelet and Prometheus, on the pod's IP, with the
	// pod's address as Host: the metrics listener keeps answering them.
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.MetricsURL+"/healthz", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "10.244.0.7:9912"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(t, resp); resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz with the pod's address as Host: %s %q, want 200", resp.Status, body)
	}
}
