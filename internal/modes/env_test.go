package modes

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/credsidecar/credsidecar/internal/app"
	"github.com/credsidecar/credsidecar/internal/clock"
	"github.com/credsidecar/credsidecar/internal/config"
	"github.com/credsidecar/credsidecar/internal/creds"
	"github.com/credsidecar/credsidecar/internal/testkit/sidecartest"
	"github.com/credsidecar/credsidecar/internal/testkit/testbed"
)

// guard bounds every wait for something asynchronous (an STS round trip, a file event, a
// subprocess). It is a failure timeout, never a sleep.
const guard = 60 * time.Second

// chainedRole is the second role of the chaining test: sessions of the default role may assume it.
const chainedRole = "AKS-S3-Chained-Role"

// env is what every test of the package shares: one issuer and one SeaweedFS (which takes
// seconds to start), and the clients' scratch HOME.
type env struct {
	iss   *testbed.Issuer
	weed  *testbed.SeaweedFS
	admin *s3.Client
	home  string
	root  string // the repository root
}

func newEnv(t *testing.T) *env {
	t.Helper()
	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatalf("find the repository root: %v", err)
	}
	e := &env{home: t.TempDir(), root: root}
	e.iss = testbed.StartIssuerForTest(t, testbed.IssuerOptions{})
	e.weed = testbed.StartSeaweedFSForTest(t, testbed.SeaweedFSOptions{
		Issuer:     e.iss,
		ExtraRoles: []testbed.Role{testbed.ChainedRole(chainedRole, testbed.DefaultRoleName, testbed.DefaultPolicyName)},
	})
	e.admin = e.weed.S3Client(e.weed.AdminCredentials())
	return e
}

// sidecar is one sidecar run in-process through app.New on a fake clock.
type sidecar struct {
	cfg    config.Config
	addrs  app.Addrs
	clk    *clock.Fake
	logs   *logBuffer
	events *events
	proj   *testbed.Projector
	// timers is how many fake-clock timers the sidecar arms when idle (see settle).
	timers int
	http   *http.Client
}

// sidecarOptions vary a sidecar from the plain one.
type sidecarOptions struct {
	// token is what the projector mints; the default service account's token when zero.
	token testbed.TokenRequest
	// configure edits the configuration before New.
	configure func(c *config.Config)
	// creds are extra options of the credentials manager.
	creds []creds.Option
}

// startSidecar projects a token, builds the sidecar with app.New and runs it until t ends; it
// returns once the sidecar serves credentials.
func (e *env) startSidecar(t *testing.T, o sidecarOptions) *sidecar {
	t.Helper()
	// The issuer and the projector keep wall time, as SeaweedFS checks tokens against it; only
	// the sidecar runs on the fake clock, so the test decides when it refreshes.
	s := &sidecar{clk: clock.NewFake(time.Now()), logs: newLogBuffer(), events: newEvents(),
		http: &http.Client{Timeout: 10 * time.Second}}
	s.proj = testbed.NewProjectorForTest(t, testbed.ProjectorOptions{Minter: e.iss.Minter(o.token)})

	cfg := config.Defaults()
	cfg.RoleARN, cfg.TokenFile = e.weed.RoleARN(), s.proj.Path()
	cfg.Region, cfg.STSEndpoint = testbed.Region, e.weed.Endpoint()
	cfg.Listen, cfg.MetricsListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.AuthTokenFile = filepath.Join(t.TempDir(), "auth", "token")
	cfg.LogFormat, cfg.LogLevel = "json", slog.LevelDebug
	if o.configure != nil {
		o.configure(&cfg)
	}
	s.cfg = cfg
	// Idle, the sidecar waits on the refresh loop's and the token poll's timers and the auth
	// token's poll. The credentials file has no timer: it waits on the manager's Updated, and
	// arms one only to retry a failed write.
	s.timers = 3

	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sidecar logs:\n%s", s.logs.String())
		}
	})
	a := sidecartest.Start(t, cfg, app.Options{
		Logger:       app.NewLogger(s.logs, cfg.LogFormat, cfg.LogLevel),
		Version:      "modes-e2e",
		Clock:        s.clk,
		CredsOptions: append([]creds.Option{creds.WithObserver(s.events)}, o.creds...),
	}, guard)
	s.addrs = a.Addrs()
	receive(t, s.events.updated, "the first CredentialsUpdated")
	return s
}

// settle waits until every goroutine of the sidecar that the last clock move woke has re-armed
// its timer: a fired timer is off the fake clock's list until its owner is done and resets it.
func (s *sidecar) settle(t *testing.T) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		s.clk.WaitForTimers(s.timers)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(guard):
		t.Fatalf("the sidecar did not re-arm %d timers within %s (%d armed)", s.timers, guard, s.clk.Pending())
	}
}

// advanceUntilUpdated moves the fake clock a minute at a time, letting the sidecar react after
// each step, until it publishes new credentials; it returns their expiry.
func (s *sidecar) advanceUntilUpdated(t *testing.T) time.Time {
	t.Helper()
	s.settle(t)
	for i := 0; i < 24*60; i++ {
		s.clk.Advance(time.Minute)
		s.settle(t)
		select {
		case exp := <-s.events.updated:
			return exp
		default:
		}
	}
	t.Fatalf("no refresh within a day of fake time; logs:\n%s", s.logs.String())
	return time.Time{}
}

// authToken is the endpoint's Authorization token, read as the SDKs read it.
func (s *sidecar) authToken(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(s.cfg.AuthTokenFile)
	if err != nil {
		t.Fatalf("read auth token: %v", err)
	}
	return string(b)
}

// servedCreds is the container endpoint's answer (PROTOCOL.md §1).
type servedCreds struct {
	AccessKeyID     string `json:"AccessKeyId"`
	SecretAccessKey string `json:"SecretAccessKey"`
	Token           string `json:"Token"`
	Expiration      time.Time
	AccountID       string `json:"AccountId"`
	RoleARN         string `json:"RoleArn"`
}

// digest is what the scripts compare their credentials with (EXPECT_CREDS_SHA256).
func (c servedCreds) digest() string {
	sum := sha256.Sum256([]byte(c.AccessKeyID + "\n" + c.SecretAccessKey + "\n" + c.Token))
	return hex.EncodeToString(sum[:])
}

// served asks the container endpoint what it serves right now.
func (s *sidecar) served(t *testing.T) servedCreds {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.addrs.CredentialsURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", s.authToken(t))
	resp, err := s.http.Do(req)
	if err != nil {
		t.Fatalf("GET credentials: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET credentials = %d, %v", resp.StatusCode, err)
	}
	var c servedCreds
	if err := json.Unmarshal(body, &c); err != nil {
		t.Fatalf("decode credentials: %v", err)
	}
	if c.AccessKeyID == "" || c.SecretAccessKey == "" || c.Token == "" || c.Expiration.IsZero() {
		t.Fatal("the endpoint served incomplete credentials")
	}
	return c
}

// events passes the credentials manager's events to the test.
type events struct {
	updated  chan time.Time
	reloaded chan time.Time
	calls    atomic.Int64 // STS calls, chained hops included
}

var _ creds.Observer = (*events)(nil)

func newEvents() *events {
	return &events{updated: make(chan time.Time, 1024), reloaded: make(chan time.Time, 1024)}
}

func (e *events) STSCall(string, string, time.Duration) { e.calls.Add(1) }

func (e *events) CredentialsUpdated(exp time.Time) {
	select {
	case e.updated <- exp:
	default: // a test that waits for it fails on its guard
	}
}

func (e *events) TokenReloaded(exp time.Time) {
	select {
	case e.reloaded <- exp:
	default:
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

// logBuffer collects the sidecar's JSON log lines and lets a test wait for one.
type logBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newLogBuffer() *logBuffer { return &logBuffer{changed: make(chan struct{})} }

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	close(b.changed)
	b.changed = make(chan struct{})
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// count returns how many records have message msg and every attribute of attrs.
func (b *logBuffer) count(t *testing.T, msg string, attrs map[string]string) int {
	t.Helper()
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if rec["msg"] != msg {
			continue
		}
		match := true
		for k, v := range attrs {
			if fmt.Sprint(rec[k]) != v {
				match = false
			}
		}
		if match {
			n++
		}
	}
	return n
}

// waitCount waits until count(msg, attrs) reaches n.
func (b *logBuffer) waitCount(t *testing.T, n int, msg string, attrs map[string]string) {
	t.Helper()
	deadline := time.After(guard)
	for {
		b.mu.Lock()
		ch := b.changed
		b.mu.Unlock()
		if b.count(t, msg, attrs) >= n {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("fewer than %d logs %q with %v within %s; logs:\n%s", n, msg, attrs, guard, b.String())
		}
	}
}

// randomToken is an Authorization token as an operator would make one for a Secret.
func randomToken(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// objectKey is a fresh key per client run, so that finding the object proves this run wrote it.
func objectKey(name string) string {
	return fmt.Sprintf("modes/%s/%d", strings.NewReplacer(" ", "-", "/", "-").Replace(name), time.Now().UnixNano())
}

// checkObject asserts that the client's PutObject wrote key, with the ETag it reported.
func (e *env) checkObject(t *testing.T, key, etag string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), guard)
	defer cancel()
	head, err := e.admin.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(e.weed.Bucket()), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("HeadObject %s after the client's PutObject: %v", key, err)
	}
	if got := aws.ToString(head.ETag); got == "" || got != etag {
		t.Errorf("object ETag = %s, the client's PutObject returned %q", got, etag)
	}
}

// clientResult is the one JSON line a client script prints; it never holds a secret.
type clientResult struct {
	Provider   string `json:"provider"`
	ARN        string `json:"arn"`
	Account    string `json:"account"`
	ETag       string `json:"etag"`
	KeyIDLast4 string `json:"key_id_last4"`
	CredsMatch *bool  `json:"creds_match"`
	Error      string `json:"error"`
	Message    string `json:"message"`
}

// runScript runs a client in a subprocess whose environment is vars plus PATH and a HOME of its
// own, like an app container's, and decodes the one JSON line it prints.
func (e *env) runScript(t *testing.T, vars map[string]string, program string, args ...string) clientResult {
	t.Helper()
	out, stderr, err := e.runClient(t, vars, program, args...)
	out = strings.TrimSpace(out)
	lines := strings.Split(out, "\n")
	var res clientResult
	if jerr := json.Unmarshal([]byte(lines[len(lines)-1]), &res); jerr != nil || err != nil || res.Error != "" {
		t.Fatalf("%s: exit %v, error %q %q\nstdout:\n%s\nstderr:\n%s", filepath.Base(args[len(args)-1]), err,
			res.Error, res.Message, out, stderr)
	}
	return res
}

// runClient runs program with only vars, PATH, PYENV_ROOT and a HOME of its own in its
// environment, and returns its standard output and error.
func (e *env) runClient(t *testing.T, vars map[string]string, program string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), guard)
	defer cancel()
	cmd := exec.CommandContext(ctx, program, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + e.home}
	if v := os.Getenv("PYENV_ROOT"); v != "" {
		cmd.Env = append(cmd.Env, "PYENV_ROOT="+v)
	}
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	sort.Strings(cmd.Env)
	cmd.WaitDelay = 5 * time.Second
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s did not finish within %s; stderr:\n%s", program, guard, errOut.String())
	}
	return out.String(), errOut.String(), err
}

// python returns the interpreter boto3 is installed for, resolved through PATH once (pyenv
// shims need the real HOME, which the clients do not get).
func python(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("python3", "-c", "import sys, boto3; print(sys.executable)").Output()
	if err != nil {
		t.Fatalf("python3 with boto3 is needed (run `make deps`): %v", err)
	}
	return strings.TrimSpace(string(out))
}

// awsCLI returns the AWS CLI installed next to python's boto3, else the one on PATH.
func awsCLI(t *testing.T, py string) string {
	t.Helper()
	if p := filepath.Join(filepath.Dir(py), "aws"); fileExists(p) {
		return p
	}
	p, err := exec.LookPath("aws")
	if err != nil {
		t.Fatalf("the AWS CLI is needed: %v", err)
	}
	return p
}

// node returns node and the JavaScript SDK that scripts/install-test-deps.sh installs.
func (e *env) node(t *testing.T) (node, modules string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is needed (run `make deps`): %v", err)
	}
	modules = filepath.Join(e.root, ".cache", "js", "node_modules")
	for _, pkg := range []string{"@aws-sdk/credential-providers", "@aws-sdk/client-sts", "@aws-sdk/client-s3"} {
		if !fileExists(filepath.Join(modules, pkg, "package.json")) {
			t.Fatalf("the JavaScript SDK is not installed in %s: run make deps", modules)
		}
	}
	return node, modules
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// script is the absolute path of a test script under the repository root.
func (e *env) script(rel string) string { return filepath.Join(e.root, rel) }

// absent is a path nothing exists at, for AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE.
func (e *env) absent(name string) string { return filepath.Join(e.home, "absent-"+name) }

// isolateAWSEnv gives this process, for the rest of t, no AWS setting but vars: every AWS_
// variable inherited is emptied, the shared files point nowhere, IMDS is off unless vars say.
func (e *env) isolateAWSEnv(t *testing.T, vars map[string]string) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AWS_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	t.Setenv("AWS_CONFIG_FILE", e.absent("config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", e.absent("credentials"))
	if _, ok := vars["AWS_EC2_METADATA_SERVICE_ENDPOINT"]; !ok {
		t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	}
	for k, v := range vars {
		t.Setenv(k, v)
	}
}

func last4(s string) string {
	if len(s) < 4 {
		return s
	}
	return s[len(s)-4:]
}
