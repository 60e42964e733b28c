package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func validEnv(t *testing.T) map[string]string {
	t.Helper()
	return map[string]string{
		"AWS_ROLE_ARN":                 "arn:aws:iam::123456789012:role/app",
		"AWS_WEB_IDENTITY_TOKEN_FILE":  filepath.Join(t.TempDir(), "token"),
		"AWS_ENDPOINT_URL_STS":         "http://" + closedPort(t),
		"CREDSIDECAR_LISTEN":           "127.0.0.1:0",
		"CREDSIDECAR_METRICS_LISTEN":   "127.0.0.1:0",
		"CREDSIDECAR_AUTH_TOKEN_FILE":  filepath.Join(t.TempDir(), "auth-token"),
		"CREDSIDECAR_SHUTDOWN_TIMEOUT": "5s",
	}
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestRunExitsEarly(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		wantCode   int
		wantStdout string // substring
		wantStderr string // the exact text, when one line is promised
		stderrHas  string
	}{
		{name: "config error from env", args: nil, env: map[string]string{"CREDSIDECAR_DURATION": "15m",
			"AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/app", "AWS_WEB_IDENTITY_TOKEN_FILE": "/t", "AWS_REGION": "eu-west-1"},
			wantCode: 2, wantStderr: `sidecar: invalid configuration: --duration (CREDSIDECAR_DURATION) = "15m": must be at least 1h: SDKs refresh container credentials 5-15 min before expiry, shorter sessions make them call the endpoint on every request (see sidecar --help)` + "\n"},
		{name: "config error from a flag after serve", args: []string{"serve", "--listen=0.0.0.0:9910"},
			env:      map[string]string{"AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/app", "AWS_WEB_IDENTITY_TOKEN_FILE": "/t", "AWS_REGION": "eu-west-1"},
			wantCode: 2, wantStderr: `sidecar: invalid configuration: --listen (CREDSIDECAR_LISTEN) = "0.0.0.0:9910": not a loopback address: anyone who can reach it could fetch the credentials with the token; use 127.0.0.1, or set --allow-non-loopback (see sidecar --help)` + "\n"},
		{name: "unknown flag", args: []string{"--rolearn=x"}, wantCode: 2,
			wantStderr: "sidecar: parse arguments: flag provided but not defined: -rolearn (see sidecar --help)\n"},
		{name: "unknown command", args: []string{"server"}, wantCode: 2, stderrHas: `sidecar: unknown command "server"`},
		{name: "version flag", args: []string{"--version"}, wantCode: 0, wantStdout: "sidecar dev " + runtime.Version() + "\n"},
		{name: "version command", args: []string{"version"}, wantCode: 0, wantStdout: "sidecar dev " + runtime.Version() + "\n"},
		{name: "serve --version", args: []string{"serve", "--version"}, wantCode: 0, wantStdout: "sidecar dev "},
		{name: "help flag", args: []string{"--help"}, wantCode: 0, wantStdout: "--role-arn arn"},
		{name: "help command", args: []string{"help"}, wantCode: 0, wantStdout: "[$CREDSIDECAR_DURATION] (default 1h)"},
		{name: "policy command", args: []string{"policy", "--issuer", "https://oidc.example.com/t/c/", "--namespace", "ns",
			"--service-account", "sa", "--account", "123456789012"},
			wantCode: 0, wantStdout: `"oidc.example.com/t/c:sub": "system:serviceaccount:ns:sa"`},
		{name: "policy bad flag", args: []string{"policy", "--account", "12"}, wantCode: 2, stderrHas: "--account"},
		{name: "check without a role", args: []string{"check"}, wantCode: 2, stderrHas: "--role-arn"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, env(tt.env), &stdout, &stderr)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tt.wantCode, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.wantStdout) {
				t.Fatalf("stdout lacks %q:\n%s", tt.wantStdout, stdout.String())
			}
			if tt.wantStderr != "" && stderr.String() != tt.wantStderr {
				t.Fatalf("stderr\n got: %q\nwant: %q", stderr.String(), tt.wantStderr)
			}
			if tt.stderrHas != "" && !strings.Contains(stderr.String(), tt.stderrHas) {
				t.Fatalf("stderr lacks %q:\n%s", tt.stderrHas, stderr.String())
			}
			if tt.stderrHas == "" && tt.wantStderr == "" && stderr.Len() != 0 {
				t.Fatalf("unexpected stderr:\n%s", stderr.String())
			}
		})
	}
}

// lineWriter hands each complete line written to it to a channel.
type lineWriter struct {
	mu    sync.Mutex
	buf   []byte
	all   bytes.Buffer
	lines chan string
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.all.Write(p)
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		select {
		case w.lines <- string(w.buf[:i]):
		default: // nobody is listening for more lines
		}
		w.buf = w.buf[i+1:]
	}
}

func (w *lineWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.all.String()
}

// TestRunServesUntilCancelled starts the real command with a valid configuration (STS down,
// which is a state the sidecar must start in), checks both endpoints answer, then cancels, as
// SIGTERM does, and expects exit 0.
func TestRunServesUntilCancelled(t *testing.T) {
	stderr := &lineWriter{lines: make(chan string, 100)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	exited := make(chan int, 1)
	go func() { exited <- run(ctx, nil, env(validEnv(t)), io.Discard, stderr) }()

	var start struct {
		Msg            string `json:"msg"`
		CredentialsURL string `json:"credentials_url"`
		MetricsAddr    string `json:"metrics_addr"`
	}
	timeout := time.After(30 * time.Second)
	for start.Msg != "credsidecar starting" {
		select {
		case line := <-stderr.lines:
			if err := json.Unmarshal([]byte(line), &start); err != nil {
				t.Fatalf("log line is not JSON: %q", line)
			}
		case code := <-exited:
			t.Fatalf("exited %d before starting:\n%s", code, stderr)
		case <-timeout:
			t.Fatalf("no start-up line within 30s:\n%s", stderr)
		}
	}
	if !strings.HasPrefix(start.CredentialsURL, "http://127.0.0.1:") {
		t.Fatalf("credentials_url = %q", start.CredentialsURL)
	}
	resp, err := http.Get(start.CredentialsURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("credentials without token = %d, want 401", resp.StatusCode)
	}
	resp, err = http.Get("http://" + start.MetricsAddr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz = %d, want 200", resp.StatusCode)
	}

	cancel()
	select {
	case code := <-exited:
		if code != 0 {
			t.Fatalf("exit %d after cancellation, want 0:\n%s", code, stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return within 30s of cancellation")
	}
	var msgs []string
	sc := bufio.NewScanner(strings.NewReader(stderr.String()))
	for sc.Scan() {
		var l struct{ Msg string }
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("log line is not JSON: %q", sc.Text())
		}
		msgs = append(msgs, l.Msg)
	}
	joined := strings.Join(msgs, "|")
	if !strings.Contains(joined, "shutting down") || !strings.HasSuffix(joined, "credsidecar stopped") {
		t.Fatalf("log does not end in an orderly shutdown: %s", joined)
	}
}

func TestRunFailsToStart(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	e := validEnv(t)
	e["CREDSIDECAR_LISTEN"] = busy.Addr().String()
	var stderr bytes.Buffer
	if code := run(context.Background(), nil, env(e), io.Discard, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), `"msg":"sidecar failed"`) || !strings.Contains(stderr.String(), "address already in use") {
		t.Fatalf("stderr does not say why:\n%s", stderr.String())
	}
}
