// Package sidecartest runs a whole sidecar in-process for a test, through package app.
package sidecartest

import (
	"context"
	"testing"
	"time"

	"github.com/credsidecar/credsidecar/internal/app"
	"github.com/credsidecar/credsidecar/internal/config"
)

// Start runs a whole sidecar in-process for t: New, Run in a goroutine, and a wait until
// it can serve credentials. t's clean-up stops it and fails t if it does not stop cleanly within
// guard; a start or readiness failure fails t at once.
func Start(t testing.TB, cfg config.Config, opts app.Options, guard time.Duration) *app.App {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, opts)
	if err != nil {
		cancel()
		t.Fatalf("start sidecar: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("sidecar Run = %v, want nil after cancel", err)
			}
		case <-time.After(guard):
			t.Errorf("sidecar did not stop within %s", guard)
		}
	})
	readyCtx, readyCancel := context.WithTimeout(ctx, guard)
	defer readyCancel()
	if !a.WaitReady(readyCtx) {
		t.Fatalf("sidecar not ready within %s", guard)
	}
	return a
}
