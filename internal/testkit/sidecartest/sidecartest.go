// Package sidecartest runs a whole sidecar in-process for a test, through package app.
package sidecartest

import (
	"context"
	"testing"
	"time"

	"github.com/credsidecar/credsidecar/internal/app"
	"github.com/credsidecar/credsidecar/internal/config"
)

// Start runs a whole sidecar in-process for t: New, Run in a goroutine, and, unless wait is
// nil, a wait until wait says it serves. t's clean-up stops it and fails t if it does not stop
// cleanly within guard; a start or readiness failure fails t at once.
func Start(t testing.TB, cfg config.Config, opts app.Options, guard time.Duration, wait func(context.Context, *app.App) bool) *app.App {
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
	if wait == nil {
		return a
	}
	readyCtx, readyCancel := context.WithTimeout(ctx, guard)
	defer readyCancel()
	if !wait(readyCtx, a) {
		t.Fatalf("sidecar not ready within %s", guard)
	}
	return a
}

// Ready waits until every role of the sidecar can be served.
func Ready(ctx context.Context, a *app.App) bool { return a.WaitReady(ctx) }

// RoleReady waits until the named role ("" for the unnamed one) can be served.
func RoleReady(role string) func(context.Context, *app.App) bool {
	return func(ctx context.Context, a *app.App) bool { return a.Manager(role).Wait(ctx) != nil }
}
