package app

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/credsidecar/credsidecar/internal/config"
	"github.com/credsidecar/credsidecar/internal/creds"
	"github.com/credsidecar/credsidecar/internal/testkit/testbed"
	"github.com/credsidecar/credsidecar/internal/testkit/testlog"
)

type logBuffer = testlog.Buffer

// testConfig is a valid configuration on ephemeral loopback ports.
func testConfig(t *testing.T, roleARN, tokenFile, endpoint string) config.Config {
	t.Helper()
	cfg := config.Defaults()
	cfg.RoleARN, cfg.TokenFile = roleARN, tokenFile
	cfg.Region, cfg.STSEndpoint = testbed.Region, endpoint
	cfg.Listen, cfg.MetricsListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.AuthTokenFile = filepath.Join(t.TempDir(), "run", "auth-token")
	cfg.LogLevel = slog.LevelDebug
	return cfg
}

// isolateAWSEnv clears every AWS_* variable and keeps the SDK away from the machine's shared
// config and from IMDS, so that only what the test sets is seen.
func isolateAWSEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "AWS_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "no-config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "no-credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// started runs a in the background; the returned function cancels it and returns Run's result.
func started(t *testing.T, a *App) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				err = errors.New("Run did not return within 30s of cancellation")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// TestSidecarServesSDK runs the whole sidecar against SeaweedFS's STS with a kubelet-style
// projected token, then lets the AWS SDK's default credential chain fetch from it exactly as an
// application container would, and uses the credentials against S3.
func TestSidecarServesSDK(t *testing.T) {
	iss := testbed.StartIssuerForTest(t, testbed.IssuerOptions{})
	proj := testbed.NewProjectorForTest(t, testbed.ProjectorOptions{Minter: iss.Minter(testbed.TokenRequest{})})
	weed := testbed.StartSeaweedFSForTest(t, testbed.SeaweedFSOptions{Issuer: iss})

	logs := &logBuffer{}
	log := NewLogger(logs, "json", slog.LevelDebug)
	cfg := testConfig(t, weed.RoleARN(), proj.Path(), weed.Endpoint())
	var listening Addrs
	a, err := New(context.Background(), cfg, Options{Logger: log, Version: "v0.0.0-test",
		Listening: func(ad Addrs) { listening = ad }})
	if err != nil {
		t.Fatal(err)
	}
	stop := started(t, a)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if !a.WaitReady(ctx) {
		t.Fatalf("no credentials within 30s; logs:\n%s", logs)
	}
	if listening != a.Addrs() {
		t.Fatalf("Listening hook got %v, want %v", listening, a.Addrs())
	}

	isolateAWSEnv(t)
	t.Setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", a.Addrs().CredentialsURL())
	t.Setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", cfg.AuthTokenFile)
	sdkCfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(testbed.Region))
	if err != nil {
		t.Fatal(err)
	}
	got, err := sdkCfg.Credentials.Retrieve(ctx)
	if err != nil {
		t.Fatalf("SDK could not fetch from the sidecar: %v", err)
	}
	if got.AccessKeyID == "" || got.SecretAccessKey == "" || got.SessionToken == "" || !got.CanExpire {
		t.Fatalf("SDK got incomplete credentials (key %q, expiring %v)", creds.MaskKeyID(got.AccessKeyID), got.CanExpire)
	}
	if left := time.Until(got.Expires); left < 20*time.Minute {
		t.Fatalf("served credentials have %v left, want at least 20m", left)
	}
	if got.AccountID != testbed.AccountID {
		t.Fatalf("AccountID = %q, want %q", got.AccountID, testbed.AccountID)
	}
	s3c := weed.S3Client(sdkCfg.Credentials)
	if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(weed.Bucket()), Key: aws.String("app-test/hello.txt"), Body: strings.NewReader("hello"),
	}); err != nil {
		t.Fatalf("S3 upload with the served credentials: %v", err)
	}

	code, body := get(t, a.Addrs().MetricsURL()+"/readyz")
	if code != 200 {
		t.Fatalf("/readyz = %d %s", code, body)
	}
	_, metricsText := get(t, a.Addrs().MetricsURL()+"/metrics")
	for _, want := range []string{
		`credsidecar_ready{role=""} 1` + "\n",
		`credsidecar_sts_requests_total{code="",result="success",role=""} 1` + "\n",
		`credsidecar_http_requests_total{code="200",endpoint="credentials"} 1` + "\n",
		`credsidecar_build_info{goversion="`,
		`version="v0.0.0-test"} 1`,
		"go_goroutines ",
		"process_open_fds ",
	} {
		if !strings.Contains(metricsText, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("Run = %v, want nil after cancellation", err)
	}

	authToken, err := os.ReadFile(cfg.AuthTokenFile)
	if err != nil {
		t.Fatal(err)
	}
	jwt, err := os.ReadFile(proj.Path())
	if err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	for _, msg := range []string{"credsidecar starting", "fetched credentials", "http request", "shutting down", "credsidecar stopped"} {
		if !strings.Contains(out, `"msg":"`+msg+`"`) {
			t.Errorf("log lacks %q", msg)
		}
	}
	secrets := map[string]string{
		"secret key": got.SecretAccessKey, "session token": got.SessionToken,
		"auth token": string(authToken), "service-account token": strings.TrimSpace(string(jwt)),
		"JWT signature": strings.TrimSpace(string(jwt))[strings.LastIndexByte(strings.TrimSpace(string(jwt)), '.')+1:],
		"full key id":   got.AccessKeyID,
	}
	for name, secret := range secrets {
		if len(secret) < 8 {
			t.Fatalf("%s is too short to grep for", name)
		}
		if strings.Contains(out, secret) {
			t.Errorf("log reveals the %s", name)
		}
	}
}

// notifyingSTS passes every call to the real SDK client and reports when one has returned; it
// injects nothing.
type notifyingSTS struct {
	api   creds.STSAPI
	calls chan struct{}
}

func (n *notifyingSTS) AssumeRoleWithWebIdentity(ctx context.Context, in *sts.AssumeRoleWithWebIdentityInput, opts ...func(*sts.Options)) (*sts.AssumeRoleWithWebIdentityOutput, error) {
	out, err := n.api.AssumeRoleWithWebIdentity(ctx, in, opts...)
	select {
	case n.calls <- struct{}{}:
	default:
	}
	return out, err
}

// TestSidecarWithoutSTS starts the sidecar while STS cannot be reached: it must stay up and
// healthy but unready, answer 503 with the reason, count the failure, and still shut down cleanly.
func TestSidecarWithoutSTS(t *testing.T) {
	iss := testbed.StartIssuerForTest(t, testbed.IssuerOptions{})
	proj := testbed.NewProjectorForTest(t, testbed.ProjectorOptions{Minter: iss.Minter(testbed.TokenRequest{})})
	endpoint := "http://" + testbed.ClosedAddr(t)
	cfg := testConfig(t, testbed.DefaultRoleARN, proj.Path(), endpoint)
	cfg.Region = "" // an endpoint alone is enough
	logs := &logBuffer{}
	api := &notifyingSTS{api: creds.NewSTSClient(cfg.Region, cfg.STSEndpoint), calls: make(chan struct{}, 1)}
	a, err := New(context.Background(), cfg, Options{Logger: NewLogger(logs, "text", slog.LevelDebug), STS: api, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	stop := started(t, a)
	select {
	case <-api.calls:
	case <-time.After(30 * time.Second):
		t.Fatal("no STS call within 30s")
	}

	tok, err := os.ReadFile(cfg.AuthTokenFile)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, a.Addrs().CredentialsURL(), nil)
	req.Header.Set("Authorization", string(tok))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || body["Code"] != "CredentialsUnavailable" ||
		!strings.Contains(body["Message"], "Last STS error:") || !strings.Contains(body["message"], "connection refused") {
		t.Fatalf("got %d %v, want 503 naming the STS error", resp.StatusCode, body)
	}
	if code, _ := get(t, a.Addrs().MetricsURL()+"/healthz"); code != 200 {
		t.Fatalf("/healthz = %d, want 200", code)
	}
	if code, _ := get(t, a.Addrs().MetricsURL()+"/readyz"); code != 503 {
		t.Fatalf("/readyz = %d, want 503", code)
	}
	_, metricsText := get(t, a.Addrs().MetricsURL()+"/metrics")
	for _, want := range []string{`credsidecar_ready{role=""} 0` + "\n", `credsidecar_sts_requests_total{code=`, `result="error",role=""}`} {
		if !strings.Contains(metricsText, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	if strings.Contains(logs.String(), string(tok)) {
		t.Fatal("log reveals the auth token")
	}
}

func TestNewErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		modify func(c *config.Config)
		opts   Options
		want   string
	}{
		{name: "invalid configuration", modify: func(c *config.Config) { c.Duration = time.Minute },
			want: `invalid configuration: --duration (CREDSIDECAR_DURATION) = "1m0s"`},
		{name: "credentials port taken", modify: func(c *config.Config) { c.Listen = busy.Addr().String() },
			want: "start sidecar: credentials endpoint: listen on " + busy.Addr().String()},
		{name: "metrics port taken", modify: func(c *config.Config) { c.MetricsListen = busy.Addr().String() },
			want: "start sidecar: metrics endpoint: listen on " + busy.Addr().String()},
		{name: "auth token directory unusable", modify: func(c *config.Config) { c.AuthTokenFile = filepath.Join(notDir, "auth-token") },
			want: "start sidecar: load auth token from " + notDir + "/auth-token: "},
		{name: "instance metadata port taken", modify: func(c *config.Config) { c.IMDSListen = busy.Addr().String() },
			want: "start sidecar: instance metadata endpoint: listen imds on " + busy.Addr().String()},
		{name: "credentials file directory missing", modify: func(c *config.Config) {
			c.CredentialsFile = filepath.Join(t.TempDir(), "absent", "credentials")
		}, want: "start sidecar: new credentials file writer: "},
		{name: "chain with an STS client that cannot chain", modify: func(c *config.Config) {
			c.ChainRoleARNs = []string{"arn:aws:iam::111122223333:role/next"}
		}, opts: Options{STS: &notifyingSTS{}}, want: "start sidecar: credentials config: chain: needs an STS client with AssumeRole"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t, testbed.DefaultRoleARN, "/nonexistent/token", "http://127.0.0.1:1")
			tt.modify(&cfg)
			a, err := New(context.Background(), cfg, tt.opts)
			if err == nil {
				a.Close()
				t.Fatalf("New succeeded, want %s", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New error = %v, want one containing %s", err, tt.want)
			}
		})
	}
}

func TestRunOnceAndClose(t *testing.T) {
	cfg := testConfig(t, testbed.DefaultRoleARN, "/nonexistent/token", "http://"+testbed.ClosedAddr(t))
	cfg.IMDSListen = "127.0.0.1:0"
	a, err := New(context.Background(), cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	credsAddr, imdsAddr := a.Addrs().Credentials.String(), a.Addrs().IMDS.String()
	if got := a.Addrs().IMDSURL(); got != "http://"+imdsAddr+"/" {
		t.Errorf("IMDSURL() = %q, want http://%s/ (the trailing slash old botocore needs)", got, imdsAddr)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	if err := a.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "already run or closed") {
		t.Fatalf("Run after Close = %v", err)
	}
	// Close released the listeners.
	for _, addr := range []string{credsAddr, imdsAddr} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("listener not released: %v", err)
		}
		ln.Close()
	}
	if (Addrs{}).IMDSURL() != "" {
		t.Error("IMDSURL() of a sidecar without IMDS is not empty")
	}
}

// TestRunFunction checks the one-call form used by cmd/sidecar: the hook sees the addresses and
// cancellation returns nil.
func TestRunFunction(t *testing.T) {
	cfg := testConfig(t, testbed.DefaultRoleARN, "/nonexistent/token", "http://"+testbed.ClosedAddr(t))
	ctx, cancel := context.WithCancel(context.Background())
	var addrs atomic.Pointer[Addrs]
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cfg, Options{Listening: func(a Addrs) {
			addrs.Store(&a)
			cancel()
		}})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return within 30s of cancellation")
	}
	a := addrs.Load()
	if a == nil || !strings.HasPrefix(a.CredentialsURL(), "http://127.0.0.1:") || !strings.HasSuffix(a.CredentialsURL(), "/v1/credentials") {
		t.Fatalf("Listening got %+v", a)
	}
}
