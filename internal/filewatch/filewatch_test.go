package filewatch

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/credsidecar/credsidecar/internal/clock"
	"github.com/credsidecar/credsidecar/internal/testkit/testlog"
)

// guard bounds every wait for something asynchronous (inotify delivery, Run's goroutine).
const guard = 10 * time.Second

var t0 = time.Date(2026, 8, 22, 12, 0, 0, 0, time.UTC)

// started runs Run until the test ends and returns the channel its checks arrive on.
func started(t *testing.T, cfg Config) <-chan struct{} {
	t.Helper()
	checks := make(chan struct{}, 1000)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, cfg, func() { checks <- struct{}{} })
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(guard):
			t.Errorf("Run did not return within %s of cancellation", guard)
		}
	})
	return checks
}

func waitCheck(t *testing.T, checks <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-checks:
	case <-time.After(guard):
		t.Fatalf("no check after %s within %s", what, guard)
	}
}

// drained empties checks and reports how many were pending.
func drained(checks <-chan struct{}) int {
	n := 0
	for {
		select {
		case <-checks:
			n++
		default:
			return n
		}
	}
}

// waitTimers waits until the fake clock has n armed timers, with a deadline.
func waitTimers(t *testing.T, fc *clock.Fake, n int) {
	t.Helper()
	done := make(chan struct{})
	go func() { fc.WaitForTimers(n); close(done) }()
	select {
	case <-done:
	case <-time.After(guard):
		t.Fatalf("%d timers not armed within %s", n, guard)
	}
}

// swap replaces dir/..data the way the kubelet's atomic writer does.
func swap(t *testing.T, dir, version, content string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(filepath.Join(dir, version), 0o755))
	must(os.WriteFile(filepath.Join(dir, version, "token"), []byte(content), 0o644))
	must(os.Symlink(version, filepath.Join(dir, "..data_tmp")))
	must(os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")))
}

// TestSymlinkSwapNoticed: a kubelet-style swap is reported by the notification alone, with
// the poll an hour away.
func TestSymlinkSwapNoticed(t *testing.T) {
	dir := t.TempDir()
	swap(t, dir, "..v1", "one")
	if err := os.Symlink(filepath.Join("..data", "token"), filepath.Join(dir, "token")); err != nil {
		t.Fatal(err)
	}
	fc := clock.NewFake(t0)
	checks := started(t, Config{Dir: dir, What: "test", Poll: time.Hour, Clock: fc})
	waitTimers(t, fc, 1) // the directory is watched before the poll is armed
	swap(t, dir, "..v2", "two")
	waitCheck(t, checks, "a ..data swap")
	if !fc.Now().Equal(t0) {
		t.Fatal("the fake clock moved: the check came from the poll")
	}
}

// TestPollOnly: without notifications the check runs at each poll and only then.
func TestPollOnly(t *testing.T) {
	dir := t.TempDir()
	fc := clock.NewFake(t0)
	checks := started(t, Config{Dir: dir, What: "test", Poll: time.Minute, Clock: fc, PollOnly: true})
	for i := range 3 {
		waitTimers(t, fc, 1)
		if err := os.WriteFile(filepath.Join(dir, "token"), []byte{byte('a' + i)}, 0o600); err != nil {
			t.Fatal(err)
		}
		if n := drained(checks); n != 0 {
			t.Fatalf("poll %d: %d checks before the poll, want none without notifications", i, n)
		}
		fc.Advance(time.Minute)
		waitCheck(t, checks, "a poll")
	}
}

// TestLateDirectory: a directory that does not exist yet is polled, and watched from the first
// poll that finds it, so later changes need no poll.
func TestLateDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "not-yet")
	fc := clock.NewFake(t0)
	logs := &testlog.Buffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	checks := started(t, Config{Dir: dir, What: "test", Poll: time.Minute, Clock: fc, Log: log})
	waitTimers(t, fc, 1)
	if !strings.Contains(logs.String(), "cannot watch test directory; polling until it can") {
		t.Fatalf("missing directory not reported:\n%s", logs)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	fc.Advance(time.Minute)
	waitCheck(t, checks, "the first poll")
	waitTimers(t, fc, 1)
	if !strings.Contains(logs.String(), "watching test directory") {
		t.Fatalf("watch not added once the directory exists:\n%s", logs)
	}
	drained(checks)
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitCheck(t, checks, "a write in the now-watched directory")
}
