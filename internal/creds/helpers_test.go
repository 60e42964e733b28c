package creds

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/credsidecar/credsidecar/internal/clock"
	"github.com/credsidecar/credsidecar/internal/testkit/await"
	"github.com/credsidecar/credsidecar/internal/testkit/observe"
	"github.com/credsidecar/credsidecar/internal/testkit/testlog"
)

// t0 is where every fake clock starts.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const testRole = "arn:aws:iam::123456789012:role/app"

// guard bounds how long a test waits for something asynchronous (fsnotify delivery, a
// goroutine reaching a point) before failing. It is a failure timeout, not a sleep.
const guard = 10 * time.Second

// makeJWT builds a JWT with the structure of a projected service-account token. The signature
// is random bytes: nothing here checks it (STS does).
func makeJWT(tb testing.TB, claims map[string]any) string {
	tb.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			tb.Fatalf("marshal jwt part: %v", err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	sig := make([]byte, 64)
	if _, err := rand.Read(sig); err != nil {
		tb.Fatalf("random signature: %v", err)
	}
	return enc(map[string]any{"alg": "RS256", "kid": "test-key", "typ": "JWT"}) + "." + enc(claims) + "." +
		base64.RawURLEncoding.EncodeToString(sig)
}

// k8sClaims are the claims the kubelet puts in a projected token, issued at iat and valid for ttl.
func k8sClaims(iat time.Time, ttl time.Duration) map[string]any {
	return map[string]any{
		"iss": "https://oidc.example.test/cluster",
		"sub": "system:serviceaccount:shop:uploader",
		"aud": []string{"sts.amazonaws.com"},
		"iat": iat.Unix(),
		"nbf": iat.Unix(),
		"exp": iat.Add(ttl).Unix(),
		"jti": hex.EncodeToString([]byte(iat.String())),
		"kubernetes.io": map[string]any{
			"namespace":      "shop",
			"serviceaccount": map[string]any{"name": "uploader", "uid": "11111111-2222-3333-4444-555555555555"},
			"pod":            map[string]any{"name": "uploader-7d9f8-abcde", "uid": "66666666-7777-8888-9999-000000000000"},
			"node":           map[string]any{"name": "aks-node-0", "uid": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"},
		},
	}
}

// validToken is a fresh token valid for a day from the fake clock's start.
func validToken(tb testing.TB) string { return makeJWT(tb, k8sClaims(t0, 24*time.Hour)) }

// projectedDir lays out a token directory the way the kubelet's atomic writer does:
// <dir>/token -> ..data/token, ..data -> ..<timestamp>, and rotation writes a new timestamped
// directory and renames a fresh ..data_tmp symlink over ..data.
type projectedDir struct {
	tb  testing.TB
	dir string
	gen int
	cur string
}

func newProjectedDir(tb testing.TB) *projectedDir {
	return newProjectedDirAt(tb, tb.TempDir())
}

// newProjectedDirAt uses dir, which need not exist until the first write.
func newProjectedDirAt(tb testing.TB, dir string) *projectedDir {
	return &projectedDir{tb: tb, dir: dir}
}

func (p *projectedDir) path() string { return filepath.Join(p.dir, "token") }

func (p *projectedDir) must(err error) {
	p.tb.Helper()
	if err != nil {
		p.tb.Fatalf("projected dir: %v", err)
	}
}

// write rotates the token to content, atomically as the kubelet does.
func (p *projectedDir) write(content string) {
	p.tb.Helper()
	p.gen++
	name := fmt.Sprintf("..2026_03_01_12_00_00.%09d", p.gen)
	p.must(os.MkdirAll(filepath.Join(p.dir, name), 0o755))
	p.must(os.WriteFile(filepath.Join(p.dir, name, "token"), []byte(content), 0o644))
	p.swapData(name)
	p.ensureTokenLink()
}

// swapData points ..data at name by renaming a new symlink over it, and drops the old directory.
func (p *projectedDir) swapData(name string) {
	p.tb.Helper()
	tmp := filepath.Join(p.dir, "..data_tmp")
	p.must(os.Symlink(name, tmp))
	p.must(os.Rename(tmp, filepath.Join(p.dir, "..data")))
	if p.cur != "" {
		p.must(os.RemoveAll(filepath.Join(p.dir, p.cur)))
	}
	p.cur = name
}

func (p *projectedDir) ensureTokenLink() {
	p.tb.Helper()
	if dest, err := os.Readlink(p.path()); err == nil && dest == "..data/token" {
		return
	}
	p.must(os.RemoveAll(p.path()))
	p.must(os.Symlink("..data/token", p.path()))
}

// Faults a broken volume or a careless operator can produce.
func (p *projectedDir) deleteToken() { p.must(os.Remove(p.path())) }

func (p *projectedDir) tokenIsDir() {
	p.must(os.Remove(p.path()))
	p.must(os.Mkdir(p.path(), 0o755))
}

func (p *projectedDir) danglingData() { p.swapData("..2026_gone") }

func (p *projectedDir) danglingToken() {
	p.must(os.Remove(p.path()))
	p.must(os.Symlink("..data/missing", p.path()))
}

// stsCall is what the fake STS received.
type stsCall struct {
	at       time.Time
	token    string
	session  string
	role     string
	duration int32
}

// fakeSTS stands in for STS only to inject faults that SeaweedFS (the real STS used by the
// integration tests) cannot produce on demand: outages, throttling, network errors, trust
// policy rejections, slow answers. It records every call and the token it received.
type fakeSTS struct {
	tb       testing.TB
	clk      clock.Clock
	lifetime time.Duration // of issued credentials; 0 means the requested DurationSeconds

	mu     sync.Mutex
	calls  []stsCall
	issued []types.Credentials
	fail   func(n int, c stsCall) error // n counts calls from 1; nil or a nil result means success
	// called receives every call as it arrives, so tests can wait for one without sleeping.
	called chan stsCall
}

var _ STSAPI = (*fakeSTS)(nil)

func newFakeSTS(tb testing.TB, clk clock.Clock) *fakeSTS {
	return &fakeSTS{tb: tb, clk: clk, called: make(chan stsCall, 10000)}
}

func (f *fakeSTS) setFail(fn func(n int, c stsCall) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = fn
}

func (f *fakeSTS) AssumeRoleWithWebIdentity(ctx context.Context, in *sts.AssumeRoleWithWebIdentityInput, _ ...func(*sts.Options)) (*sts.AssumeRoleWithWebIdentityOutput, error) {
	if _, ok := ctx.Deadline(); !ok {
		f.tb.Errorf("STS called without a deadline")
	}
	c := stsCall{
		at:       f.clk.Now(),
		token:    aws.ToString(in.WebIdentityToken),
		session:  aws.ToString(in.RoleSessionName),
		role:     aws.ToString(in.RoleArn),
		duration: aws.ToInt32(in.DurationSeconds),
	}
	f.mu.Lock()
	f.calls = append(f.calls, c)
	n := len(f.calls)
	fail := f.fail
	f.mu.Unlock()
	f.called <- c
	if fail != nil {
		if err := fail(n, c); err != nil {
			return nil, err
		}
	}
	life := f.lifetime
	if life == 0 {
		life = time.Duration(c.duration) * time.Second
	}
	exp := c.at.Add(life)
	sc := types.Credentials{
		AccessKeyId:     aws.String(fmt.Sprintf("ASIATESTKEY%09d", n)),
		SecretAccessKey: aws.String(fmt.Sprintf("secretKey/%d/%s", n, randHex(f.tb, 16))),
		SessionToken:    aws.String(fmt.Sprintf("sessionToken/%d/%s", n, randHex(f.tb, 64))),
		Expiration:      &exp,
	}
	f.mu.Lock()
	f.issued = append(f.issued, sc)
	f.mu.Unlock()
	return &sts.AssumeRoleWithWebIdentityOutput{
		Credentials: &sc,
		AssumedRoleUser: &types.AssumedRoleUser{
			Arn:           aws.String("arn:aws:sts::123456789012:assumed-role/app/" + c.session),
			AssumedRoleId: aws.String("AROATEST:" + c.session),
		},
	}, nil
}

func (f *fakeSTS) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

func (f *fakeSTS) issuedList() []types.Credentials {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]types.Credentials(nil), f.issued...)
}

func (f *fakeSTS) callList() []stsCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]stsCall(nil), f.calls...)
}

// next waits for the next call.
func (f *fakeSTS) next(tb testing.TB) stsCall {
	tb.Helper()
	select {
	case c := <-f.called:
		return c
	case <-time.After(guard):
		tb.Fatalf("no STS call within %s", guard)
		return stsCall{}
	}
}

func randHex(tb testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		tb.Fatalf("random: %v", err)
	}
	return hex.EncodeToString(b)
}

// Errors as the SDK returns them, built from the SDK's own types.

func opErr(err error) error {
	return &smithy.OperationError{ServiceID: "STS", OperationName: "AssumeRoleWithWebIdentity", Err: err}
}

func httpErr(status int, err error) error {
	return opErr(&awshttp.ResponseError{
		ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status, Header: http.Header{}}},
			Err:      err,
		},
		RequestID: "req-1",
	})
}

func apiErr(status int, code string, fault smithy.ErrorFault) error {
	return httpErr(status, &smithy.GenericAPIError{Code: code, Message: code + " from test", Fault: fault})
}

func err5xx() error { return apiErr(500, "InternalFailure", smithy.FaultServer) }

func errThrottle() error { return apiErr(400, "Throttling", smithy.FaultClient) }

func errNetwork() error {
	return opErr(&smithyhttp.RequestSendError{Err: &url.Error{
		Op: "Post", URL: "https://sts.eu-west-1.amazonaws.com/",
		Err: &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)},
	}})
}

// logCapture is testlog's capture, waited on with this package's guard.
type logCapture struct{ *testlog.Buffer }

func newLogCapture() *logCapture { return &logCapture{&testlog.Buffer{}} }

func (c *logCapture) logger() *slog.Logger { return c.Logger(slog.LevelDebug) }

// waitFor blocks until a record with message msg containing every one of want appears.
func (c *logCapture) waitFor(tb testing.TB, msg string, want ...string) map[string]any {
	tb.Helper()
	return c.WaitFind(tb, guard, msg, want...)
}

// The tests' observer is testkit's Recorder: it must be one to the manager.
var _ Observer = (*observe.Recorder)(nil)

func waitChan[T any](tb testing.TB, ch <-chan T, what string) T {
	tb.Helper()
	return await.Receive(tb, guard, ch, what)
}

// harness runs a Manager against a fake clock, a kubelet-style token dir and the fault-injecting STS.
type harness struct {
	t    *testing.T
	clk  *clock.Fake
	dir  *projectedDir
	sts  *fakeSTS
	logs *logCapture
	obs  *observe.Recorder
	cfg  Config
	m    *Manager
	r    float64 // jitter returned by the injected rand
	// steps counts step calls, against maxSteps.
	steps int
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	clk := clock.NewFake(t0)
	h := &harness{
		t:    t,
		clk:  clk,
		dir:  newProjectedDir(t),
		sts:  newFakeSTS(t, clk),
		logs: newLogCapture(),
		obs:  observe.NewRecorder(),
	}
	h.cfg = Config{RoleARN: testRole, TokenFile: h.dir.path()}
	return h
}

// start builds the Manager and runs it until the test ends. The first fetch has completed
// and all timers are armed when it returns.
func (h *harness) start(opts ...Option) {
	h.t.Helper()
	h.build(opts...)
	h.run()
	h.settle()
}

func (h *harness) build(opts ...Option) {
	h.t.Helper()
	base := []Option{WithClock(h.clk), WithLogger(h.logs.logger()), WithObserver(h.obs),
		WithRand(func() float64 { return h.r }), WithExplain(explainForTest)}
	m, err := NewManager(h.cfg, h.sts, append(base, opts...)...)
	if err != nil {
		h.t.Fatalf("NewManager: %v", err)
	}
	h.m = m
}

func (h *harness) run() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.m.Run(ctx) }()
	h.t.Cleanup(func() {
		cancel()
		if err := waitChan(h.t, done, "Run return"); err != nil {
			h.t.Errorf("Run returned %v, want nil after cancel", err)
		}
	})
}

// settle waits until the refresh loop and the token poll have both armed their timers, i.e.
// whatever the last clock move triggered has been handled.
func (h *harness) settle() {
	h.t.Helper()
	await.Timers(h.t, guard, h.clk, 2)
}

// maxSteps bounds the clock steps of one test, so a loop stepping until something happens
// fails with a message when it never does: a day of 1 s retries is well below it.
const maxSteps = 100000

// step moves the clock to the next timer and waits for the reaction.
func (h *harness) step() {
	h.t.Helper()
	if h.steps++; h.steps > maxSteps {
		h.t.Fatalf("still stepping after %d clock steps (now %v); STS calls: %d", maxSteps, h.clk.Now(), h.sts.count())
	}
	h.settle()
	h.clk.AdvanceToNext()
	h.settle()
}

// stepUntil steps until the clock reaches end (at least), calling each after every step.
func (h *harness) stepUntil(end time.Time, each func()) {
	for h.clk.Now().Before(end) {
		h.settle()
		if next, _ := h.clk.NextDeadline(); next.After(end) {
			h.clk.Set(end)
		} else {
			h.clk.AdvanceToNext()
		}
		h.settle()
		if each != nil {
			each()
		}
	}
}

// explainForTest stands in for findings.ExplainSTS (which imports creds, so creds' tests cannot
// use it): a cause that names the code and, for a chained hop, the roles, so the tests can check
// that the manager logs the explanation of the error it got. The explanations themselves are
// tested in package findings.
func explainForTest(err error, code string, _ *TokenClaims) (id, cause string) {
	var ce *ChainError
	if errors.As(err, &ce) {
		return "finding-" + code, "cause of " + code + " at " + ce.RoleARN + " from " + ce.FromRoleARN
	}
	return "finding-" + code, "cause of " + code
}
