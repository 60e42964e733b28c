package credfile

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credsidecar/credsidecar/internal/clock"
	"github.com/credsidecar/credsidecar/internal/creds"
	"github.com/credsidecar/credsidecar/internal/testkit/await"
	"github.com/credsidecar/credsidecar/internal/testkit/testlog"
)

const testRoleARN = "arn:aws:iam::123456789012:role/apps/uploader"

var start = time.Date(2026, 8, 22, 12, 0, 0, 0, time.UTC)

// testSource is a Source holding what a test puts in it; Source is this package's own seam.
type testSource struct {
	mu      sync.Mutex
	cur     *creds.Credentials
	changed chan struct{}
}

func newTestSource(tb testing.TB, c *creds.Credentials) *testSource {
	tb.Helper()
	return &testSource{cur: c, changed: make(chan struct{})}
}

func (s *testSource) Set(c *creds.Credentials) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur = c
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *testSource) Servable() *creds.Credentials {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

func (s *testSource) Updated() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

var (
	_ Source = (*testSource)(nil)
	_ Source = (*creds.Manager)(nil) // what the sidecar wires in
)

// realLookingCreds returns credentials shaped like STS's, all random.
func realLookingCreds(tb testing.TB, expiry time.Time) *creds.Credentials {
	tb.Helper()
	raw := make([]byte, 10+30+600)
	if _, err := rand.Read(raw); err != nil {
		tb.Fatal(err)
	}
	return &creds.Credentials{
		AccessKeyID:     "ASIA" + strings.ToUpper(hex.EncodeToString(raw[:8])),
		SecretAccessKey: base64.StdEncoding.EncodeToString(raw[10:40]),
		SessionToken:    "IQoJb3JpZ2luX2VjE" + base64.StdEncoding.EncodeToString(raw[40:]),
		Expiration:      expiry.UTC().Truncate(time.Second),
		AccountID:       "123456789012",
		RoleARN:         testRoleARN,
	}
}

// generation returns credentials numbered n: every field says n, so a reader can tell whether
// the key, secret and token it read belong together.
func generation(n int) *creds.Credentials {
	return &creds.Credentials{
		AccessKeyID:     fmt.Sprintf("ASIAGEN%013d", n),
		SecretAccessKey: fmt.Sprintf("secret/%06d/", n) + strings.Repeat("s", 27),
		SessionToken:    fmt.Sprintf("token-%06d-", n) + strings.Repeat("t", 900),
		Expiration:      start.Add(time.Hour + time.Duration(n)*time.Minute),
		RoleARN:         testRoleARN,
	}
}

// parseINI reads the sections of an INI file as a test client would, failing on any line that
// is neither a comment, a section nor key = value.
func parseINI(b []byte) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	var cur map[string]string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			cur = map[string]string{}
			out[line[1:len(line)-1]] = cur
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || cur == nil {
				return nil, fmt.Errorf("bad line %.20q", line)
			}
			cur[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return out, sc.Err()
}

type logBuffer = testlog.Buffer

func newLogger() (*slog.Logger, *logBuffer) { return testlog.New(slog.LevelDebug) }

func TestUpdateWritesProfile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "credentials")
	c := realLookingCreds(t, start.Add(time.Hour))
	w, err := New(path, "ci")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Update(c); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := header +
		"# role_arn = " + testRoleARN + "\n" +
		"# expiration = 2026-08-22T13:00:00Z\n" +
		"[ci]\n" +
		"aws_access_key_id = " + c.AccessKeyID + "\n" +
		"aws_secret_access_key = " + c.SecretAccessKey + "\n" +
		"aws_session_token = " + c.SessionToken + "\n"
	if string(b) != want {
		t.Fatalf("file differs from the expected layout:\n%s", strings.ReplaceAll(string(b), c.SecretAccessKey, "<secret>"))
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %#o, want 0600", fi.Mode().Perm())
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the file (no temporary or probe files left)", len(entries))
	}
}

func TestGroupReadableMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "credentials")
	w, err := New(path, DefaultProfile, WithMode(0o640))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Update(realLookingCreds(t, start.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v, %v; want 0640", fi.Mode().Perm(), err)
	}
}

func TestReplacesForeignFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "credentials")
	foreign := "[other]\naws_access_key_id = AKIAOTHER\naws_secret_access_key = x\n"
	if err := os.WriteFile(path, []byte(foreign), 0o644); err != nil {
		t.Fatal(err)
	}
	log, logs := newLogger()
	w, err := New(path, DefaultProfile, WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "not written by credsidecar") {
		t.Errorf("no warning about replacing a foreign file; log:\n%s", logs)
	}
	if err := w.Update(realLookingCreds(t, start.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	ini, err := parseINI(b)
	if err != nil {
		t.Fatal(err)
	}
	if _, kept := ini["other"]; kept || len(ini) != 1 {
		t.Errorf("profiles after the write: %d, want only %q", len(ini), DefaultProfile)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %#o after replacing a 0644 file, want 0600", fi.Mode().Perm())
	}

	// Its own file is not foreign.
	logs2 := &logBuffer{}
	if _, err := New(path, DefaultProfile, WithLogger(slog.New(slog.NewTextHandler(logs2, nil)))); err != nil {
		t.Fatal(err)
	}
	if logs2.String() != "" {
		t.Errorf("warned about its own file: %s", logs2)
	}
}

func TestNewRefuses(t *testing.T) {
	dir := t.TempDir()
	notDir := filepath.Join(dir, "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, profile string
		opts                []Option
	}{
		{"empty path", "", "default", nil},
		{"missing directory", filepath.Join(dir, "nope", "c"), "default", nil},
		{"parent is a file", filepath.Join(notDir, "c"), "default", nil},
		{"path is a directory", dir, "default", nil},
		{"empty profile", filepath.Join(dir, "c"), "", nil},
		{"profile with a bracket", filepath.Join(dir, "c"), "a]\n[b", nil},
		{"profile with a space", filepath.Join(dir, "c"), "my profile", nil},
		{"world-readable mode", filepath.Join(dir, "c"), "default", []Option{WithMode(0o644)}},
		{"zero interval", filepath.Join(dir, "c"), "default", []Option{WithCheckInterval(0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.path, tt.profile, tt.opts...); err == nil ||
				!strings.HasPrefix(err.Error(), "new credentials file writer: ") {
				t.Fatalf("New = %v, want a \"new credentials file writer: \" error", err)
			}
		})
	}
}

func TestRefusesValuesThatBreakINI(t *testing.T) {
	path := filepath.Join(t.TempDir(), "credentials")
	w, err := New(path, DefaultProfile)
	if err != nil {
		t.Fatal(err)
	}
	good := realLookingCreds(t, start.Add(time.Hour))
	if err := w.Update(good); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	tests := []struct {
		name   string
		mutate func(c *creds.Credentials)
	}{
		{"newline in secret", func(c *creds.Credentials) { c.SecretAccessKey += "\n[evil]" }},
		{"space in token", func(c *creds.Credentials) { c.SessionToken = "a b" }},
		{"empty key id", func(c *creds.Credentials) { c.AccessKeyID = "" }},
		{"non-ascii secret", func(c *creds.Credentials) { c.SecretAccessKey += "é" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := *good
			tt.mutate(&c)
			err := w.Update(&c)
			if err == nil {
				t.Fatal("Update accepted a value that breaks the file")
			}
			if strings.Contains(err.Error(), good.SecretAccessKey) || strings.Contains(err.Error(), good.SessionToken) {
				t.Fatal("the error quotes a secret")
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(after, before) {
				t.Fatal("a refused update changed the file")
			}
		})
	}
	if err := w.Update(nil); err == nil {
		t.Error("Update(nil) succeeded")
	}
}

// TestReaderNeverSeesTornFile rewrites the file 100 times while another goroutine reads it in
// a loop: every read must parse and hold one generation's key, secret and token.
func TestReaderNeverSeesTornFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "credentials")
	w, err := New(path, DefaultProfile)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Update(generation(0)); err != nil {
		t.Fatal(err)
	}
	var done atomic.Bool
	type report struct {
		reads, generations int
		err                error
	}
	result := make(chan report, 1)
	go func() {
		var r report
		seen := map[string]bool{}
		for !done.Load() && r.reads < 100000 {
			r.reads++
			b, err := os.ReadFile(path)
			if err != nil {
				r.err = fmt.Errorf("read %d: %w", r.reads, err)
				break
			}
			ini, err := parseINI(b)
			if err != nil {
				r.err = fmt.Errorf("read %d: %w", r.reads, err)
				break
			}
			p := ini[DefaultProfile]
			var n int
			if _, err := fmt.Sscanf(p["aws_access_key_id"], "ASIAGEN%d", &n); err != nil {
				r.err = fmt.Errorf("read %d: key id: %w", r.reads, err)
				break
			}
			g := generation(n)
			if p["aws_secret_access_key"] != g.SecretAccessKey || p["aws_session_token"] != g.SessionToken {
				r.err = fmt.Errorf("read %d: key of generation %d with another generation's secret or token", r.reads, n)
				break
			}
			seen[p["aws_access_key_id"]] = true
		}
		r.generations = len(seen)
		result <- r
	}()
	for n := 1; n <= 100; n++ {
		if err := w.Update(generation(n)); err != nil {
			t.Fatalf("update %d: %v", n, err)
		}
	}
	done.Store(true)
	r := await.Receive(t, 30*time.Second, result, "the reader's result")
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Logf("%d reads saw %d generations", r.reads, r.generations)
	if r.reads < 2 {
		t.Fatalf("only %d reads: the reader did not overlap the writes", r.reads)
	}
}

func TestRunFollowsSource(t *testing.T) {
	fc := clock.NewFake(start)
	dir := t.TempDir()
	path := filepath.Join(dir, "credentials")
	src := newTestSource(t, nil)
	log, logs := newLogger()
	w, err := New(path, DefaultProfile, WithClock(fc), WithLogger(log), WithCheckInterval(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	waitSynced, stop := runWriter(t, w, []Profile{{Name: DefaultProfile, Source: src}})

	keyInFile := func() string {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		ini, err := parseINI(b)
		if err != nil {
			t.Fatal(err)
		}
		return ini[DefaultProfile]["aws_access_key_id"]
	}

	waitSynced("the start") // nothing to write yet
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("a file was written without credentials: %v", err)
	}

	c1 := realLookingCreds(t, start.Add(time.Hour))
	src.Set(c1)
	waitSynced("the first credentials")
	if keyInFile() != c1.AccessKeyID {
		t.Fatal("first credentials not written")
	}

	c2 := realLookingCreds(t, start.Add(2*time.Hour))
	src.Set(c2) // the manager's publish closes the Updated channel
	waitSynced("published credentials")
	if keyInFile() != c2.AccessKeyID {
		t.Fatal("published credentials not written")
	}
	if n := fc.Pending(); n != 0 {
		t.Fatalf("%d timers pending while the file is current, want none: Run must not poll", n)
	}

	// Below the serving floor the file keeps the last credentials.
	src.Set(nil)
	waitSynced("a publish with nothing servable")
	if keyInFile() != c2.AccessKeyID {
		t.Fatal("file changed while the source had nothing servable")
	}

	// A failed write is retried after the check interval: the path is blocked by a directory
	// until the test removes it.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(path, "blocker"), 0o700); err != nil {
		t.Fatal(err)
	}
	c4 := realLookingCreds(t, start.Add(4*time.Hour))
	src.Set(c4)
	waitSynced("credentials it cannot write")
	if !strings.Contains(logs.String(), "credentials file not updated") {
		t.Fatalf("failed write not logged:\n%s", logs)
	}
	if err := os.RemoveAll(path); err != nil {
		t.Fatal(err)
	}
	await.Timers(t, 30*time.Second, fc, 1)
	fc.Advance(time.Minute)
	waitSynced("the retry")
	if keyInFile() != c4.AccessKeyID {
		t.Fatal("failed write not retried after the check interval")
	}
	if !strings.Contains(logs.String(), "credentials file written again") {
		t.Error("recovery not logged")
	}

	if err := stop(); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	out := logs.String()
	for _, c := range []*creds.Credentials{c1, c2, c4} {
		if strings.Contains(out, c.SecretAccessKey) || strings.Contains(out, c.SessionToken) {
			t.Fatal("a secret reached the log")
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("%d entries in the directory, want only the file", len(entries))
	}
}

func TestRunReturnsWhenCancelledBeforeCredentials(t *testing.T) {
	w, err := New(filepath.Join(t.TempDir(), "credentials"), DefaultProfile)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.Run(ctx, newTestSource(t, nil)); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	if err := w.Run(context.Background(), nil); err == nil {
		t.Error("Run without a source succeeded")
	}
	if _, err := os.Stat(w.Path()); !os.IsNotExist(err) {
		t.Errorf("a file was written without credentials: %v", err)
	}
}

// credsDigest is what the SDK scripts compare against, so that they never print a secret.
func credsDigest(c *creds.Credentials) string {
	sum := sha256.Sum256([]byte(c.AccessKeyID + "\n" + c.SecretAccessKey + "\n" + c.SessionToken))
	return hex.EncodeToString(sum[:])
}

// runWriter runs w.run over profiles until stop, which returns run's result. waitSynced waits
// for the writer's next attempt to bring the file up to date, failing t with what it was for.
func runWriter(t *testing.T, w *Writer, profiles []Profile) (waitSynced func(what string), stop func() error) {
	t.Helper()
	synced := make(chan struct{}, 16)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- w.run(ctx, profiles, func() { synced <- struct{}{} }) }()
	stopped := false
	stop = func() error {
		cancel()
		if stopped {
			return nil
		}
		stopped = true
		return await.Receive(t, 30*time.Second, errc, "the writer's return after cancel")
	}
	t.Cleanup(func() { _ = stop() })
	return func(what string) {
		t.Helper()
		await.Receive(t, 10*time.Second, synced, "the writer acting on "+what)
	}, stop
}
