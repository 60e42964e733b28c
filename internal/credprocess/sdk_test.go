package credprocess

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/credsidecar/credsidecar/internal/creds"
	"github.com/credsidecar/credsidecar/internal/testkit/sdkclient"
)

// Real clients run this package's Main (the test binary itself, see TestMain) as the
// credential_process of a profile, against the sidecar's real credentials endpoint: botocore,
// the AWS CLI and the Go SDK v2.

const profile = "sidecar"

// processProfile writes an AWS config file whose profile runs the test binary as its
// credential_process against e, and returns the file's path.
func processProfile(t *testing.T, e *endpoint) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(exe+e.tokenFile, " '\"\\") {
		t.Fatalf("paths need quoting in credential_process: %q %q", exe, e.tokenFile)
	}
	cfg := filepath.Join(t.TempDir(), "config")
	body := "[profile " + profile + "]\n" +
		"credential_process = " + exe + " --endpoint " + e.URL() + " --auth-token-file " + e.tokenFile + "\n"
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func credsDigest(c *creds.Credentials) string {
	sum := sha256.Sum256([]byte(c.AccessKeyID + "\n" + c.SecretAccessKey + "\n" + c.SessionToken))
	return hex.EncodeToString(sum[:])
}

func TestBotocoreRunsProcess(t *testing.T) {
	py := sdkclient.Python(t)
	c := realLookingCreds(t, time.Now().Add(time.Hour))
	e := newEndpoint(t, c)
	cfg := processProfile(t, e)
	out := sdkclient.RunJSON(t, py, []string{"testdata/credprocess_boto3.py"}, map[string]string{
		mainEnv:               "1", // the process the profile names is this test binary
		"AWS_CONFIG_FILE":     cfg,
		"PROFILE":             profile,
		"EXPECT_CREDS_SHA256": credsDigest(c),
	})
	want := map[string]any{
		"provider":     "custom-process",
		"expiration":   c.Expiration.Format(time.RFC3339),
		"key_id_last4": c.AccessKeyID[len(c.AccessKeyID)-4:],
		"account":      c.AccountID,
		"creds_match":  true,
	}
	for k, v := range want {
		if out[k] != v {
			t.Errorf("%s = %v, want %v (all: %v)", k, out[k], v, out)
		}
	}
	if e.hits.Load() != 1 {
		t.Errorf("endpoint answered %d requests, want 1", e.hits.Load())
	}
}

// TestAWSCLIRunsProcess uses `aws configure list`, which resolves the profile's credentials
// (running the process) and shows the provider and the key id's last 4 characters. The AWS CLI
// v1 installed here has no `configure export-credentials` (a v2 command).
func TestAWSCLIRunsProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: no SDK subprocesses")
	}
	aws, err := exec.LookPath("aws")
	if err != nil {
		t.Fatalf("the AWS CLI is needed: %v", err)
	}
	c := realLookingCreds(t, time.Now().Add(time.Hour))
	e := newEndpoint(t, c)
	cfg := processProfile(t, e)
	out := sdkclient.Run(t, aws, []string{"configure", "list", "--profile", profile}, map[string]string{"AWS_CONFIG_FILE": cfg, mainEnv: "1"})
	if !strings.Contains(out, "custom-process") || !strings.Contains(out, c.AccessKeyID[len(c.AccessKeyID)-4:]) {
		t.Fatalf("aws configure list does not show the process's key:\n%s", out)
	}
	if e.hits.Load() < 1 {
		t.Error("the endpoint was never asked")
	}
}

func TestGoSDKv2RunsProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: no SDK subprocesses")
	}
	c := realLookingCreds(t, time.Now().Add(time.Hour))
	e := newEndpoint(t, c)
	cfg := processProfile(t, e)
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
		"AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	t.Setenv(mainEnv, "1") // inherited by the process the SDK starts
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	awsCfg, err := config.LoadDefaultConfig(ctx,
		config.WithRegion("us-east-1"),
		config.WithSharedConfigFiles([]string{cfg}),
		config.WithSharedCredentialsFiles([]string{}),
		config.WithSharedConfigProfile(profile))
	if err != nil {
		t.Fatalf("LoadDefaultConfig: %v", err)
	}
	got, err := awsCfg.Credentials.Retrieve(ctx)
	if err != nil {
		t.Fatalf("Retrieve: %v", err)
	}
	if got.AccessKeyID != c.AccessKeyID || got.SecretAccessKey != c.SecretAccessKey || got.SessionToken != c.SessionToken {
		t.Fatal("the Go SDK got other credentials than the endpoint served")
	}
	if !got.CanExpire || !got.Expires.Equal(c.Expiration) || got.AccountID != c.AccountID {
		t.Errorf("expiry %v (can expire %v), account %q; want %s and %s", got.Expires, got.CanExpire, got.AccountID, c.Expiration, c.AccountID)
	}
}
