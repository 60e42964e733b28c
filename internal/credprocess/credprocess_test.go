package credprocess

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credsidecar/credsidecar/internal/authtoken"
	"github.com/credsidecar/credsidecar/internal/creds"
	"github.com/credsidecar/credsidecar/internal/server"
	"github.com/credsidecar/credsidecar/internal/testkit/testbed"
)

// mainEnv makes the test binary run Main instead of the tests, so that real clients (botocore,
// the AWS CLI, the Go SDK) can run it as their credential_process: a build of exactly this
// package's code, with no cmd/sidecar in between.
const mainEnv = "CREDSIDECAR_TEST_CREDENTIAL_PROCESS"

func TestMain(m *testing.M) {
	if os.Getenv(mainEnv) == "1" {
		os.Exit(Main(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// testSource is a server.Source holding what a test puts in it.
type testSource struct {
	cur atomic.Pointer[creds.Credentials]
}

func (s *testSource) Servable() *creds.Credentials { return s.cur.Load() }

// Wait returns at once: the endpoint under test is built without a cold-start wait.
func (s *testSource) Wait(context.Context) *creds.Credentials { return s.cur.Load() }

var _ server.Source = (*testSource)(nil)

// realLookingCreds returns credentials shaped like STS's, all random.
func realLookingCreds(tb testing.TB, expiry time.Time) *creds.Credentials {
	tb.Helper()
	raw := make([]byte, 12+30+600)
	if _, err := rand.Read(raw); err != nil {
		tb.Fatal(err)
	}
	return &creds.Credentials{
		AccessKeyID:     "ASIA" + strings.ToUpper(base64.RawStdEncoding.EncodeToString(raw[:12]))[:16],
		SecretAccessKey: base64.StdEncoding.EncodeToString(raw[12:42]),
		SessionToken:    "IQoJb3JpZ2luX2VjE" + base64.StdEncoding.EncodeToString(raw[42:]),
		Expiration:      expiry.UTC().Truncate(time.Second),
		AccountID:       "123456789012",
		RoleARN:         "arn:aws:iam::123456789012:role/app",
	}
}

// endpoint is the sidecar's real container-credentials endpoint (internal/server with a real
// internal/authtoken token generated into a file), on an httptest server on 127.0.0.1.
type endpoint struct {
	src       testSource
	token     string // the Authorization token, as generated into tokenFile
	tokenFile string
	hits      atomic.Int32
	srv       *httptest.Server
}

func newEndpoint(tb testing.TB, c *creds.Credentials) *endpoint {
	tb.Helper()
	e := &endpoint{tokenFile: filepath.Join(tb.TempDir(), "auth-token")}
	auth, err := authtoken.Load(e.tokenFile)
	if err != nil {
		tb.Fatal(err)
	}
	b, err := os.ReadFile(e.tokenFile)
	if err != nil {
		tb.Fatal(err)
	}
	e.token = string(b)
	e.src.cur.Store(c)
	h := server.NewCredentials(&e.src, auth, server.WithColdStartWait(0))
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.hits.Add(1)
		h.ServeHTTP(w, r)
	}))
	tb.Cleanup(e.srv.Close)
	return e
}

func (e *endpoint) URL() string { return e.srv.URL + server.CredentialsPath }

// faultEndpoint answers every request with status, header and body, whatever it asks. It
// stands in for the endpoint only to inject answers the real one never gives (an expired or
// incomplete document, a non-JSON body, a redirect, an error that echoes the token), which the
// command must still handle safely.
func faultEndpoint(tb testing.TB, status int, header http.Header, body string) (url string, hits *atomic.Int32) {
	tb.Helper()
	hits = new(atomic.Int32)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		for k, v := range header {
			w.Header()[k] = v
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	tb.Cleanup(srv.Close)
	return srv.URL + server.CredentialsPath, hits
}

// document is what the real endpoint serves for c.
func document(tb testing.TB, c *creds.Credentials, expiration string) string {
	tb.Helper()
	b, err := json.Marshal(map[string]string{"AccessKeyId": c.AccessKeyID, "SecretAccessKey": c.SecretAccessKey,
		"Token": c.SessionToken, "Expiration": expiration, "AccountId": c.AccountID})
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func runMain(t *testing.T, args []string, vars map[string]string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code := Main(ctx, args, env(vars), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func randomToken(tb testing.TB) string {
	tb.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPrintsCredentials(t *testing.T) {
	c := realLookingCreds(t, time.Now().Add(time.Hour))
	e := newEndpoint(t, c)
	tests := []struct {
		name string
		args []string
		vars map[string]string
	}{
		{"sdk variables with token file", nil, map[string]string{
			"AWS_CONTAINER_CREDENTIALS_FULL_URI": e.URL(), "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": e.tokenFile}},
		{"sdk variables with token", nil, map[string]string{
			"AWS_CONTAINER_CREDENTIALS_FULL_URI": e.URL(), "AWS_CONTAINER_AUTHORIZATION_TOKEN": e.token}},
		{"token file wins over token", nil, map[string]string{"AWS_CONTAINER_CREDENTIALS_FULL_URI": e.URL(),
			"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": e.tokenFile, "AWS_CONTAINER_AUTHORIZATION_TOKEN": "stale"}},
		{"flags", []string{"--endpoint", e.URL(), "--auth-token-file", e.tokenFile}, nil},
		{"flags win over variables", []string{"--endpoint", e.URL(), "--auth-token-file", e.tokenFile},
			map[string]string{"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:1/v1/credentials",
				"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": "/nonexistent"}},
		{"token file with one trailing newline", []string{"--endpoint", e.URL(), "--auth-token-file", writeFile(t, e.token+"\n")}, nil},
		{"token file with crlf", []string{"--endpoint", e.URL(), "--auth-token-file", writeFile(t, e.token+"\r\n")}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runMain(t, tt.args, tt.vars)
			if code != 0 {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			if stderr != "" {
				t.Errorf("stderr on success: %q", stderr)
			}
			if !strings.HasSuffix(stdout, "}\n") || strings.Count(stdout, "\n") != 1 {
				t.Errorf("output is not one line")
			}
			var out map[string]any
			if err := json.Unmarshal([]byte(stdout), &out); err != nil {
				t.Fatal(err)
			}
			want := map[string]any{"Version": float64(1), "AccessKeyId": c.AccessKeyID, "SecretAccessKey": c.SecretAccessKey,
				"SessionToken": c.SessionToken, "Expiration": c.Expiration.Format(time.RFC3339), "AccountId": c.AccountID}
			if len(out) != len(want) {
				t.Errorf("%d fields, want %d", len(out), len(want))
			}
			for k, v := range want {
				if out[k] != v {
					t.Errorf("%s differs from the endpoint's value", k)
				}
			}
			if strings.Contains(stdout, e.token) {
				t.Error("the Authorization token reached the output")
			}
		})
	}
}

func TestFailures(t *testing.T) {
	good := realLookingCreds(t, time.Now().Add(time.Hour))
	closed := "http://" + testbed.ClosedAddr(t) + "/v1/credentials" // nothing listens there
	jsonHeader := http.Header{"Content-Type": {"application/json"}}

	type target struct {
		url, tokenFile, token string
		hits                  *atomic.Int32
	}
	// real is the sidecar's endpoint holding c (nil: no credentials yet).
	real := func(c *creds.Credentials) func(t *testing.T) target {
		return func(t *testing.T) target {
			e := newEndpoint(t, c)
			return target{e.URL(), e.tokenFile, e.token, &e.hits}
		}
	}
	// fault answers with status and body, accepting any token.
	fault := func(status int, header http.Header, body string) func(t *testing.T) target {
		return func(t *testing.T) target {
			url, hits := faultEndpoint(t, status, header, body)
			tok := randomToken(t)
			return target{url, writeFile(t, tok), tok, hits}
		}
	}
	defaultArgs := func(tg target) []string { return []string{"--endpoint", tg.url, "--auth-token-file", tg.tokenFile} }

	tests := []struct {
		name     string
		target   func(t *testing.T) target
		args     func(tg target) []string // nil: defaultArgs
		vars     map[string]string
		wantCode int
		want     []string // all must appear in stderr
		wantHits int32    // requests the endpoint must have seen; -1 skips the check
	}{
		{
			name:   "wrong token",
			target: real(good),
			args: func(tg target) []string {
				return []string{"--endpoint", tg.url, "--auth-token-file", writeFile(t, "wrong-token")}
			},
			wantCode: 1, wantHits: 1,
			want: []string{"GET http://127.0.0.1:", "401 Unauthorized", "Unauthorized: Authorization header does not match",
				"(the token from --auth-token-file "},
		},
		{
			name:     "no credentials yet",
			target:   real(nil),
			wantCode: 1, wantHits: 1,
			want: []string{"503 Service Unavailable: CredentialsUnavailable: no valid credentials"},
		},
		{
			name:     "only expired credentials",
			target:   real(realLookingCreds(t, time.Now().Add(-time.Minute))),
			wantCode: 1, wantHits: 1,
			want: []string{"503 Service Unavailable: CredentialsUnavailable"},
		},
		{
			name:   "wrong path",
			target: real(good),
			args: func(tg target) []string {
				return []string{"--endpoint", tg.url + "/x", "--auth-token-file", tg.tokenFile}
			},
			wantCode: 1, wantHits: 1,
			want: []string{`404 Not Found: NotFound: no role "x" in this sidecar: it serves no named roles`},
		},
		{
			name:     "endpoint serves expired credentials",
			target:   fault(http.StatusOK, jsonHeader, document(t, good, "2020-01-01T00:00:00Z")),
			wantCode: 1, wantHits: 1,
			want: []string{"200 OK but the credentials expired at 2020-01-01T00:00:00Z"},
		},
		{
			name:     "document without token or expiry",
			target:   fault(http.StatusOK, jsonHeader, `{"AccessKeyId":"ASIAX","SecretAccessKey":"s"}`),
			wantCode: 1, wantHits: 1,
			want: []string{"200 OK but the document lacks Token, Expiration"},
		},
		{
			name:     "not json",
			target:   fault(http.StatusOK, nil, "<html>captive portal</html>"),
			wantCode: 1, wantHits: 1,
			want: []string{"200 OK but the body is not a JSON credentials document"},
		},
		{
			name:     "redirect is not followed",
			target:   fault(http.StatusFound, http.Header{"Location": {"/v1/credentials?again"}}, ""),
			wantCode: 1, wantHits: 1,
			want: []string{"302 Found"},
		},
		{
			name: "error that echoes the token",
			target: func(t *testing.T) target {
				tok := randomToken(t)
				url, hits := faultEndpoint(t, http.StatusInternalServerError, jsonHeader,
					`{"Code":"Oops","Message":"token `+tok+` rejected\nsecond line"}`)
				return target{url, writeFile(t, tok), tok, hits}
			},
			wantCode: 1, wantHits: 1,
			want: []string{"500 Internal Server Error: Oops: token <token> rejected second line"},
		},
		{
			name:     "nothing listening",
			target:   func(t *testing.T) target { return target{closed, writeFile(t, "tok"), "tok", nil} },
			wantCode: 1, wantHits: -1,
			want: []string{"GET " + closed + ": connection refused: is the sidecar running"},
		},
		{
			name:   "missing token file",
			target: real(good),
			args: func(tg target) []string {
				return []string{"--endpoint", tg.url, "--auth-token-file", "/nonexistent/token"}
			},
			wantCode: 1,
			want:     []string{"read token from --auth-token-file /nonexistent/token"},
		},
		{
			name:   "token with inner newline",
			target: real(good),
			args: func(tg target) []string {
				return []string{"--endpoint", tg.url, "--auth-token-file", writeFile(t, tg.token+"\n\n")}
			},
			wantCode: 1,
			want:     []string{"characters HTTP headers cannot carry"},
		},
		{
			name:     "empty token file",
			target:   real(good),
			args:     func(tg target) []string { return []string{"--endpoint", tg.url, "--auth-token-file", writeFile(t, "")} },
			wantCode: 1,
			want:     []string{"empty or longer than"},
		},
		{
			name:     "plain http to another host",
			target:   real(good),
			args:     func(target) []string { return []string{"--endpoint", "http://10.0.0.5:9910/v1/credentials"} },
			wantCode: 2,
			want:     []string{`--endpoint: endpoint "http://10.0.0.5:9910/v1/credentials": plain http is allowed only to a loopback`},
		},
		{
			name:     "variable names the bad endpoint",
			target:   real(good),
			args:     func(target) []string { return nil },
			vars:     map[string]string{"AWS_CONTAINER_CREDENTIALS_FULL_URI": "ftp://127.0.0.1/x"},
			wantCode: 2,
			want:     []string{`AWS_CONTAINER_CREDENTIALS_FULL_URI: endpoint "ftp://127.0.0.1/x": scheme must be http or https`},
		},
		{
			name:     "stray argument",
			target:   real(good),
			args:     func(target) []string { return []string{"extra"} },
			wantCode: 2,
			want:     []string{`unexpected argument "extra"`, "usage: sidecar credential-process"},
		},
		{
			name:     "unknown flag",
			target:   real(good),
			args:     func(target) []string { return []string{"--roles", "x"} },
			wantCode: 2,
			want:     []string{"flag provided but not defined: -roles"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg := tt.target(t)
			args := defaultArgs
			if tt.args != nil {
				args = tt.args
			}
			code, stdout, stderr := runMain(t, args(tg), tt.vars)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr %q", code, tt.wantCode, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout on failure: %q", stdout)
			}
			if strings.Count(stderr, "\n") != 1 && code == 1 {
				t.Errorf("stderr is not one line: %q", stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			for name, secret := range map[string]string{"token": tg.token, "secret key": good.SecretAccessKey, "session token": good.SessionToken} {
				if strings.Contains(stderr, secret) {
					t.Errorf("the %s reached stderr", name)
				}
			}
			if tg.hits != nil && tt.wantHits >= 0 && tg.hits.Load() != tt.wantHits {
				t.Errorf("endpoint saw %d requests, want %d", tg.hits.Load(), tt.wantHits)
			}
		})
	}
}

func TestTimeout(t *testing.T) {
	e := newEndpoint(t, realLookingCreds(t, time.Now().Add(time.Hour)))
	// The endpoint hangs until the client gives up: a listener that accepts and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- c
		}
	}()
	code, _, stderr := runMain(t, []string{"--endpoint", "http://" + ln.Addr().String() + "/v1/credentials",
		"--auth-token-file", e.tokenFile, "--timeout", "1ms"}, nil)
	if code != 1 || !strings.Contains(stderr, "no answer within 1ms") {
		t.Fatalf("exit %d, stderr %q; want 1 and a timeout message", code, stderr)
	}
	select {
	case c := <-accepted:
		c.Close()
	default:
	}
}

func TestHelp(t *testing.T) {
	code, stdout, _ := runMain(t, []string{"--help"}, nil)
	if code != 0 || !strings.Contains(stdout, "AWS_CONTAINER_CREDENTIALS_FULL_URI") {
		t.Fatalf("--help: exit %d, %q", code, stdout)
	}
}

func TestCheckEndpoint(t *testing.T) {
	tests := []struct {
		name, url string
		ok        bool
	}{
		{"loopback", "http://127.0.0.1:9910/v1/credentials", true},
		{"ipv6 loopback", "http://[::1]:9910/v1/credentials", true},
		{"localhost", "http://localhost:9910/v1/credentials", true},
		{"ecs agent", "http://169.254.170.2/v2/credentials/x", true},
		{"eks pod identity agent", "http://169.254.170.23/v1/credentials", true},
		{"eks pod identity agent ipv6", "http://[fd00:ec2::23]/v1/credentials", true},
		{"https anywhere", "https://creds.example.com/v1/credentials", true},
		{"plain http elsewhere", "http://creds.example.com/v1/credentials", false},
		{"plain http to pod ip", "http://10.1.2.3:9910/v1/credentials", false},
		{"relative", "/v1/credentials", false},
		{"other scheme", "file:///etc/passwd", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := checkEndpoint(tt.url); (err == nil) != tt.ok {
				t.Fatalf("checkEndpoint(%q) = %v, want ok=%v", tt.url, err, tt.ok)
			}
		})
	}
}

// TestRole: --role NAME fetches the named role from the sidecar the endpoint names, whatever
// role the endpoint's own path is for; an unknown role fails with the sidecar's 404 message; a
// bad name is a usage error naming the flag.
func TestRole(t *testing.T) {
	unnamed, reader := realLookingCreds(t, time.Now().Add(time.Hour)), realLookingCreds(t, time.Now().Add(time.Hour))
	e := newEndpoint(t, unnamed)
	auth, err := authtoken.Load(e.tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	readerSrc := &testSource{}
	readerSrc.cur.Store(reader)
	srv := httptest.NewServer(server.NewCredentialsRoles([]server.Role{{Source: &e.src}, {Name: "reader", Source: readerSrc}},
		auth, server.WithColdStartWait(0)))
	t.Cleanup(srv.Close)
	vars := map[string]string{"AWS_CONTAINER_CREDENTIALS_FULL_URI": srv.URL + server.CredentialsPath,
		"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": e.tokenFile}
	key := func(stdout string) string {
		t.Helper()
		var out struct{ AccessKeyId string }
		if err := json.Unmarshal([]byte(stdout), &out); err != nil {
			t.Fatalf("output not JSON: %v", err)
		}
		return out.AccessKeyId
	}
	if code, stdout, stderr := runMain(t, []string{"--role", "reader"}, vars); code != 0 || key(stdout) != reader.AccessKeyID {
		t.Fatalf("--role reader: exit %d, stderr %q, want the reader's credentials", code, stderr)
	}
	if code, stdout, stderr := runMain(t, nil, vars); code != 0 || key(stdout) != unnamed.AccessKeyID {
		t.Fatalf("no --role: exit %d, stderr %q, want the unnamed role's credentials", code, stderr)
	}
	vars["CREDSIDECAR_CREDENTIAL_PROCESS_ROLE"] = "reader"
	vars["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = srv.URL + server.CredentialsPath + "/writer"
	if code, stdout, stderr := runMain(t, nil, vars); code != 0 || key(stdout) != reader.AccessKeyID {
		t.Fatalf("role by variable on another role's URL: exit %d, stderr %q, want the reader's credentials", code, stderr)
	}
	code, _, stderr := runMain(t, []string{"--role", "writer"}, vars)
	if code != 1 || !strings.Contains(stderr, `404 Not Found: NotFound: no role "writer" in this sidecar: its roles are reader`) {
		t.Fatalf("unknown role: exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = runMain(t, []string{"--role", "Writer"}, vars)
	if code != 2 || !strings.Contains(stderr, `--role (CREDSIDECAR_CREDENTIAL_PROCESS_ROLE) = "Writer": role name "Writer": want 1 to 32 of a-z, 0-9 and -`) {
		t.Fatalf("bad role name: exit %d, stderr %q", code, stderr)
	}
}
