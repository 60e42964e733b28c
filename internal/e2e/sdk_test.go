package e2e

//lint:file-ignore SA1019 the deprecated v1 SDK is used on purpose: apps still ship it, and its container-credentials client must work against the sidecar.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	awsv1 "github.com/aws/aws-sdk-go/aws"
	"github.com/aws/aws-sdk-go/aws/session"
	s3v1 "github.com/aws/aws-sdk-go/service/s3"
	stsv1 "github.com/aws/aws-sdk-go/service/sts"

	"github.com/credsidecar/credsidecar/internal/testkit/testbed"
)

// clientTimeout bounds one SDK client run, a subprocess's start-up included.
const clientTimeout = 60 * time.Second

// authMode is how a client is handed the endpoint's Authorization token.
type authMode int

const (
	// tokenFile is AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE, re-read by the SDK on every fetch.
	tokenFile authMode = iota
	// tokenValue is AWS_CONTAINER_AUTHORIZATION_TOKEN, all that older SDKs read.
	tokenValue
)

func (m authMode) String() string {
	if m == tokenValue {
		return "AWS_CONTAINER_AUTHORIZATION_TOKEN"
	}
	return "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"
}

// clientResult is what a client reports: the one JSON line the scripts print, or the same
// fields from an in-process run. It never holds a secret; keyID, the full access key id, is
// only known in-process.
type clientResult struct {
	Provider   string `json:"provider"`
	ARN        string `json:"arn"`
	Account    string `json:"account"`
	ETag       string `json:"etag"`
	KeyIDLast4 string `json:"key_id_last4"`
	Error      string `json:"error"`
	Message    string `json:"message"`
	keyID      string
}

// clientVars are the variables an app container next to the sidecar gets, and the object the
// client is to write. Nothing else points an SDK at credentials.
func (e *env) clientVars(t *testing.T, mode authMode, key string) map[string]string {
	t.Helper()
	vars := map[string]string{
		"AWS_CONTAINER_CREDENTIALS_FULL_URI": e.addrs.CredentialsURL(),
		// botocore reads only AWS_DEFAULT_REGION; EKS sets both, and so does a careful manifest.
		"AWS_REGION":                  testbed.Region,
		"AWS_DEFAULT_REGION":          testbed.Region,
		"AWS_CONFIG_FILE":             filepath.Join(e.home, "absent-config"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(e.home, "absent-credentials"),
		"AWS_EC2_METADATA_DISABLED":   "true",
		"E2E_ENDPOINT":                e.weed.Endpoint(),
		"E2E_BUCKET":                  e.weed.Bucket(),
		"E2E_KEY":                     key,
	}
	if mode == tokenValue {
		vars["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = e.authToken(t)
	} else {
		vars["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] = e.authTokenFile
	}
	return vars
}

// otherSources are the credential sources every SDK tries before the container endpoint, or
// that would redirect it; an in-process client sees them all empty.
var otherSources = []string{
	"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
	"AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
	"AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
}

// setProcessEnv gives this process exactly the client's view for the rest of t: every AWS_
// variable inherited is emptied, the other credential sources too, then vars are set.
func setProcessEnv(t *testing.T, vars map[string]string) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AWS_") {
			t.Setenv(k, "")
		}
	}
	for _, k := range otherSources {
		t.Setenv(k, "")
	}
	for k, v := range vars {
		t.Setenv(k, v)
	}
}

// runGoV2 is an app using aws-sdk-go-v2 with its default configuration, in-process.
func runGoV2(t *testing.T, e *env, mode authMode, key string) clientResult {
	t.Helper()
	setProcessEnv(t, e.clientVars(t, mode, key))
	ctx, cancel := context.WithTimeout(t.Context(), clientTimeout)
	defer cancel()
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatalf("aws-sdk-go-v2: load default config: %v", err)
	}
	c, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		t.Fatalf("aws-sdk-go-v2: retrieve credentials: %v", err)
	}
	e.secrets.addServed(c.AccessKeyID, c.SecretAccessKey, c.SessionToken)
	endpoint := aws.String(os.Getenv("E2E_ENDPOINT"))
	id, err := sts.NewFromConfig(cfg, func(o *sts.Options) { o.BaseEndpoint = endpoint }).
		GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatalf("aws-sdk-go-v2: GetCallerIdentity: %v", err)
	}
	put, err := s3.NewFromConfig(cfg, func(o *s3.Options) { o.BaseEndpoint, o.UsePathStyle = endpoint, true }).
		PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(os.Getenv("E2E_BUCKET")),
			Key:    aws.String(os.Getenv("E2E_KEY")),
			Body:   strings.NewReader("written by aws-sdk-go-v2 through credsidecar\n"),
		})
	if err != nil {
		t.Fatalf("aws-sdk-go-v2: PutObject: %v", err)
	}
	return clientResult{Provider: c.Source, ARN: aws.ToString(id.Arn), Account: aws.ToString(id.Account),
		ETag: aws.ToString(put.ETag), KeyIDLast4: last4(c.AccessKeyID), keyID: c.AccessKeyID}
}

// runGoV1 is an app using aws-sdk-go (v1) with a default session, in-process.
func runGoV1(t *testing.T, e *env, mode authMode, key string) clientResult {
	t.Helper()
	setProcessEnv(t, e.clientVars(t, mode, key))
	ctx, cancel := context.WithTimeout(t.Context(), clientTimeout)
	defer cancel()
	sess, err := session.NewSession()
	if err != nil {
		t.Fatalf("aws-sdk-go: new session: %v", err)
	}
	v, err := sess.Config.Credentials.GetWithContext(ctx)
	if err != nil {
		t.Fatalf("aws-sdk-go: get credentials: %v", err)
	}
	e.secrets.addServed(v.AccessKeyID, v.SecretAccessKey, v.SessionToken)
	endpoint := awsv1.String(os.Getenv("E2E_ENDPOINT"))
	id, err := stsv1.New(sess, &awsv1.Config{Endpoint: endpoint}).
		GetCallerIdentityWithContext(ctx, &stsv1.GetCallerIdentityInput{})
	if err != nil {
		t.Fatalf("aws-sdk-go: GetCallerIdentity: %v", err)
	}
	put, err := s3v1.New(sess, &awsv1.Config{Endpoint: endpoint, S3ForcePathStyle: awsv1.Bool(true)}).
		PutObjectWithContext(ctx, &s3v1.PutObjectInput{
			Bucket: awsv1.String(os.Getenv("E2E_BUCKET")),
			Key:    awsv1.String(os.Getenv("E2E_KEY")),
			Body:   strings.NewReader("written by aws-sdk-go through credsidecar\n"),
		})
	if err != nil {
		t.Fatalf("aws-sdk-go: PutObject: %v", err)
	}
	return clientResult{Provider: v.ProviderName, ARN: awsv1.StringValue(id.Arn), Account: awsv1.StringValue(id.Account),
		ETag: awsv1.StringValue(put.ETag), KeyIDLast4: last4(v.AccessKeyID), keyID: v.AccessKeyID}
}

// runBoto3 runs testdata/py/client.py: an app container using boto3's default chain.
func runBoto3(t *testing.T, e *env, mode authMode, key string) clientResult {
	t.Helper()
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 not found (%v): install Python 3 with boto3, or run make deps", err)
	}
	return runScript(t, e, e.clientVars(t, mode, key), python, scriptPath(t, "py/client.py"))
}

// runJS runs testdata/js/client.cjs: an app container using the JavaScript SDK v3's default
// chain, installed by scripts/install-test-deps.sh into .cache/js.
func runJS(t *testing.T, e *env, mode authMode, key string) clientResult {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node not found (%v): install Node.js, then run make deps", err)
	}
	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatalf("find the repository root: %v", err)
	}
	modules := filepath.Join(root, ".cache", "js", "node_modules")
	for _, pkg := range []string{"@aws-sdk/client-sts", "@aws-sdk/client-s3"} {
		if _, err := os.Stat(filepath.Join(modules, pkg, "package.json")); err != nil {
			t.Fatalf("the JavaScript SDK is not installed in %s (%v): run make deps", modules, err)
		}
	}
	vars := e.clientVars(t, mode, key)
	vars["NODE_PATH"] = modules
	return runScript(t, e, vars, node, scriptPath(t, "js/client.cjs"))
}

func scriptPath(t *testing.T, rel string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", rel))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// runScript runs a client in a subprocess whose environment is vars plus PATH and a HOME of
// its own, like an app container's, and decodes the one JSON line it prints.
func runScript(t *testing.T, e *env, vars map[string]string, program string, args ...string) clientResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), clientTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, program, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + e.home}
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	sort.Strings(cmd.Env)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	out := strings.TrimSpace(stdout.String())
	if ctx.Err() != nil {
		t.Fatalf("%s did not finish within %s; stderr:\n%s", filepath.Base(args[0]), clientTimeout, tail(stderr.String()))
	}
	if out == "" || strings.Contains(out, "\n") {
		t.Fatalf("%s printed %d lines, want one JSON line (exit: %v); stdout:\n%s\nstderr:\n%s",
			filepath.Base(args[0]), strings.Count(out, "\n")+1, runErr, tail(out), tail(stderr.String()))
	}
	var res clientResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%s printed %q, not JSON: %v", filepath.Base(args[0]), tail(out), err)
	}
	if runErr != nil || res.Error != "" {
		t.Fatalf("%s failed (exit: %v): error %q, message %q; stderr:\n%s",
			filepath.Base(args[0]), runErr, res.Error, res.Message, tail(stderr.String()))
	}
	return res
}

// tail keeps failure output readable.
func tail(s string) string {
	const max = 4000
	if len(s) > max {
		return "..." + s[len(s)-max:]
	}
	return s
}

func last4(id string) string {
	if len(id) < 4 {
		return id
	}
	return id[len(id)-4:]
}

// objectKey is a fresh key per client run, so that finding the object proves this run wrote it.
func objectKey(name string) string {
	return fmt.Sprintf("e2e/%s/%d", strings.NewReplacer(" ", "-", "/", "-").Replace(name), time.Now().UnixNano())
}
