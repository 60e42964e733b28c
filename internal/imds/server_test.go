package imds

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/credsidecar/credsidecar/internal/clock"
	"github.com/credsidecar/credsidecar/internal/creds"
	"github.com/credsidecar/credsidecar/internal/server"
	"github.com/credsidecar/credsidecar/internal/testkit/await"
)

var start = time.Date(2026, 8, 22, 12, 0, 0, 0, time.UTC)

func TestFullFlow(t *testing.T) {
	fc := clock.NewFake(start)
	c := realLookingCreds(t, start, time.Hour)
	_, ts := newTestServer(t, newTestSource(t, c), WithClock(fc))

	code, tok, hdr := do(t, ts, http.MethodPut, "/latest/api/token", http.Header{TTLHeader: {"21600"}})
	if code != http.StatusOK || len(tok) != 43 {
		t.Fatalf("PUT token: status %d, %d-character token, want 200 and 43", code, len(tok))
	}
	if got := hdr.Get(TTLHeader); got != "21600" {
		t.Errorf("TTL header echoed as %q, want 21600", got)
	}
	auth := withToken(tok)

	for _, path := range []string{"/latest/meta-data/iam/security-credentials/", "/latest/meta-data/iam/security-credentials"} {
		if code, body, _ := do(t, ts, http.MethodGet, path, auth); code != http.StatusOK || body != testRole {
			t.Errorf("GET %s = %d %q, want 200 %q", path, code, body, testRole)
		}
	}

	code, body, hdr := do(t, ts, http.MethodGet, "/latest/meta-data/iam/security-credentials/"+testRole, auth)
	if code != http.StatusOK {
		t.Fatalf("GET credentials: %d %s", code, body)
	}
	if cc := hdr.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
	var doc map[string]string
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("credentials document: %v", err)
	}
	want := map[string]string{
		"Code": "Success", "LastUpdated": "2026-08-22T12:00:00Z", "Type": "AWS-HMAC",
		"AccessKeyId": c.AccessKeyID, "SecretAccessKey": c.SecretAccessKey, "Token": c.SessionToken,
		"Expiration": "2026-08-22T13:00:00Z", "AccountId": testAccount,
	}
	if len(doc) != len(want) {
		t.Errorf("credentials document has %d fields, want %d", len(doc), len(want))
	}
	for k, v := range want {
		if doc[k] != v {
			t.Errorf("credentials document %s differs from the source's value", k)
		}
	}
	if !strings.HasPrefix(body, `{"Code":"Success","LastUpdated":`) {
		t.Errorf("credentials document does not start as IMDS's does: %.40s", body)
	}

	code, body, _ = do(t, ts, http.MethodGet, "/latest/meta-data/iam/info", auth)
	var info map[string]string
	if err := json.Unmarshal([]byte(body), &info); code != http.StatusOK || err != nil {
		t.Fatalf("GET iam/info: %d %v", code, err)
	}
	if info["Code"] != "Success" || info["InstanceProfileArn"] != "arn:aws:iam::123456789012:instance-profile/uploader" ||
		len(info["InstanceProfileId"]) != 21 || !strings.HasPrefix(info["InstanceProfileId"], "AIPA") {
		t.Errorf("iam/info = %v", info)
	}

	texts := []struct{ path, want string }{
		{"/latest/meta-data/placement/region", testRegion},
		{"/latest/meta-data/placement/availability-zone", testRegion + "a"},
		{"/latest/meta-data/placement/availability-zone/", testRegion + "a"}, // botocore's form
	}
	for _, tt := range texts {
		if code, body, _ := do(t, ts, http.MethodGet, tt.path, auth); code != http.StatusOK || body != tt.want {
			t.Errorf("GET %s = %d %q, want %q", tt.path, code, body, tt.want)
		}
	}

	code, body, _ = do(t, ts, http.MethodGet, "/latest/dynamic/instance-identity/document", auth)
	var ident map[string]any
	if err := json.Unmarshal([]byte(body), &ident); code != http.StatusOK || err != nil {
		t.Fatalf("GET identity document: %d %v", code, err)
	}
	if ident["region"] != testRegion || ident["accountId"] != testAccount || ident["availabilityZone"] != testRegion+"a" ||
		ident["pendingTime"] != "2026-08-22T12:00:00Z" || ident["instanceId"] != placeholderInstanceID {
		t.Errorf("identity document = %v", ident)
	}
}

func TestRefusals(t *testing.T) {
	src := newTestSource(t, realLookingCreds(t, time.Now(), time.Hour))
	_, ts := newTestServer(t, src)
	tok := token(t, ts, "300")
	creds := "/latest/meta-data/iam/security-credentials/" + testRole

	tests := []struct {
		name   string
		method string
		path   string
		header http.Header
		want   int
	}{
		{"imdsv1 credentials", http.MethodGet, creds, nil, http.StatusUnauthorized},
		{"imdsv1 role list", http.MethodGet, "/latest/meta-data/iam/security-credentials/", nil, http.StatusUnauthorized},
		{"imdsv1 region", http.MethodGet, "/latest/meta-data/placement/region", nil, http.StatusUnauthorized},
		{"unknown token", http.MethodGet, creds, withToken(strings.Repeat("A", 43)), http.StatusUnauthorized},
		{"token one character off", http.MethodGet, creds, withToken(tok[:42] + string(tok[42]^1)), http.StatusUnauthorized},
		{"token too long", http.MethodGet, creds, withToken(tok + "A"), http.StatusUnauthorized},
		{"two tokens", http.MethodGet, creds, http.Header{TokenHeader: {tok, tok}}, http.StatusUnauthorized},
		{"ttl missing", http.MethodPut, "/latest/api/token", nil, http.StatusBadRequest},
		{"ttl zero", http.MethodPut, "/latest/api/token", http.Header{TTLHeader: {"0"}}, http.StatusBadRequest},
		{"ttl above 6h", http.MethodPut, "/latest/api/token", http.Header{TTLHeader: {"21601"}}, http.StatusBadRequest},
		{"ttl not a number", http.MethodPut, "/latest/api/token", http.Header{TTLHeader: {"5m"}}, http.StatusBadRequest},
		{"ttl twice", http.MethodPut, "/latest/api/token", http.Header{TTLHeader: {"60", "60"}}, http.StatusBadRequest},
		{"token through a proxy", http.MethodPut, "/latest/api/token",
			http.Header{TTLHeader: {"60"}, "X-Forwarded-For": {"203.0.113.7"}}, http.StatusForbidden},
		{"credentials through a proxy", http.MethodGet, creds,
			http.Header{TokenHeader: {tok}, "X-Forwarded-For": {"203.0.113.7"}}, http.StatusForbidden},
		{"rfc 7239 forwarded", http.MethodGet, creds,
			http.Header{TokenHeader: {tok}, "Forwarded": {"for=203.0.113.7"}}, http.StatusForbidden},
		{"token through a proxy with Via", http.MethodPut, "/latest/api/token",
			http.Header{TTLHeader: {"60"}, "Via": {"1.1 squid"}}, http.StatusForbidden},
		{"token through nginx", http.MethodPut, "/latest/api/token",
			http.Header{TTLHeader: {"60"}, "X-Real-Ip": {"203.0.113.7"}}, http.StatusForbidden},
		{"token through envoy", http.MethodPut, "/latest/api/token",
			http.Header{TTLHeader: {"60"}, "X-Envoy-External-Address": {"203.0.113.7"}}, http.StatusForbidden},
		{"credentials with Via", http.MethodGet, creds, http.Header{TokenHeader: {tok}, "Via": {"1.1 proxy"}}, http.StatusForbidden},
		{"unknown path", http.MethodGet, "/latest/meta-data/hostname", withToken(tok), http.StatusNotFound},
		{"unknown role", http.MethodGet, "/latest/meta-data/iam/security-credentials/admin", withToken(tok), http.StatusNotFound},
		{"path below the role", http.MethodGet, creds + "/x", withToken(tok), http.StatusNotFound},
		{"get token", http.MethodGet, "/latest/api/token", nil, http.StatusMethodNotAllowed},
		{"post credentials", http.MethodPost, creds, withToken(tok), http.StatusMethodNotAllowed},
		{"put iam info", http.MethodPut, "/latest/meta-data/iam/info", withToken(tok), http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body, _ := do(t, ts, tt.method, tt.path, tt.header)
			if code != tt.want {
				t.Fatalf("%s %s = %d %q, want %d", tt.method, tt.path, code, body, tt.want)
			}
			if strings.Contains(body, "Secret") || strings.Contains(body, tok) {
				t.Errorf("refusal body leaks credentials or the token: %q", body)
			}
		})
	}
}

func TestTokenExpiresWithClock(t *testing.T) {
	fc := clock.NewFake(start)
	_, ts := newTestServer(t, newTestSource(t, realLookingCreds(t, start, time.Hour)), WithClock(fc))
	tok := token(t, ts, "60")
	path := "/latest/meta-data/iam/security-credentials/" + testRole

	fc.Advance(59 * time.Second)
	if code, _, _ := do(t, ts, http.MethodGet, path, withToken(tok)); code != http.StatusOK {
		t.Fatalf("at 59s of a 60s token: %d, want 200", code)
	}
	fc.Advance(time.Second)
	if code, _, _ := do(t, ts, http.MethodGet, path, withToken(tok)); code != http.StatusUnauthorized {
		t.Fatalf("at 60s of a 60s token: %d, want 401", code)
	}
	if code, _, _ := do(t, ts, http.MethodGet, path, withToken(token(t, ts, "60"))); code != http.StatusOK {
		t.Fatalf("with a fresh token: %d, want 200", code)
	}
}

func TestTokenStoreBound(t *testing.T) {
	fc := clock.NewFake(start)
	log, logs := newLogger(slog.LevelInfo)
	s, ts := newTestServer(t, newTestSource(t, realLookingCreds(t, start, time.Hour)),
		WithClock(fc), WithMaxTokens(4), WithLogger(log))
	valid := func(tok string) bool { return s.tokens.valid(fc.Now(), tok) }

	// Issued with lifetimes 500, 100, 400, 300 s: the 100 s one is nearest its expiry.
	var toks []string
	for _, ttl := range []string{"500", "100", "400", "300"} {
		toks = append(toks, token(t, ts, ttl))
	}
	fifth := token(t, ts, "200")
	if n := s.tokens.len(); n != 4 {
		t.Fatalf("store holds %d tokens, want the bound 4", n)
	}
	if valid(toks[1]) {
		t.Error("the token nearest its expiry survived eviction")
	}
	for _, tok := range []string{toks[0], toks[2], toks[3], fifth} {
		if !valid(tok) {
			t.Error("a token that should have been kept was dropped")
		}
	}
	for range 10 {
		token(t, ts, "600")
	}
	if n := s.tokens.len(); n != 4 {
		t.Fatalf("store holds %d tokens after 10 more, want 4", n)
	}
	if got := strings.Count(logs.String(), "token store full"); got != 1 {
		t.Errorf("store-full warning logged %d times, want once", got)
	}

	// Expired tokens are purged before anything valid is evicted.
	fc.Advance(time.Hour)
	tok := token(t, ts, "60")
	if n := s.tokens.len(); n != 1 || !valid(tok) {
		t.Errorf("after every token expired, the store holds %d, want just the new one", n)
	}
}

func TestNoServableCredentials(t *testing.T) {
	src := newTestSource(t, nil)
	_, ts := newTestServer(t, src, WithStartupWait(0))
	auth := withToken(token(t, ts, "300"))
	for _, path := range []string{
		"/latest/meta-data/iam/security-credentials/",
		"/latest/meta-data/iam/security-credentials/" + testRole,
		"/latest/meta-data/iam/info",
		"/latest/dynamic/instance-identity/document",
	} {
		if code, body, _ := do(t, ts, http.MethodGet, path, auth); code != http.StatusServiceUnavailable {
			t.Errorf("GET %s without credentials = %d %q, want 503", path, code, body)
		}
	}
	if code, _, _ := do(t, ts, http.MethodGet, "/latest/meta-data/placement/region", auth); code != http.StatusOK {
		t.Errorf("region needs no credentials, got %d", code)
	}

	// Once credentials were seen, the role and account stay known while the cache is below the
	// serving floor; only the credentials themselves are withheld.
	src.Set(realLookingCreds(t, time.Now(), time.Hour))
	if code, _, _ := do(t, ts, http.MethodGet, "/latest/meta-data/iam/security-credentials/"+testRole, auth); code != http.StatusOK {
		t.Fatalf("with credentials: %d", code)
	}
	src.Set(nil)
	if code, body, _ := do(t, ts, http.MethodGet, "/latest/meta-data/iam/security-credentials/", auth); code != http.StatusOK || body != testRole {
		t.Errorf("role list below the floor = %d %q, want 200 %q", code, body, testRole)
	}
	if code, _, _ := do(t, ts, http.MethodGet, "/latest/meta-data/iam/security-credentials/"+testRole, auth); code != http.StatusServiceUnavailable {
		t.Errorf("credentials below the floor = %d, want 503", code)
	}
}

func TestStartupWait(t *testing.T) {
	src := newTestSource(t, nil)
	_, ts := newTestServer(t, src, WithStartupWait(time.Minute))
	auth := withToken(token(t, ts, "300"))
	c := realLookingCreds(t, time.Now(), time.Hour)

	type result struct {
		code int
		body string
	}
	done := make(chan result, 1)
	go func() {
		code, body, _, err := request(ts, http.MethodGet, "/latest/meta-data/iam/security-credentials/"+testRole, auth)
		if err != nil {
			body = err.Error()
		}
		done <- result{code, body}
	}()
	await.Receive(t, 30*time.Second, src.waiting, "the request waiting for credentials")
	src.Set(c)
	r := await.Receive(t, 30*time.Second, done, "the answer to the waiting request")
	if r.code != http.StatusOK || !strings.Contains(r.body, c.AccessKeyID) {
		t.Fatalf("request that waited for the first credentials = %d %.80s, want 200 with them", r.code, r.body)
	}

	// With a wait that runs out, the answer is 503.
	_, ts2 := newTestServer(t, newTestSource(t, nil), WithStartupWait(time.Millisecond))
	code, _, _ := do(t, ts2, http.MethodGet, "/latest/meta-data/iam/security-credentials/"+testRole, withToken(token(t, ts2, "300")))
	if code != http.StatusServiceUnavailable {
		t.Fatalf("after the startup wait ran out: %d, want 503", code)
	}
}

// TestBelowThirtyMinutesServedQuietly: the manager refreshes at 40 minutes left, so below 30
// minutes means STS has been failing. The endpoint keeps serving what the manager calls
// servable, exactly, and writes no log line per request even at debug level.
func TestBelowThirtyMinutesServedQuietly(t *testing.T) {
	fc := clock.NewFake(start)
	log, logs := newLogger(slog.LevelDebug)
	c := realLookingCreds(t, start, 20*time.Minute)
	_, ts := newTestServer(t, newTestSource(t, c), WithClock(fc), WithLogger(log))
	auth := withToken(token(t, ts, "21600"))
	for i := range 50 {
		code, body, _ := do(t, ts, http.MethodGet, "/latest/meta-data/iam/security-credentials/"+testRole, auth)
		if code != http.StatusOK || !strings.Contains(body, `"Expiration":"2026-08-22T12:20:00Z"`) {
			t.Fatalf("request %d with 20 minutes left: %d, want 200 with the real expiry", i, code)
		}
		fc.Advance(10 * time.Second)
	}
	if n := logs.Lines(); n != 0 {
		t.Fatalf("%d log lines for 50 successful requests, want none:\n%s", n, logs)
	}
}

func TestNewCredentialsReencoded(t *testing.T) {
	fc := clock.NewFake(start)
	c1 := realLookingCreds(t, start, time.Hour)
	src := newTestSource(t, c1)
	s, ts := newTestServer(t, src, WithClock(fc))
	auth := withToken(token(t, ts, "21600"))
	path := "/latest/meta-data/iam/security-credentials/" + testRole

	_, body1, _ := do(t, ts, http.MethodGet, path, auth)
	d1 := s.docs.Load()
	fc.Advance(20 * time.Minute)
	_, body1again, _ := do(t, ts, http.MethodGet, path, auth)
	if s.docs.Load() != d1 || body1again != body1 {
		t.Error("the same credentials were encoded again")
	}

	c2 := realLookingCreds(t, fc.Now(), time.Hour)
	src.Set(c2)
	_, body2, _ := do(t, ts, http.MethodGet, path, auth)
	var doc struct{ AccessKeyId, LastUpdated string }
	if err := json.Unmarshal([]byte(body2), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.AccessKeyId != c2.AccessKeyID || doc.LastUpdated != "2026-08-22T12:20:00Z" {
		t.Errorf("after new credentials: key %s, LastUpdated %s; want the new key, 12:20:00Z",
			creds.MaskKeyID(doc.AccessKeyId), doc.LastUpdated)
	}
}

func TestSecretsNeverLogged(t *testing.T) {
	log, logs := newLogger(slog.LevelDebug)
	c := realLookingCreds(t, time.Now(), time.Hour)
	src := newTestSource(t, c)
	_, ts := newTestServer(t, src, WithLogger(log), WithStartupWait(0))
	tok := token(t, ts, "300")
	path := "/latest/meta-data/iam/security-credentials/" + testRole
	do(t, ts, http.MethodGet, path, withToken(tok))
	do(t, ts, http.MethodGet, path, http.Header{TokenHeader: {tok}, "X-Forwarded-For": {"10.0.0.1"}})
	do(t, ts, http.MethodGet, path, withToken(tok+"x"))
	src.Set(nil)
	do(t, ts, http.MethodGet, path, withToken(tok))
	out := logs.String()
	if logs.Lines() != 3 {
		t.Errorf("want 3 debug lines (forwarded, bad token, unavailable), got:\n%s", out)
	}
	for name, secret := range map[string]string{"session token": tok, "secret key": c.SecretAccessKey, "STS token": c.SessionToken} {
		if strings.Contains(out, secret) {
			t.Errorf("the %s reached the log", name)
		}
	}
}

func TestNewRefusesBadSettings(t *testing.T) {
	src := newTestSource(t, nil)
	tests := []struct {
		name   string
		src    Source
		region string
		opts   []Option
	}{
		{"no source", nil, "us-east-1", nil},
		{"no region", src, "", nil},
		{"region with a newline", src, "us-east-1\n", nil},
		{"zone of another region", src, "us-east-1", []Option{WithAvailabilityZone("us-west-2a")}},
		{"zone with two letters", src, "us-east-1", []Option{WithAvailabilityZone("us-east-1az")}},
		{"zone id instead of name", src, "us-east-1", []Option{WithAvailabilityZone("use1-az1")}},
		{"no tokens", src, "us-east-1", []Option{WithMaxTokens(0)}},
		{"negative wait", src, "us-east-1", []Option{WithStartupWait(-time.Second)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.src, tt.region, tt.opts...); err == nil || !strings.HasPrefix(err.Error(), "new imds server: ") {
				t.Fatalf("New = %v, want a \"new imds server: \" error", err)
			}
		})
	}
	if _, err := New(src, "us-gov-west-1", WithAvailabilityZone("us-gov-west-1b")); err != nil {
		t.Fatalf("a good zone was refused: %v", err)
	}
}

func TestCheckLoopback(t *testing.T) {
	tests := []struct {
		name string
		addr string
		ok   bool
	}{
		{"ipv4 loopback", "127.0.0.1:9911", true},
		{"other 127/8", "127.0.0.2:9911", true},
		{"ipv6 loopback", "[::1]:9911", true},
		{"any port", "127.0.0.1:0", true},
		{"all interfaces", ":9911", false},
		{"unspecified ipv4", "0.0.0.0:9911", false},
		{"pod ip", "10.1.2.3:9911", false},
		{"link-local imds address", "169.254.169.254:80", false},
		{"host name", "localhost:9911", false},
		{"no port", "127.0.0.1", false},
		{"bad port", "127.0.0.1:http", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := CheckLoopback(tt.addr); (err == nil) != tt.ok {
				t.Fatalf("CheckLoopback(%q) = %v, want ok=%v", tt.addr, err, tt.ok)
			}
		})
	}
}

// TestServedThroughServer serves the handler the way the sidecar does, through internal/server,
// and shuts it down there.
func TestServedThroughServer(t *testing.T) {
	s, err := New(newTestSource(t, realLookingCreds(t, time.Now(), time.Hour)), testRegion)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	srv := server.NewHTTPServer(server.Wrap(server.EndpointIMDS, s.Handler()), nil)
	go func() { errc <- server.Serve(ctx, srv, ln, 5*time.Second) }()

	url := "http://" + ln.Addr().String() + "/latest/api/token"
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, url, nil)
	req.Header.Set(TTLHeader, "60")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT token on the served listener: %d", resp.StatusCode)
	}
	cancel()
	if err := await.Receive(t, 30*time.Second, errc, "Serve's return after cancel"); err != nil {
		t.Fatalf("Serve after cancel = %v, want nil", err)
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Error("listener still accepts after Serve returned")
	}
	if _, err := Listen("0.0.0.0:0"); err == nil {
		t.Error("Listen accepted a non-loopback address")
	}
}

// TestPanicRecovered: a panic in the IMDS handler is answered with a 500 and logged by the
// shared middleware, and the endpoint keeps serving.
func TestPanicRecovered(t *testing.T) {
	log, logs := newLogger(slog.LevelInfo)
	src := panickingSource{}
	s, err := New(src, testRegion, WithLogger(log), WithStartupWait(0))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(server.Wrap(server.EndpointIMDS, s.Handler(), server.WithLogger(log)))
	ts.Config = server.NewHTTPServer(ts.Config.Handler, log)
	ts.Start()
	t.Cleanup(ts.Close)
	tok := token(t, ts, "60")
	for range 2 { // the server keeps serving after a panic
		code, body, _ := do(t, ts, http.MethodGet, "/latest/meta-data/iam/security-credentials/", withToken(tok))
		if code != http.StatusInternalServerError {
			t.Fatalf("got %d %s, want 500", code, body)
		}
	}
	if !strings.Contains(logs.String(), "source exploded") || !strings.Contains(logs.String(), `"endpoint":"imds"`) {
		t.Fatalf("panic not logged with endpoint imds:\n%s", logs)
	}
}

// panickingSource is a Source whose every call panics, as a bug in the manager would.
type panickingSource struct{}

func (panickingSource) Servable() *creds.Credentials { panic("source exploded") }

func (panickingSource) Wait(context.Context) *creds.Credentials { panic("source exploded") }

func TestParseRoleARN(t *testing.T) {
	tests := []struct {
		name, arn string
		want      roleARN
	}{
		{"plain", "arn:aws:iam::123456789012:role/app", roleARN{"aws", "123456789012", "app"}},
		{"with path", "arn:aws:iam::123456789012:role/team/x/app", roleARN{"aws", "123456789012", "app"}},
		{"china", "arn:aws-cn:iam::123456789012:role/app", roleARN{"aws-cn", "123456789012", "app"}},
		{"empty", "", roleARN{"aws", "", fallbackRole}},
		{"not a role", "arn:aws:iam::123456789012:user/bob", roleARN{"aws", "123456789012", fallbackRole}},
		{"trailing slash", "arn:aws:iam::123456789012:role/", roleARN{"aws", "123456789012", fallbackRole}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseRoleARN(tt.arn); got != tt.want {
				t.Fatalf("parseRoleARN(%q) = %+v, want %+v", tt.arn, got, tt.want)
			}
		})
	}
}

func ExampleCheckLoopback() {
	for _, addr := range []string{"127.0.0.1:9911", "0.0.0.0:9911"} {
		fmt.Println(addr, CheckLoopback(addr) == nil)
	}
	// Output:
	// 127.0.0.1:9911 true
	// 0.0.0.0:9911 false
}
