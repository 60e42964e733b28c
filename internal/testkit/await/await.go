// Package await gives every wait of a test a deadline: a test that waits for something that
// never happens fails with what it was waiting for, instead of hanging until the test binary's
// timeout dumps every goroutine. It is imported by tests only.
package await

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Receive waits for the next value on ch, failing t with what after guard. A closed channel
// yields its zero value, as a receive does.
func Receive[T any](t testing.TB, guard time.Duration, ch <-chan T, what string) T {
	t.Helper()
	deadline := time.NewTimer(guard)
	defer deadline.Stop()
	select {
	case v := <-ch:
		return v
	case <-deadline.C:
		t.Fatalf("no %s within %s", what, guard)
		var zero T
		return zero
	}
}

// Done runs fn, which blocks until something happens (a WaitGroup's Wait, a fake clock's
// WaitForTimers, a process's exit), and fails t with what if it has not returned after guard.
// On failure fn keeps running in its goroutine: the test is over, and fn has nothing to stop it.
func Done(t testing.TB, guard time.Duration, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	Receive(t, guard, done, what)
}

// TimerWaiter is a fake clock that can block until timers are armed, as clock.Fake does.
type TimerWaiter interface{ WaitForTimers(n int) }

// Timers waits until clk has at least n timers armed, i.e. the code under test has finished
// reacting to the last clock move and re-armed its timers, failing t after guard.
func Timers(t testing.TB, guard time.Duration, clk TimerWaiter, n int) {
	t.Helper()
	Done(t, guard, fmt.Sprintf("%d armed timers on the fake clock", n), func() { clk.WaitForTimers(n) })
}

// Drain empties ch without blocking, so that the next Receive sees only what happens from now on.
func Drain[T any](ch <-chan T) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// File waits, on file events in path's directory rather than by polling, until ok accepts the
// file's content (a missing file is read as nil), failing t with what after guard.
func File(t testing.TB, guard time.Duration, path, what string, ok func(content []byte) bool) {
	t.Helper()
	w, err := fsnotify.NewWatcher()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Add(filepath.Dir(path)); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(guard)
	for {
		b, _ := os.ReadFile(path)
		if ok(b) {
			return
		}
		select {
		case <-w.Events:
		case err := <-w.Errors:
			t.Fatalf("watch %s: %v", path, err)
		case <-deadline:
			t.Fatalf("%s: not %s within %s", path, what, guard)
		}
	}
}
