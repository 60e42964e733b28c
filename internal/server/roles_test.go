package server

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestRoles: each role at its own path with its own credentials, behind the one auth token; an
// unknown role is a JSON 404 naming it and the roles there are, but only to a caller with the
// token; without an unnamed role, /v1/credentials says how to ask for a named one; /readyz
// names every role without servable credentials.
func TestRoles(t *testing.T) {
	unnamed, reader := testCreds(testStart.Add(time.Hour)), testCreds(testStart.Add(2*time.Hour))
	reader.AccessKeyID = "ASIAREADER"
	roles := []Role{{Source: fixedSource(unnamed)}, {Name: "reader", Source: fixedSource(reader)},
		{Name: "writer", Source: emptySource()}}
	tok := loadToken(t)
	auth := authToken
	srv := startServer(t, NewCredentialsRoles(roles, tok, WithClock(fakeClock()), WithColdStartWait(time.Millisecond)), nil)
	onlyNamed := startServer(t, NewCredentialsRoles(roles[1:], tok, WithClock(fakeClock())), nil)
	ops := startServer(t, NewOps(roles, prometheus.NewRegistry(), WithClock(fakeClock())), nil)

	type answer struct {
		code int
		body string
	}
	get := func(base, path, auth string) answer {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return answer{resp.StatusCode, string(b)}
	}
	key := func(a answer) string {
		t.Helper()
		var v struct{ AccessKeyId, Message string }
		if err := json.Unmarshal([]byte(a.body), &v); err != nil {
			t.Fatalf("not JSON (%d): %s", a.code, a.body)
		}
		return v.AccessKeyId + v.Message
	}
	tests := []struct {
		name, base, path, auth string
		wantCode               int
		want                   string // AccessKeyId or Message
	}{
		{"unnamed", srv.URL, CredentialsPath, auth, 200, unnamed.AccessKeyID},
		{"named", srv.URL, CredentialsPath + "/reader", auth, 200, "ASIAREADER"},
		{"named, path cleaned by the redirect the client follows", srv.URL, "/v1//credentials/reader", auth, 200, "ASIAREADER"},
		{"named without servable credentials", srv.URL, CredentialsPath + "/writer", auth, 503, ""},
		{"unknown role", srv.URL, CredentialsPath + "/admin", auth, 404, `no role "admin" in this sidecar: its roles are reader, writer`},
		{"unknown role without the token", srv.URL, CredentialsPath + "/admin", "", 401, "missing Authorization header: send the content of AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"},
		{"unknown role with a wrong token", srv.URL, CredentialsPath + "/admin", "wrong", 401, "Authorization header does not match the sidecar's auth token"},
		{"named role without the token", srv.URL, CredentialsPath + "/reader", "", 401, "missing Authorization header: send the content of AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"},
		{"not a role path", srv.URL, CredentialsPath + "/reader/x", auth, 404, "no such path: credentials are served at /v1/credentials"},
		{"no unnamed role", onlyNamed.URL, CredentialsPath, auth, 404, "this sidecar has no unnamed role (--role-arn); its roles are reader, writer: ask for /v1/credentials/NAME"},
		{"named role beside no unnamed one", onlyNamed.URL, CredentialsPath + "/reader", auth, 200, "ASIAREADER"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := get(tt.base, tt.path, tt.auth)
			if a.code != tt.wantCode {
				t.Fatalf("%s: %d %s, want %d", tt.path, a.code, a.body, tt.wantCode)
			}
			if tt.want != "" {
				if got := key(a); got != tt.want {
					t.Fatalf("%s: got %q, want %q", tt.path, got, tt.want)
				}
			}
		})
	}
	if a := get(ops.URL, "/readyz", ""); a.code != 503 || a.body != "not ready: no servable credentials for role writer\n" {
		t.Fatalf("/readyz with writer unservable: %d %q", a.code, a.body)
	}
}
