package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credsidecar/credsidecar/internal/creds"
	"github.com/credsidecar/credsidecar/internal/testkit/await"
)

const okBody = `{"AccessKeyId":"ASIAEXAMPLEKEY123456","SecretAccessKey":"` + secretKey + `","Token":"` + sessionToken +
	`","Expiration":"2026-08-22T13:04:05Z","AccountId":"123456789012","RoleArn":"arn:aws:iam::123456789012:role/app"}`

func errBody(code, message string) string {
	return fmt.Sprintf(`{"code":%q,"message":%q,"Code":%q,"Message":%q}`, code, message, code, message)
}

var (
	body401Missing = errBody("Unauthorized", "missing Authorization header: send the content of AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
	body401Bad     = errBody("Unauthorized", "Authorization header does not match the sidecar's auth token")
	body404        = errBody("NotFound", "no such path: credentials are served at /v1/credentials")
	body405        = errBody("MethodNotAllowed", "only GET is allowed")
	body503        = errBody("CredentialsUnavailable", "no valid credentials: the first STS call has not returned, "+
		"or STS is failing and the cached credentials are too close to expiry; see the sidecar's logs")
)

func TestCredentialsEndpoint(t *testing.T) {
	valid := testCreds(testStart.Add(time.Hour))
	tests := []struct {
		name      string
		method    string
		path      string
		auth      []string
		src       funcSource
		wantCode  int
		wantBody  string
		wantAllow string
	}{
		{name: "served", path: "/v1/credentials", auth: []string{authToken}, src: fixedSource(valid),
			wantCode: 200, wantBody: okBody},
		{name: "query string ignored", path: "/v1/credentials?x=1", auth: []string{authToken}, src: fixedSource(valid),
			wantCode: 200, wantBody: okBody},
		{name: "expiration in another zone with fractions", path: "/v1/credentials", auth: []string{authToken},
			src:      fixedSource(testCreds(time.Date(2026, 8, 22, 15, 4, 5, 999_999_999, time.FixedZone("CEST", 2*3600)))),
			wantCode: 200, wantBody: okBody},
		{name: "account and role omitted when unknown", path: "/v1/credentials", auth: []string{authToken},
			src: fixedSource(&creds.Credentials{AccessKeyID: "ASIA1", SecretAccessKey: secretKey, SessionToken: sessionToken,
				Expiration: testStart.Add(time.Hour)}),
			wantCode: 200, wantBody: `{"AccessKeyId":"ASIA1","SecretAccessKey":"` + secretKey + `","Token":"` + sessionToken + `","Expiration":"2026-08-22T13:04:05Z"}`},
		{name: "credentials arriving during the wait", path: "/v1/credentials", auth: []string{authToken},
			src: funcSource{servable: func() *creds.Credentials { return nil },
				wait: func(context.Context) *creds.Credentials { return valid }},
			wantCode: 200, wantBody: okBody},
		{name: "missing token", path: "/v1/credentials", src: fixedSource(valid), wantCode: 401, wantBody: body401Missing},
		{name: "empty token", path: "/v1/credentials", auth: []string{""}, src: fixedSource(valid), wantCode: 401, wantBody: body401Missing},
		{name: "wrong token", path: "/v1/credentials", auth: []string{"nope"}, src: fixedSource(valid), wantCode: 401, wantBody: body401Bad},
		{name: "bearer scheme", path: "/v1/credentials", auth: []string{"Bearer " + authToken}, src: fixedSource(valid), wantCode: 401, wantBody: body401Bad},
		{name: "token prefix", path: "/v1/credentials", auth: []string{authToken[:10]}, src: fixedSource(valid), wantCode: 401, wantBody: body401Bad},
		{name: "two tokens", path: "/v1/credentials", auth: []string{authToken, authToken}, src: fixedSource(valid), wantCode: 401, wantBody: body401Bad},
		{name: "no credentials", path: "/v1/credentials", auth: []string{authToken}, src: emptySource(), wantCode: 503, wantBody: body503},
		{name: "expired credentials never served", path: "/v1/credentials", auth: []string{authToken},
			src: fixedSource(testCreds(testStart)), wantCode: 503, wantBody: body503},
		{name: "POST", method: http.MethodPost, path: "/v1/credentials", auth: []string{authToken}, src: fixedSource(valid),
			wantCode: 405, wantBody: body405, wantAllow: "GET"},
		{name: "HEAD", method: http.MethodHead, path: "/v1/credentials", auth: []string{authToken}, src: fixedSource(valid),
			wantCode: 405, wantAllow: "GET"},
		{name: "PUT without token", method: http.MethodPut, path: "/v1/credentials", src: fixedSource(valid),
			wantCode: 405, wantBody: body405, wantAllow: "GET"},
		{name: "unknown path", path: "/latest/meta-data/iam/security-credentials/", auth: []string{authToken},
			src: fixedSource(valid), wantCode: 404, wantBody: body404},
		{name: "trailing slash", path: "/v1/credentials/", auth: []string{authToken}, src: fixedSource(valid), wantCode: 404, wantBody: body404},
		{name: "root without token", path: "/", src: fixedSource(valid), wantCode: 404, wantBody: body404},
		{name: "POST to unknown path", method: http.MethodPost, path: "/x", src: fixedSource(valid), wantCode: 404, wantBody: body404},
	}
	tok := loadToken(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, NewCredentials(tt.src, tok, WithClock(fakeClock()), WithColdStartWait(time.Millisecond)), nil)
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			req, err := http.NewRequest(method, ts.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range tt.auth {
				req.Header.Add("Authorization", a)
			}
			resp, err := ts.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.wantCode {
				t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, tt.wantCode, body)
			}
			if string(body) != tt.wantBody {
				t.Fatalf("body =\n%s\nwant\n%s", body, tt.wantBody)
			}
			if got := resp.Header.Get("Content-Type"); got != "application/json" {
				t.Fatalf("Content-Type = %q, want application/json", got)
			}
			if got := resp.Header.Get("Cache-Control"); got != "no-store" {
				t.Fatalf("Cache-Control = %q, want no-store", got)
			}
			if got := resp.Header.Get("Allow"); got != tt.wantAllow {
				t.Fatalf("Allow = %q, want %q", got, tt.wantAllow)
			}
			if method != http.MethodHead && resp.ContentLength != int64(len(body)) {
				t.Fatalf("Content-Length = %d, body is %d bytes", resp.ContentLength, len(body))
			}
		})
	}
}

// TestCredentialsJSONShape decodes the answer the way the SDKs do, rather than comparing text.
func TestCredentialsJSONShape(t *testing.T) {
	h := NewCredentials(fixedSource(testCreds(testStart.Add(time.Hour))), loadToken(t), WithClock(fakeClock()))
	req := httptest.NewRequest(http.MethodGet, "/v1/credentials", nil)
	req.Header.Set("Authorization", authToken)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var got map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 6 {
		t.Fatalf("answer has %d keys, want 6: %v", len(got), got)
	}
	exp, err := time.Parse(time.RFC3339, got["Expiration"].(string))
	if err != nil || !exp.Equal(testStart.Add(time.Hour)) || !strings.HasSuffix(got["Expiration"].(string), "Z") {
		t.Fatalf("Expiration %q: %v", got["Expiration"], err)
	}
	for _, k := range []string{"AccessKeyId", "SecretAccessKey", "Token", "AccountId", "RoleArn"} {
		if s, ok := got[k].(string); !ok || s == "" {
			t.Fatalf("%s missing or empty: %v", k, got)
		}
	}
}

func TestErrorBodiesCarryBothCasings(t *testing.T) {
	e := newErrorAnswers()
	for _, a := range []*apiError{e.missingAuth, e.badAuth, e.notFound, e.method, e.unavailable, internalError()} {
		var got map[string]string
		if err := json.Unmarshal(a.body, &got); err != nil {
			t.Fatal(err)
		}
		if len(got) != 4 || got["code"] == "" || got["code"] != got["Code"] || got["message"] == "" || got["message"] != got["Message"] {
			t.Fatalf("status %d body %s lacks a casing", a.status, a.body)
		}
	}
}

func TestFormatExpiration(t *testing.T) {
	tests := []struct {
		name string
		in   time.Time
		want string
	}{
		{name: "UTC", in: time.Date(2026, 8, 22, 13, 4, 5, 0, time.UTC), want: "2026-08-22T13:04:05Z"},
		{name: "fraction dropped, not rounded up", in: time.Date(2026, 8, 22, 13, 4, 5, 999_999_999, time.UTC), want: "2026-08-22T13:04:05Z"},
		{name: "zone converted", in: time.Date(2026, 8, 22, 8, 4, 5, 0, time.FixedZone("EST", -5*3600)), want: "2026-08-22T13:04:05Z"},
		{name: "local", in: time.Unix(1787403845, 0).Local(), want: "2026-08-22T13:04:05Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FormatExpiration(tt.in); got != tt.want {
				t.Fatalf("FormatExpiration = %q, want %q", got, tt.want)
			}
		})
	}
}

// coldSource is the in-test Source for a cold start: the first Wait starts the one fetch a
// Manager would make, and that fetch completes when the test closes release.
type coldSource struct {
	creds   *creds.Credentials
	release chan struct{}
	done    chan struct{}
	arrived chan struct{} // one send per request that had to wait
	cur     atomic.Pointer[creds.Credentials]
	once    sync.Once
	fetches atomic.Int64
	waits   atomic.Int64
}

func newColdSource(c *creds.Credentials, waiters int) *coldSource {
	return &coldSource{creds: c, release: make(chan struct{}), done: make(chan struct{}), arrived: make(chan struct{}, waiters)}
}

func (s *coldSource) Servable() *creds.Credentials { return s.cur.Load() }

func (s *coldSource) Wait(ctx context.Context) *creds.Credentials {
	s.waits.Add(1)
	s.once.Do(func() {
		s.fetches.Add(1)
		go func() {
			<-s.release
			s.cur.Store(s.creds)
			close(s.done)
		}()
	})
	if c := s.cur.Load(); c != nil {
		return c
	}
	s.arrived <- struct{}{}
	select {
	case <-s.done:
		return s.cur.Load()
	case <-ctx.Done():
		return nil
	}
}

// TestColdStartConcurrent sends 1000 requests before the first credentials exist: every one
// must wait for the single fetch and get 200, and the answer must be encoded once.
func TestColdStartConcurrent(t *testing.T) {
	const n = 1000
	src := newColdSource(testCreds(testStart.Add(time.Hour)), n)
	mux, h := newCredentials(src, loadToken(t), WithClock(fakeClock()), WithColdStartWait(time.Minute))
	ts := startServer(t, mux, nil)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}, Timeout: time.Minute}
	defer client.CloseIdleConnections()

	codes := make(chan string, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodGet, ts.URL+CredentialsPath, nil)
			req.Header.Set("Authorization", authToken)
			resp, err := client.Do(req)
			if err != nil {
				codes <- err.Error()
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) != okBody {
				codes <- fmt.Sprintf("%d %s", resp.StatusCode, body)
				return
			}
			codes <- "ok"
		})
	}
	deadline := time.After(time.Minute)
	for i := range n {
		select {
		case <-src.arrived:
		case <-deadline:
			t.Fatalf("only %d of %d requests reached Wait within a minute", i, n)
		}
	}
	close(src.release)
	await.Done(t, 2*time.Minute, "the answers to all requests", wg.Wait)
	close(codes)
	bad := map[string]int{}
	for c := range codes {
		if c != "ok" {
			bad[c]++
		}
	}
	if len(bad) > 0 {
		t.Fatalf("answers other than 200: %v", bad)
	}
	if got := src.fetches.Load(); got != 1 {
		t.Fatalf("fetches = %d, want 1", got)
	}
	if got := src.waits.Load(); got != n {
		t.Fatalf("Wait calls = %d, want %d", got, n)
	}
	if got := h.encodes.Load(); got != 1 {
		t.Fatalf("encodes = %d, want 1", got)
	}
}

func TestEncodeOncePerCredentials(t *testing.T) {
	a := testCreds(testStart.Add(time.Hour))
	b := testCreds(testStart.Add(2 * time.Hour))
	aCopy := *a // same content, another value: a new publication
	var cur atomic.Pointer[creds.Credentials]
	src := funcSource{servable: func() *creds.Credentials { return cur.Load() }}
	mux, h := newCredentials(src, loadToken(t), WithClock(fakeClock()))
	steps := []struct {
		name        string
		creds       *creds.Credentials
		requests    int
		wantEncodes int64
		wantExpiry  string
	}{
		{name: "first", creds: a, requests: 10, wantEncodes: 1, wantExpiry: "2026-08-22T13:04:05Z"},
		{name: "refreshed", creds: b, requests: 10, wantEncodes: 2, wantExpiry: "2026-08-22T14:04:05Z"},
		{name: "republished copy", creds: &aCopy, requests: 10, wantEncodes: 3, wantExpiry: "2026-08-22T13:04:05Z"},
	}
	for _, s := range steps {
		cur.Store(s.creds)
		for range s.requests {
			req := httptest.NewRequest(http.MethodGet, CredentialsPath, nil)
			req.Header.Set("Authorization", authToken)
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, req)
			if rec.Code != 200 || !strings.Contains(rec.Body.String(), s.wantExpiry) {
				t.Fatalf("%s: %d %s", s.name, rec.Code, rec.Body)
			}
		}
		if got := h.encodes.Load(); got != s.wantEncodes {
			t.Fatalf("%s: encodes = %d, want %d", s.name, got, s.wantEncodes)
		}
	}
}

// countingAuthorizer records that the handler asks it, rather than comparing tokens itself.
type countingAuthorizer struct {
	calls atomic.Int64
	inner Authorizer
}

func (c *countingAuthorizer) Matches(got string) bool {
	c.calls.Add(1)
	return c.inner.Matches(got)
}

func TestTokenCheckedByAuthorizer(t *testing.T) {
	auth := &countingAuthorizer{inner: loadToken(t)}
	h := NewCredentials(fixedSource(testCreds(testStart.Add(time.Hour))), auth, WithClock(fakeClock()))
	for _, tok := range []string{authToken, "wrong"} {
		req := httptest.NewRequest(http.MethodGet, CredentialsPath, nil)
		req.Header.Set("Authorization", tok)
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	if got := auth.calls.Load(); got != 2 {
		t.Fatalf("Matches called %d times, want 2", got)
	}
}

func TestHeaderLimit(t *testing.T) {
	ts := startServer(t, NewCredentials(fixedSource(testCreds(testStart.Add(time.Hour))), loadToken(t)), nil)
	conn, err := net.DialTimeout("tcp", ts.Listener.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	// The server answers before the client finishes writing, so write from another goroutine.
	go func() {
		_, _ = fmt.Fprintf(conn, "GET /v1/credentials HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: %s\r\nX-Big: %s\r\n\r\n",
			authToken, strings.Repeat("a", 1<<20))
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("status = %d, want 431", resp.StatusCode)
	}
}

func TestServerLimitsConfigured(t *testing.T) {
	srv := NewHTTPServer(http.NotFoundHandler(), nil)
	checks := []struct {
		name string
		got  time.Duration
		max  time.Duration
	}{
		{name: "ReadHeaderTimeout", got: srv.ReadHeaderTimeout, max: 5 * time.Second},
		{name: "ReadTimeout", got: srv.ReadTimeout, max: 30 * time.Second},
		{name: "WriteTimeout", got: srv.WriteTimeout, max: 30 * time.Second},
		{name: "IdleTimeout", got: srv.IdleTimeout, max: 5 * time.Minute},
	}
	for _, c := range checks {
		if c.got <= 0 || c.got > c.max {
			t.Errorf("%s = %v, want in (0, %v]", c.name, c.got, c.max)
		}
	}
	if srv.WriteTimeout <= DefaultColdStartWait {
		t.Errorf("WriteTimeout %v does not cover the cold-start wait %v", srv.WriteTimeout, DefaultColdStartWait)
	}
	if srv.MaxHeaderBytes <= 0 || srv.MaxHeaderBytes > 64<<10 {
		t.Errorf("MaxHeaderBytes = %d", srv.MaxHeaderBytes)
	}
	if srv.ErrorLog == nil {
		t.Error("ErrorLog unset: net/http would write to the process's stderr")
	}
}

// TestSlowClientCutOff sends half a request and stops: the server must hang up after its
// header timeout (shortened here) instead of holding the connection.
func TestSlowClientCutOff(t *testing.T) {
	h := NewCredentials(fixedSource(testCreds(testStart.Add(time.Hour))), loadToken(t))
	ts := httptest.NewUnstartedServer(h)
	ts.Config = NewHTTPServer(h, nil)
	ts.Config.ReadHeaderTimeout = 50 * time.Millisecond
	ts.Start()
	defer ts.Close()
	conn, err := net.DialTimeout("tcp", ts.Listener.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /v1/credentials HTTP/1.1\r\nHost: 127.0.0.1\r\n"); err != nil {
		t.Fatal(err)
	}
	if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	n, err := conn.Read(make([]byte, 1))
	if n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("read = %d, %v; want the server to close the connection", n, err)
	}
}

func TestPanicRecovered(t *testing.T) {
	log, logs := debugLogger()
	src := funcSource{servable: func() *creds.Credentials { panic("source exploded") }}
	ts := startServer(t, NewCredentials(src, loadToken(t), WithLogger(log)), log)
	for range 2 { // the server keeps serving after a panic
		req, _ := http.NewRequest(http.MethodGet, ts.URL+CredentialsPath, nil)
		req.Header.Set("Authorization", authToken)
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 500 || !strings.Contains(string(body), `"Code":"InternalError"`) {
			t.Fatalf("got %d %s, want a JSON 500", resp.StatusCode, body)
		}
	}
	if !strings.Contains(logs.String(), "source exploded") {
		t.Fatalf("panic not logged:\n%s", logs)
	}
}

func BenchmarkCredentials(b *testing.B) {
	h := NewCredentials(fixedSource(testCreds(time.Now().Add(time.Hour))), loadToken(b))
	req := httptest.NewRequest(http.MethodGet, CredentialsPath, nil)
	req.Header.Set("Authorization", authToken)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
}

// explainingSource is the in-test Source with a LastError, as *creds.Manager has.
type explainingSource struct {
	funcSource
	err error
}

func (s explainingSource) LastError() error { return s.err }

func TestUnavailableExplained(t *testing.T) {
	long := strings.Repeat("x", 2000)
	tests := []struct {
		name string
		err  error
		want string
	}{
		{name: "no error yet", err: nil, want: body503},
		{name: "last error", err: errors.New("assume role with web identity: AccessDenied: Not authorized to perform sts:AssumeRoleWithWebIdentity"),
			want: errBody("CredentialsUnavailable", unavailableMessage+". Last STS error: assume role with web identity: AccessDenied: Not authorized to perform sts:AssumeRoleWithWebIdentity")},
		{name: "long error cut", err: errors.New(long),
			want: errBody("CredentialsUnavailable", unavailableMessage+". Last STS error: "+long[:1024]+"...")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := explainingSource{funcSource: emptySource(), err: tt.err}
			h := NewCredentials(src, loadToken(t), WithColdStartWait(time.Millisecond))
			req := httptest.NewRequest(http.MethodGet, CredentialsPath, nil)
			req.Header.Set("Authorization", authToken)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != 503 || rec.Body.String() != tt.want {
				t.Fatalf("got %d %s\nwant 503 %s", rec.Code, rec.Body, tt.want)
			}
			if rec.Header().Get("Content-Length") != fmt.Sprint(len(tt.want)) {
				t.Fatalf("Content-Length %s for %d bytes", rec.Header().Get("Content-Length"), len(tt.want))
			}
		})
	}
}

// TestNoWaitAfterCredentialsRanOut: the cold-start wait is for the first fetch only. When served
// credentials fall below the floor during an STS outage, a request gets its 503 at once instead
// of holding every SDK retry for the cold-start wait.
func TestNoWaitAfterCredentialsRanOut(t *testing.T) {
	var cur atomic.Pointer[creds.Credentials]
	var waits atomic.Int64
	src := funcSource{
		servable: func() *creds.Credentials { return cur.Load() },
		wait: func(ctx context.Context) *creds.Credentials {
			waits.Add(1)
			<-ctx.Done()
			return nil
		},
	}
	mux, _ := newCredentials(src, loadToken(t), WithClock(fakeClock()), WithColdStartWait(time.Millisecond))
	get := func() int {
		req := httptest.NewRequest(http.MethodGet, CredentialsPath, nil)
		req.Header.Set("Authorization", authToken)
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		return rec.Code
	}
	steps := []struct {
		name      string
		creds     *creds.Credentials
		wantCode  int
		wantWaits int64
	}{
		{name: "cold start waits for the first fetch", creds: nil, wantCode: 503, wantWaits: 1},
		{name: "served", creds: testCreds(testStart.Add(time.Hour)), wantCode: 200, wantWaits: 1},
		{name: "ran out: 503 without waiting", creds: nil, wantCode: 503, wantWaits: 1},
	}
	for _, s := range steps {
		cur.Store(s.creds)
		if got := get(); got != s.wantCode {
			t.Fatalf("%s: status %d, want %d", s.name, got, s.wantCode)
		}
		if got := waits.Load(); got != s.wantWaits {
			t.Fatalf("%s: Wait called %d times in all, want %d", s.name, got, s.wantWaits)
		}
	}
}

// The Date header of an answer comes from the clock reading of the expiry check, shared within
// a second, in net/http's format; net/http adds no second one.
func TestDateHeader(t *testing.T) {
	clk := fakeClock()
	ts := startServer(t, NewCredentials(fixedSource(testCreds(testStart.Add(time.Hour))), loadToken(t), WithClock(clk)), nil)
	get := func() []string {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, ts.URL+CredentialsPath, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", authToken)
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d, want 200", resp.StatusCode)
		}
		return resp.Header.Values("Date")
	}
	tests := []struct {
		name    string
		advance time.Duration
		want    string
	}{
		{name: "first", want: "Sat, 22 Aug 2026 12:04:05 GMT"},
		{name: "same second", advance: 900 * time.Millisecond, want: "Sat, 22 Aug 2026 12:04:05 GMT"},
		{name: "next second", advance: 200 * time.Millisecond, want: "Sat, 22 Aug 2026 12:04:06 GMT"},
		{name: "an hour on", advance: 59 * time.Minute, want: "Sat, 22 Aug 2026 13:03:06 GMT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk.Advance(tt.advance)
			if got := get(); len(got) != 1 || got[0] != tt.want {
				t.Errorf("Date %q, want exactly [%q]", got, tt.want)
			}
		})
	}
}
