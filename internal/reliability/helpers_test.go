package reliability

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credsidecar/credsidecar/internal/creds"
)

// guard bounds how long a test waits for something asynchronous (an fsnotify event, a
// goroutine reaching a point, a server closing a connection) before failing. It is a failure
// timeout, never a sleep.
const guard = 20 * time.Second

// logCapture collects a component's JSON logs, lets a test wait for a line, and prints them
// when the test fails.
type logCapture struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newLogCapture(t testing.TB) *logCapture {
	c := &logCapture{changed: make(chan struct{})}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("captured logs (last %d lines):\n%s", tailLines, c.tail(tailLines))
		}
	})
	return c
}

func (c *logCapture) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(c, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (c *logCapture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf.Write(p)
	close(c.changed)
	c.changed = make(chan struct{})
	return len(p), nil
}

// tailLines is how much of the logs a failed test prints: the end is where it went wrong.
const tailLines = 60

// tail returns the last n lines.
func (c *logCapture) tail(n int) string {
	lines := strings.Split(strings.TrimRight(c.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (c *logCapture) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

// has reports whether a line with message msg contains every one of want.
func (c *logCapture) has(msg string, want ...string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hasLocked(msg, want)
}

func (c *logCapture) hasLocked(msg string, want []string) bool {
next:
	for _, line := range strings.Split(c.buf.String(), "\n") {
		var rec struct {
			Msg string `json:"msg"`
		}
		if json.Unmarshal([]byte(line), &rec) != nil || rec.Msg != msg {
			continue
		}
		for _, w := range want {
			if !strings.Contains(line, w) {
				continue next
			}
		}
		return true
	}
	return false
}

// mustNotContain fails the test if any of secrets appears in the logs.
func (c *logCapture) mustNotContain(t testing.TB, what string, secrets ...string) {
	t.Helper()
	logs := c.String()
	for _, s := range secrets {
		if s != "" && strings.Contains(logs, s) {
			t.Errorf("the logs contain a %s", what)
		}
	}
}

// stsObserver counts what the credentials manager reports, as the metrics would.
type stsObserver struct {
	mu       sync.Mutex
	calls    []string // "success/" or "error/<code>"
	updated  int
	reloaded int
	changed  chan struct{}
}

var _ creds.Observer = (*stsObserver)(nil)

func newSTSObserver() *stsObserver { return &stsObserver{changed: make(chan struct{})} }

func (o *stsObserver) STSCall(result, code string, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls = append(o.calls, result+"/"+code)
	o.notifyLocked()
}

func (o *stsObserver) CredentialsUpdated(time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.updated++
	o.notifyLocked()
}

func (o *stsObserver) TokenReloaded(time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.reloaded++
	o.notifyLocked()
}

func (o *stsObserver) notifyLocked() {
	close(o.changed)
	o.changed = make(chan struct{})
}

func (o *stsObserver) callList() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.calls...)
}

func (o *stsObserver) updates() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.updated
}

// answer is one response of the credentials endpoint.
type answer struct {
	status int
	body   []byte
	creds  struct {
		AccessKeyID string `json:"AccessKeyId"`
		Expiration  string `json:"Expiration"`
		Code        string `json:"Code"`
	}
}

// getCredentials asks the endpoint once, as an SDK does.
func getCredentials(client *http.Client, url, auth string) (*answer, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", auth)
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	a := &answer{status: resp.StatusCode}
	if a.body, err = io.ReadAll(resp.Body); err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		return nil, fmt.Errorf("answer %d has Content-Type %q", a.status, ct)
	}
	if err := json.Unmarshal(a.body, &a.creds); err != nil {
		return nil, fmt.Errorf("answer %d is not JSON: %w", a.status, err)
	}
	return a, nil
}

// mustGet asks once and fails the test on a transport error.
func mustGet(t testing.TB, client *http.Client, url, auth string) *answer {
	t.Helper()
	a, err := getCredentials(client, url, auth)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return a
}
