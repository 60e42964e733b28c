package security

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// runRefused runs the built sidecar with args and env, which must be refused at start: it
// returns the exit code and what it printed on stderr.
func runRefused(t *testing.T, args, env []string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), guard)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append([]string{"serve"}, args...)...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("sidecar with %q: %v, want it to exit at once with an error; stderr:\n%s", args, err, stderr.String())
	}
	return exit.ExitCode(), stderr.String()
}

// TestConfigurationRefusals: settings that would leak the service-account token, print a
// password, or open IMDS to a whole node are refused at start, exit 2, with one line naming the
// flag, the variable and the value.
func TestConfigurationRefusals(t *testing.T) {
	base := []string{"AWS_ROLE_ARN=arn:aws:iam::111122223333:role/app", "AWS_WEB_IDENTITY_TOKEN_FILE=/var/run/token/token",
		"AWS_REGION=eu-west-1"}
	tests := []struct {
		name      string
		args, env []string
		want      []string // every one must appear on stderr
		never     string   // must not appear on stderr
	}{
		{name: "plain http STS off loopback", args: []string{"--sts-endpoint=http://sts.example.com"},
			want: []string{`--sts-endpoint (AWS_ENDPOINT_URL_STS or AWS_ENDPOINT_URL) = "http://sts.example.com"`,
				"clear text", "--allow-insecure-sts-endpoint"}},
		{name: "plain http STS from AWS_ENDPOINT_URL", env: []string{"AWS_ENDPOINT_URL=http://sts.example.com:8080"},
			want: []string{`--sts-endpoint (AWS_ENDPOINT_URL) = "http://sts.example.com:8080"`}},
		{name: "a URL's password", args: []string{"--sts-endpoint=https://admin:hunter2-secret@sts.example.com"},
			want: []string{`"https://admin:xxxxx@sts.example.com"`}, never: "hunter2-secret"},
		{name: "the token file as the auth token", args: []string{"--auth-token-file=/var/run/token/token"},
			want: []string{`--auth-token-file (CREDSIDECAR_AUTH_TOKEN_FILE) = "/var/run/token/token"`, "must not be the --token-file"}},
		{name: "IMDS in a hostNetwork pod", args: []string{"--imds-listen=127.0.0.1:9911"},
			env:  []string{"POD_IP=10.1.2.3", "HOST_IP=10.1.2.3"},
			want: []string{`--imds-listen (CREDSIDECAR_IMDS_LISTEN) = "127.0.0.1:9911"`, "hostNetwork"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stderr := runRefused(t, tt.args, append(append([]string{}, base...), tt.env...))
			if code != 2 {
				t.Errorf("exit %d, want 2 (bad configuration); stderr:\n%s", code, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			if tt.never != "" && strings.Contains(stderr, tt.never) {
				t.Errorf("stderr prints %q:\n%s", tt.never, stderr)
			}
			if strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
				t.Errorf("stderr is not one line:\n%s", stderr)
			}
		})
	}
}
