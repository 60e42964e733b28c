package imds

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/credsidecar/credsidecar/internal/creds"
	"github.com/credsidecar/credsidecar/internal/testkit/testlog"
)

const (
	testRegion  = "eu-west-2"
	testAccount = "123456789012"
	testRoleARN = "arn:aws:iam::" + testAccount + ":role/apps/uploader"
	testRole    = "uploader"
)

// testSource is a Source holding what a test puts in it. It is not a fake of anything: Source
// is this package's own seam, and the manager behind it in production is tested in creds.
type testSource struct {
	mu      sync.Mutex
	cur     *creds.Credentials
	changed chan struct{} // closed and replaced on every Set
	waiting chan struct{} // receives once per Wait call
}

func newTestSource(tb testing.TB, c *creds.Credentials) *testSource {
	tb.Helper()
	return &testSource{cur: c, changed: make(chan struct{}), waiting: make(chan struct{}, 16)}
}

func (s *testSource) Set(c *creds.Credentials) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur = c
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *testSource) Servable() *creds.Credentials {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

func (s *testSource) Wait(ctx context.Context) *creds.Credentials {
	select {
	case s.waiting <- struct{}{}:
	default:
	}
	for {
		s.mu.Lock()
		c, ch := s.cur, s.changed
		s.mu.Unlock()
		if c != nil {
			return c
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil
		}
	}
}

var (
	_ Source = (*testSource)(nil)
	_ Source = (*creds.Manager)(nil) // what the sidecar wires in
)

// realLookingCreds returns credentials shaped like STS's: an ASIA key id, a 40-character
// secret and a long session token, all random, expiring remaining after now.
func realLookingCreds(tb testing.TB, now time.Time, remaining time.Duration) *creds.Credentials {
	tb.Helper()
	const upper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	raw := make([]byte, 16+30+600)
	if _, err := rand.Read(raw); err != nil {
		tb.Fatal(err)
	}
	id := make([]byte, 16)
	for i := range id {
		id[i] = upper[int(raw[i])%len(upper)]
	}
	return &creds.Credentials{
		AccessKeyID:     "ASIA" + string(id),
		SecretAccessKey: base64.StdEncoding.EncodeToString(raw[16:46]),
		SessionToken:    "IQoJb3JpZ2luX2VjE" + base64.StdEncoding.EncodeToString(raw[46:]),
		Expiration:      now.Add(remaining).UTC().Truncate(time.Second),
		AccountID:       testAccount,
		RoleARN:         testRoleARN,
	}
}

// credsDigest is what the SDK scripts compare against, so that they never print a secret.
func credsDigest(c *creds.Credentials) string {
	sum := sha256.Sum256([]byte(c.AccessKeyID + "\n" + c.SecretAccessKey + "\n" + c.SessionToken))
	return hex.EncodeToString(sum[:])
}

type logBuffer = testlog.Buffer

func newLogger(level slog.Level) (*slog.Logger, *logBuffer) { return testlog.New(level) }

// newTestServer serves a Server over httptest on 127.0.0.1.
func newTestServer(tb testing.TB, src Source, opts ...Option) (*Server, *httptest.Server) {
	tb.Helper()
	s, err := New(src, testRegion, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	tb.Cleanup(ts.Close)
	return s, ts
}

// do sends one request and returns the status, the body and the headers.
func do(tb testing.TB, ts *httptest.Server, method, path string, header http.Header) (int, string, http.Header) {
	tb.Helper()
	code, body, h, err := request(ts, method, path, header)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	return code, body, h
}

// request is do for goroutines other than the test's, which must not call Fatal.
func request(ts *httptest.Server, method, path string, header http.Header) (int, string, http.Header, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, ts.URL+path, nil)
	if err != nil {
		return 0, "", nil, err
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header, err
}

// token fetches a session token valid for ttl seconds.
func token(tb testing.TB, ts *httptest.Server, ttl string) string {
	tb.Helper()
	code, body, _ := do(tb, ts, http.MethodPut, "/latest/api/token", http.Header{TTLHeader: {ttl}})
	if code != http.StatusOK {
		tb.Fatalf("PUT token: status %d: %s", code, body)
	}
	return body
}

func withToken(tok string) http.Header { return http.Header{TokenHeader: {tok}} }
