package credfile

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

	"github.com/aws/aws-sdk-go-v2/config"
)

// Real readers of the file: the Go SDK v2's shared-config loader in process, boto3 and the
// AWS CLI as subprocesses.

func TestGoSDKv2ReadsFile(t *testing.T) {
	tests := []struct{ name, profile string }{
		{"default profile", DefaultProfile},
		{"named profile", "ci"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolateAWSEnv(t)
			path := filepath.Join(t.TempDir(), "credentials")
			c := realLookingCreds(t, time.Now().Add(time.Hour))
			w, err := New(path, tt.profile)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Update(c); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cfg, err := config.LoadDefaultConfig(ctx,
				config.WithRegion("us-east-1"),
				config.WithSharedConfigFiles([]string{}),
				config.WithSharedCredentialsFiles([]string{path}),
				config.WithSharedConfigProfile(tt.profile))
			if err != nil {
				t.Fatalf("LoadDefaultConfig: %v", err)
			}
			got, err := cfg.Credentials.Retrieve(ctx)
			if err != nil {
				t.Fatalf("Retrieve: %v", err)
			}
			if got.AccessKeyID != c.AccessKeyID || got.SecretAccessKey != c.SecretAccessKey || got.SessionToken != c.SessionToken {
				t.Fatal("the Go SDK read other credentials than were written")
			}
			if !strings.Contains(got.Source, "SharedConfigCredentials") {
				t.Errorf("credentials source %q, want the shared credentials file", got.Source)
			}
		})
	}
}

func TestBoto3ReadsFile(t *testing.T) {
	py := python(t)
	tests := []struct{ name, profile string }{
		{"default profile", DefaultProfile},
		{"named profile", "ci"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "credentials")
			c := realLookingCreds(t, time.Now().Add(time.Hour))
			w, err := New(path, tt.profile)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Update(c); err != nil {
				t.Fatal(err)
			}
			env := map[string]string{"AWS_SHARED_CREDENTIALS_FILE": path, "EXPECT_CREDS_SHA256": credsDigest(c)}
			if tt.profile != DefaultProfile {
				env["PROFILE"] = tt.profile
			}
			out := runJSON(t, py, []string{"testdata/credfile_boto3.py"}, env)
			want := map[string]any{
				"provider":     "shared-credentials-file",
				"key_id_last4": c.AccessKeyID[len(c.AccessKeyID)-4:],
				"creds_match":  true,
			}
			for k, v := range want {
				if out[k] != v {
					t.Errorf("%s = %v, want %v (all: %v)", k, out[k], v, out)
				}
			}
		})
	}
}

// TestAWSCLIReadsFile asks the AWS CLI (v1 here) which credentials it would use: `aws configure
// list` names the provider and shows the key id's last 4 characters.
func TestAWSCLIReadsFile(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: no SDK subprocesses")
	}
	aws, err := exec.LookPath("aws")
	if err != nil {
		t.Fatalf("the AWS CLI is needed: %v", err)
	}
	path := filepath.Join(t.TempDir(), "credentials")
	c := realLookingCreds(t, time.Now().Add(time.Hour))
	w, err := New(path, "ci")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Update(c); err != nil {
		t.Fatal(err)
	}
	out := run(t, aws, []string{"configure", "list", "--profile", "ci"}, map[string]string{"AWS_SHARED_CREDENTIALS_FILE": path})
	if !strings.Contains(out, "shared-credentials-file") || !strings.Contains(out, c.AccessKeyID[len(c.AccessKeyID)-4:]) {
		t.Fatalf("aws configure list does not show the file's key:\n%s", out)
	}
	if strings.Contains(out, c.SecretAccessKey) {
		t.Fatal("aws configure list printed the secret") // it masks it; the test must not leak it either
	}
}

// isolateAWSEnv clears every variable that would let the Go SDK find credentials elsewhere.
func isolateAWSEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{
		"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
		"AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE",
	} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	t.Setenv("HOME", t.TempDir())
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// python returns the interpreter boto3 is installed for, resolved through PATH once (pyenv
// shims need the real HOME, which the clients do not get).
func python(t *testing.T) string {
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

// run runs a client with only the given environment plus PATH, an empty HOME and /dev/null as
// AWS_CONFIG_FILE, and returns its standard output.
func run(t *testing.T, name string, args []string, env map[string]string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "AWS_CONFIG_FILE=/dev/null",
		"AWS_EC2_METADATA_DISABLED=true"}
	if pyenv := os.Getenv("PYENV_ROOT"); pyenv != "" {
		cmd.Env = append(cmd.Env, "PYENV_ROOT="+pyenv)
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout: %s\nstderr: %s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func runJSON(t *testing.T, name string, args []string, env map[string]string) map[string]any {
	t.Helper()
	out := strings.TrimSpace(run(t, name, args, env))
	lines := strings.Split(out, "\n")
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &m); err != nil {
		t.Fatalf("%s: last line is not JSON: %v\n%s", name, err, out)
	}
	return m
}
