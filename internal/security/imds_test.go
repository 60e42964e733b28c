package security

import (
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/credsidecar/credsidecar/internal/testkit/podenv"
)

// nobody is the unprivileged user the port-80 test runs the sidecar as.
const nobody = 65534

// capNetBindService is CAP_NET_BIND_SERVICE (linux/capability.h).
const capNetBindService = 10

// TestIMDSOnPort80AsNonRoot: SDKs that ignore the port of the IMDS endpoint dial port 80. The
// sidecar, not root, binds 127.0.0.1:80 with only the NET_BIND_SERVICE capability (ambient, as
// a container's securityContext.capabilities.add gives it), and serves the IMDSv2 flow there.
func TestIMDSOnPort80AsNonRoot(t *testing.T) {
	w := podenv.Shared(t)
	// Without the capability, an unprivileged sidecar cannot bind port 80 and says so.
	_, err := runBinary(t, w, runOptions{
		Args: []string{"--imds-listen=127.0.0.1:80"},
		Attr: &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}},
	})
	if err == nil || !strings.Contains(err.Error(), "permission denied") || !strings.Contains(err.Error(), "127.0.0.1:80") {
		t.Fatalf("unprivileged sidecar on port 80: %v, want it to exit with permission denied naming 127.0.0.1:80", err)
	}

	s := startBinary(t, w, runOptions{
		Args: []string{"--imds-listen=127.0.0.1:80"},
		Attr: &syscall.SysProcAttr{
			Credential:  &syscall.Credential{Uid: nobody, Gid: nobody},
			AmbientCaps: []uintptr{capNetBindService},
		},
	})
	status, err := os.ReadFile("/proc/" + strconv.Itoa(s.Pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(status), "\nUid:\t65534\t65534\t65534\t65534\n") {
		t.Fatalf("the sidecar does not run as uid %d:\n%s", nobody, status)
	}
	if s.IMDSURL != "http://127.0.0.1:80/" {
		t.Fatalf("IMDS URL %q, want port 80", s.IMDSURL)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut, "http://127.0.0.1/latest/api/token", nil)
	req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "60")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	tok := readAll(t, resp)
	if resp.StatusCode != http.StatusOK || tok == "" {
		t.Fatalf("token PUT on port 80: %s %q", resp.Status, tok)
	}
	req, _ = http.NewRequestWithContext(t.Context(), http.MethodGet, "http://127.0.0.1/latest/meta-data/iam/security-credentials/", nil)
	req.Header.Set("X-aws-ec2-metadata-token", tok)
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	role := readAll(t, resp)
	req, _ = http.NewRequestWithContext(t.Context(), http.MethodGet, "http://127.0.0.1/latest/meta-data/iam/security-credentials/"+role, nil)
	req.Header.Set("X-aws-ec2-metadata-token", tok)
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if doc := readAll(t, resp); resp.StatusCode != http.StatusOK || !strings.Contains(doc, `"Code":"Success"`) {
		t.Errorf("credentials on port 80: %s %s", resp.Status, doc)
	}
}

// TestIMDSRefusesProxiedRequests: a request forged through a proxy in the pod (SSRF) carries the
// proxy's header, and the token PUT refuses it, whichever proxy it was.
func TestIMDSRefusesProxiedRequests(t *testing.T) {
	w := podenv.Shared(t)
	s := startBinary(t, w, runOptions{Args: []string{"--imds-listen=127.0.0.1:0"}})
	base := strings.TrimSuffix(s.IMDSURL, "/")
	for _, h := range []string{"X-Forwarded-For", "Forwarded", "Via", "X-Real-IP", "X-Envoy-External-Address"} {
		t.Run(h, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut, base+"/latest/api/token", nil)
			req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "60")
			req.Header.Set(h, "203.0.113.7")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body := readAll(t, resp)
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("token PUT with %s: %s %q, want 403", h, resp.Status, body)
			}
		})
	}
}
