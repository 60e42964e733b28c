// Package testlog captures what code under test logs, so tests can assert on events and prove
// that no secret is ever written. It is imported by tests only.
package testlog

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
)

// Buffer collects log output written from several goroutines.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
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

// New returns a JSON logger at level that writes into a new Buffer.
func New(level slog.Level) (*slog.Logger, *Buffer) {
	b := &Buffer{}
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: level})), b
}
