package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/credsidecar/credsidecar/internal/app"
	"github.com/credsidecar/credsidecar/internal/clock"
	"github.com/credsidecar/credsidecar/internal/config"
	"github.com/credsidecar/credsidecar/internal/creds"
	"github.com/credsidecar/credsidecar/internal/testkit/sidecartest"
	"github.com/credsidecar/credsidecar/internal/testkit/testbed"
	"github.com/credsidecar/credsidecar/internal/testkit/testlog"
)

// guard bounds every wait for something asynchronous (a file event, an STS round trip, a
// goroutine reaching a point). It is a failure timeout, never a sleep.
const guard = 30 * time.Second

// env is the one environment all the tests of this binary share: SeaweedFS takes seconds to
// start, so it and everything around it is built once.
type env struct {
	iss    *testbed.Issuer
	proj   *testbed.Projector
	weed   *testbed.SeaweedFS
	proxy  *recordingProxy
	clk    *clock.Fake
	events *events
	logs   *logBuffer
	addrs  app.Addrs
	// authTokenFile is AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE; the sidecar generated its content.
	authTokenFile string
	// home is a scratch directory for the SDK subprocesses' HOME and absent config files.
	home    string
	admin   *s3.Client
	secrets *secrets
	http    *http.Client
}

// newEnv starts the issuer, the projected token, SeaweedFS, the recording proxy in front of
// SeaweedFS's STS, and the sidecar in-process, and returns once the sidecar serves
// credentials. t's clean-up stops everything, the sidecar first.
func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{
		clk:     clock.NewFake(time.Now()),
		events:  newEvents(),
		logs:    &logBuffer{},
		home:    t.TempDir(),
		secrets: &secrets{served: map[string]servedCreds{}},
		http:    &http.Client{Timeout: 5 * time.Second},
	}
	// The issuer and the projector keep wall time: SeaweedFS checks iat and exp against it. Only
	// the sidecar runs on the fake clock, so the test decides when it refreshes.
	e.iss = testbed.StartIssuerForTest(t, testbed.IssuerOptions{})
	e.proj = testbed.NewProjectorForTest(t, testbed.ProjectorOptions{
		Minter: e.iss.Minter(testbed.TokenRequest{
			Namespace:      testbed.DefaultNamespace,
			ServiceAccount: testbed.DefaultServiceAccount,
			Audiences:      []string{e.iss.Audience()},
		}),
	})
	e.recordToken(t)
	e.weed = testbed.StartSeaweedFSForTest(t, testbed.SeaweedFSOptions{Issuer: e.iss})
	e.admin = e.weed.S3Client(e.weed.AdminCredentials())
	e.proxy = startRecordingProxy(t, e.weed.Endpoint())

	cfg := config.Defaults()
	cfg.RoleARN, cfg.TokenFile = e.weed.RoleARN(), e.proj.Path()
	cfg.Region, cfg.STSEndpoint = testbed.Region, e.proxy.URL()
	cfg.Listen, cfg.MetricsListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.AuthTokenFile = filepath.Join(t.TempDir(), "auth", "token")
	cfg.LogFormat, cfg.LogLevel = "json", slog.LevelDebug
	e.authTokenFile = cfg.AuthTokenFile

	// Registered before the sidecar starts, so it runs after the sidecar has stopped.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sidecar logs:\n%s", e.logs.String())
		}
	})
	a := sidecartest.Start(t, cfg, app.Options{
		Logger:       app.NewLogger(e.logs, cfg.LogFormat, cfg.LogLevel),
		Version:      "e2e",
		Clock:        e.clk,
		CredsOptions: []creds.Option{creds.WithObserver(e.events)},
	}, guard)
	e.addrs = a.Addrs()
	receive(t, e.events.updated, "the first CredentialsUpdated")
	e.served(t)
	return e
}

// recordToken notes the projected token now in place, for the leak check, and returns it.
func (e *env) recordToken(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(e.proj.Path())
	if err != nil {
		t.Fatalf("read projected token: %v", err)
	}
	e.secrets.mu.Lock()
	e.secrets.tokens = append(e.secrets.tokens, string(b))
	e.secrets.mu.Unlock()
	return string(b)
}

// authToken is the Authorization value the sidecar expects, read as the SDKs read it.
func (e *env) authToken(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(e.authTokenFile)
	if err != nil {
		t.Fatalf("read auth token: %v", err)
	}
	return string(b)
}

// endpointCreds is the credentials endpoint's answer (PROTOCOL.md §1).
type endpointCreds struct {
	AccessKeyID     string `json:"AccessKeyId"`
	SecretAccessKey string `json:"SecretAccessKey"`
	Token           string `json:"Token"`
	Expiration      time.Time
	AccountID       string `json:"AccountId"`
	RoleARN         string `json:"RoleArn"`
}

// served asks the endpoint for the credentials it serves right now, as an SDK would, and
// remembers them for the leak check.
func (e *env) served(t *testing.T) endpointCreds {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.addrs.CredentialsURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", e.authToken(t))
	req.Header.Set("Accept", "application/json")
	resp, err := e.http.Do(req)
	if err != nil {
		t.Fatalf("GET credentials: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatalf("read credentials: %v", err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET credentials = %d %q, want 200 application/json", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var c endpointCreds
	if err := json.Unmarshal(body, &c); err != nil {
		t.Fatalf("decode credentials: %v", err)
	}
	if c.AccessKeyID == "" || c.SecretAccessKey == "" || c.Token == "" || c.Expiration.IsZero() {
		t.Fatalf("credentials incomplete: key id set %v, secret set %v, token set %v, expiration %v",
			c.AccessKeyID != "", c.SecretAccessKey != "", c.Token != "", c.Expiration)
	}
	e.secrets.addServed(c.AccessKeyID, c.SecretAccessKey, c.Token)
	return c
}

// metricsText scrapes /metrics.
func (e *env) metricsText(t *testing.T) string {
	t.Helper()
	resp, err := e.http.Get(e.addrs.MetricsURL() + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics = %d, %v", resp.StatusCode, err)
	}
	return string(b)
}

// servedCreds is one set of credentials the endpoint handed out.
type servedCreds struct{ accessKeyID, secretAccessKey, sessionToken string }

// secrets collects every secret the run handed out, so the last test can look for each in the
// logs and metrics.
type secrets struct {
	mu     sync.Mutex
	served map[string]servedCreds // by access key id
	tokens []string               // projected tokens, in the order the projector wrote them
}

func (s *secrets) addServed(id, secret, session string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.served[id] = servedCreds{id, secret, session}
}

func (s *secrets) snapshot() ([]servedCreds, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var list []servedCreds
	for _, c := range s.served {
		list = append(list, c)
	}
	return list, append([]string(nil), s.tokens...)
}

// events passes the credentials manager's events to the test, next to the metrics observer
// the sidecar installs itself.
type events struct {
	updated  chan time.Time
	reloaded chan time.Time
	dropped  atomic.Int64
}

var _ creds.Observer = (*events)(nil)

func newEvents() *events {
	return &events{updated: make(chan time.Time, 256), reloaded: make(chan time.Time, 256)}
}

func (*events) STSCall(string, string, time.Duration) {}

func (e *events) CredentialsUpdated(exp time.Time) { e.send(e.updated, exp) }

func (e *events) TokenReloaded(exp time.Time) { e.send(e.reloaded, exp) }

// send never blocks the manager; a full buffer is counted, and fails the test that waits.
func (e *events) send(ch chan time.Time, v time.Time) {
	select {
	case ch <- v:
	default:
		e.dropped.Add(1)
	}
}

// receive waits for the next value on ch.
func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(guard):
		t.Fatalf("no %s within %s", what, guard)
		var zero T
		return zero
	}
}

// drain empties ch, so that the next receive sees only what happens from now on.
func drain[T any](ch <-chan T) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

type logBuffer = testlog.Buffer

// logRecords decodes every line as the JSON object slog wrote.
func logRecords(b *logBuffer) ([]map[string]any, error) {
	var out []map[string]any
	for i, line := range bytes.Split(bytes.TrimSpace([]byte(b.String())), []byte("\n")) {
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err != nil {
			return nil, fmt.Errorf("log line %d is not JSON: %w", i+1, err)
		}
		out = append(out, rec)
	}
	if len(out) == 0 {
		return nil, errors.New("no log lines")
	}
	return out, nil
}
