package modes

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
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
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/credsidecar/credsidecar/internal/testkit/podenv"
	"github.com/credsidecar/credsidecar/internal/testkit/testbed"
)

// guard bounds every wait for something asynchronous (an STS round trip, a file event, a
// subprocess). It is a failure timeout, never a sleep.
const guard = 60 * time.Second

// chainedRole is the second role of the chaining test: sessions of the default role may assume it.
const chainedRole = "AKS-S3-Chained-Role"

// TestMain shares one podenv World (the issuer and SeaweedFS, which knows the chained role too)
// among the package's tests.
func TestMain(m *testing.M) {
	os.Exit(podenv.Main(m, podenv.Options{
		Guard:      guard,
		ExtraRoles: []testbed.Role{testbed.ChainedRole(chainedRole, testbed.DefaultRoleName, testbed.DefaultPolicyName)},
	}))
}

// env is what every test of the package shares: the podenv World, and the clients' scratch
// HOME. Each mode starts a sidecar of its own in it (w.StartSidecar): they are cheap, SeaweedFS
// is not.
type env struct {
	w     *podenv.World
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
	w := podenv.Shared(t)
	return &env{w: w, iss: w.Issuer, weed: w.Weed, admin: w.Admin, home: t.TempDir(), root: root}
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
