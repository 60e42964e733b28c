// Package testlog captures what code under test logs, so tests can assert on events, wait for
// one with a deadline instead of sleeping, and prove that no secret is ever written. It is
// imported by tests only.
package testlog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// Buffer collects JSON log lines written from several goroutines. The zero value is ready.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	// changed is closed and replaced at every write, so waiters wake on news instead of polling.
	changed chan struct{}
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.changed != nil {
		close(b.changed)
		b.changed = nil
	}
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Lines counts the complete lines written so far.
func (b *Buffer) Lines() int { return strings.Count(b.String(), "\n") }

// Tail returns the last n lines, where a failed test went wrong.
func (b *Buffer) Tail(n int) string {
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Logger returns a JSON logger at level that writes into b.
func (b *Buffer) Logger(level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: level}))
}

// New returns a JSON logger at level that writes into a new Buffer.
func New(level slog.Level) (*slog.Logger, *Buffer) {
	b := &Buffer{}
	return b.Logger(level), b
}

// Records decodes every line as the JSON object slog wrote; a line that is not JSON, or no line
// at all, is an error.
func (b *Buffer) Records() ([]map[string]any, error) {
	var out []map[string]any
	for i, line := range bytes.Split(bytes.TrimSpace([]byte(b.String())), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err != nil {
			return nil, fmt.Errorf("log line %d is not JSON: %w", i+1, err)
		}
		out = append(out, rec)
	}
	if len(out) == 0 {
		return nil, errors.New("no log lines")
	}
	return out, nil
}

// Count returns how many records have message msg and, for every key of attrs, a value that
// prints as attrs[key]. Lines that are not JSON are not counted.
func (b *Buffer) Count(msg string, attrs map[string]string) int {
	n := 0
	for _, line := range strings.Split(b.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil || rec["msg"] != msg {
			continue
		}
		match := true
		for k, v := range attrs {
			if got, ok := rec[k]; !ok || fmt.Sprint(got) != v {
				match = false
			}
		}
		if match {
			n++
		}
	}
	return n
}

// Find returns the first record with message msg that has every one of want somewhere in its
// line, or nil.
func (b *Buffer) Find(msg string, want ...string) map[string]any {
next:
	for _, line := range strings.Split(b.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil || rec["msg"] != msg {
			continue
		}
		for _, w := range want {
			if !strings.Contains(line, w) {
				continue next
			}
		}
		return rec
	}
	return nil
}

// Has reports whether a record with message msg has every one of want somewhere in its line.
func (b *Buffer) Has(msg string, want ...string) bool { return b.Find(msg, want...) != nil }

// WaitFind waits until Find(msg, want...) finds a record, and returns it.
func (b *Buffer) WaitFind(t testing.TB, guard time.Duration, msg string, want ...string) map[string]any {
	t.Helper()
	var rec map[string]any
	b.WaitFor(t, guard, fmt.Sprintf("log line %q containing %q", msg, want), func() bool {
		rec = b.Find(msg, want...)
		return rec != nil
	})
	return rec
}

// WaitFor waits until cond holds, re-checking it after every write, and fails t with what was
// awaited and the logs' tail if guard passes first.
func (b *Buffer) WaitFor(t testing.TB, guard time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(guard)
	defer deadline.Stop()
	for {
		b.mu.Lock()
		if b.changed == nil {
			b.changed = make(chan struct{})
		}
		ch := b.changed
		b.mu.Unlock()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("no %s within %s; last log lines:\n%s", what, guard, b.Tail(60))
		}
	}
}

// WaitCount waits until Count(msg, attrs) reaches n.
func (b *Buffer) WaitCount(t testing.TB, guard time.Duration, n int, msg string, attrs map[string]string) {
	t.Helper()
	b.WaitFor(t, guard, fmt.Sprintf("%d log lines %q with %v", n, msg, attrs), func() bool { return b.Count(msg, attrs) >= n })
}

// MustNotContain fails t if any of secrets appears in the logs; what names them in the failure,
// which never quotes the secret itself.
func (b *Buffer) MustNotContain(t testing.TB, what string, secrets ...string) {
	t.Helper()
	logs := b.String()
	for _, s := range secrets {
		if s != "" && strings.Contains(logs, s) {
			t.Errorf("the logs contain a %s", what)
		}
	}
}
