// Package sdkclient runs the real AWS SDK clients that tests check the sidecar's endpoints with
// (boto3, the AWS CLI and the JavaScript SDK as subprocesses, the Go SDKs in-process) in an
// environment holding only what the test gives them, so that a pass proves the credentials came
// from where the test says. It is imported by tests only.
package sdkclient

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Timeout bounds one client run.
const Timeout = 60 * time.Second

// awsEnv are the variables through which an SDK could find credentials or settings other than
// the ones under test.
var awsEnv = []string{
	"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
	"AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION",
	"AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_SESSION_NAME",
	"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
	"AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
	"AWS_EC2_METADATA_DISABLED", "AWS_EC2_METADATA_SERVICE_ENDPOINT", "AWS_EC2_METADATA_V1_DISABLED",
	"AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE",
}

// IsolateEnv clears, for the rest of t, every variable an in-process SDK could take credentials
// or settings from, gives it an empty HOME and shared files that do not exist, and disables
// IMDS. The test then sets what it checks.
func IsolateEnv(t *testing.T) {
	t.Helper()
	for _, k := range awsEnv {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(home, "no-config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(home, "no-credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// Python returns the interpreter boto3 is installed for, resolved through PATH (pyenv shims
// need the real HOME, which the clients do not get). Under -short it skips t.
func Python(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: no SDK subprocesses")
	}
	out, err := exec.Command("python3", "-c", "import sys, boto3; print(sys.executable)").Output()
	if err != nil {
		t.Fatalf("python3 with boto3 is needed (run `make deps`): %v", err)
	}
	return strings.TrimSpace(string(out))
}

// Node returns node and the node_modules directory scripts/install-test-deps.sh fills with the
// JavaScript SDK. Under -short it skips t.
func Node(t testing.TB) (node, modules string) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: no SDK subprocesses")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is needed (run `make deps`): %v", err)
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for ; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		if filepath.Dir(dir) == dir {
			t.Fatal("no go.mod above the working directory")
		}
	}
	modules = filepath.Join(dir, ".cache", "js", "node_modules")
	if _, err := os.Stat(filepath.Join(modules, "@aws-sdk", "credential-providers")); err != nil {
		t.Fatalf("the JavaScript SDK is needed in %s (run `make deps`): %v", modules, err)
	}
	return node, modules
}

// Run runs a client with PATH, an empty HOME, /dev/null for both shared AWS files, IMDS
// disabled, and env, whose entries win over those. It fails t unless the client exits 0, and
// returns its standard output.
func Run(t testing.TB, name string, args []string, env map[string]string) string {
	t.Helper()
	stdout, stderr, err := run(t, name, args, env)
	if err != nil {
		t.Fatalf("%s %s: %v\nstdout: %s\nstderr: %s", name, strings.Join(args, " "), err, stdout, stderr)
	}
	return stdout
}

// RunJSON is Run for clients that print their result as one JSON object on their last line.
func RunJSON(t testing.TB, name string, args []string, env map[string]string) map[string]any {
	t.Helper()
	out := strings.TrimSpace(Run(t, name, args, env))
	lines := strings.Split(out, "\n")
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &m); err != nil {
		t.Fatalf("%s: last line is not JSON: %v\n%s", name, err, out)
	}
	return m
}

func run(t testing.TB, name string, args []string, env map[string]string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + t.TempDir(),
		"AWS_CONFIG_FILE=/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE=/dev/null",
		"AWS_EC2_METADATA_DISABLED=true",
	}
	if pyenv := os.Getenv("PYENV_ROOT"); pyenv != "" {
		cmd.Env = append(cmd.Env, "PYENV_ROOT="+pyenv)
	}
	// exec keeps the last value of a repeated key, so the caller's env wins.
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}
