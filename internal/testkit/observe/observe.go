// Package observe records what the credentials manager reports to its observers (STS calls,
// credentials updates, token reloads), for tests to assert on and wait for with a deadline. Its
// Recorder satisfies creds.Observer without importing creds, so creds' own tests can use it too.
// It is imported by tests only.
package observe

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// Recorder is the one creds.Observer of the tests: it keeps every STS call, credentials update
// and token reload the manager reports, in order, and lets a test wait for one with a deadline.
// Keeping everything, instead of passing events on a channel, means none is dropped and a test
// can ask after the fact; NextUpdate and NextReload hand each event out once, in order, for
// tests that follow events one by one.
type Recorder struct {
	mu      sync.Mutex
	calls   []string    // "success/" or "error/<code>"
	updates []time.Time // the new credentials' expiry
	reloads []time.Time // the new token's expiry
	// nextUpdate and nextReload are how many events NextUpdate and NextReload handed out.
	nextUpdate, nextReload int
	// changed is closed and replaced at every event, so waiters wake on news instead of polling.
	changed chan struct{}
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder { return &Recorder{changed: make(chan struct{})} }

// STSCall records one STS call's result and error code.
func (r *Recorder) STSCall(result, code string, _ time.Duration) {
	r.record(func() { r.calls = append(r.calls, result+"/"+code) })
}

// CredentialsUpdated records new credentials by their expiry.
func (r *Recorder) CredentialsUpdated(exp time.Time) {
	r.record(func() { r.updates = append(r.updates, exp) })
}

// TokenReloaded records a new token by its expiry.
func (r *Recorder) TokenReloaded(exp time.Time) {
	r.record(func() { r.reloads = append(r.reloads, exp) })
}

func (r *Recorder) record(add func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	add()
	close(r.changed)
	r.changed = make(chan struct{})
}

// Calls returns every STS call so far, as "success/" or "error/<code>".
func (r *Recorder) Calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}

// Updates returns the expiry of every credentials update so far, in order.
func (r *Recorder) Updates() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.updates...)
}

// Reloads returns the expiry of every token reload so far, in order.
func (r *Recorder) Reloads() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.reloads...)
}

// WaitFor waits until cond holds, re-checking it after every event, and fails t with what after
// guard.
func (r *Recorder) WaitFor(t testing.TB, guard time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(guard)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		ch := r.changed
		r.mu.Unlock()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("no %s within %s; STS calls %q, %d updates, %d token reloads", what, guard,
				r.Calls(), len(r.Updates()), len(r.Reloads()))
		}
	}
}

// WaitUpdates waits until there have been n credentials updates and returns the n-th expiry.
func (r *Recorder) WaitUpdates(t testing.TB, guard time.Duration, n int) time.Time {
	t.Helper()
	r.WaitFor(t, guard, fmt.Sprintf("credentials update #%d", n), func() bool { return len(r.Updates()) >= n })
	return r.Updates()[n-1]
}

// WaitUpdate waits for a credentials update whose expiry satisfies match, and returns it.
func (r *Recorder) WaitUpdate(t testing.TB, guard time.Duration, what string, match func(time.Time) bool) time.Time {
	t.Helper()
	return waitMatch(t, r, guard, what, r.Updates, match)
}

// WaitReload waits for a token reload whose expiry satisfies match, and returns it.
func (r *Recorder) WaitReload(t testing.TB, guard time.Duration, what string, match func(time.Time) bool) time.Time {
	t.Helper()
	return waitMatch(t, r, guard, what, r.Reloads, match)
}

func waitMatch(t testing.TB, r *Recorder, guard time.Duration, what string, list func() []time.Time, match func(time.Time) bool) time.Time {
	t.Helper()
	var found time.Time
	r.WaitFor(t, guard, what, func() bool {
		for _, v := range list() {
			if match(v) {
				found = v
				return true
			}
		}
		return false
	})
	return found
}

// NextUpdate waits for the credentials update after the last one NextUpdate returned, and
// returns its expiry.
func (r *Recorder) NextUpdate(t testing.TB, guard time.Duration, what string) time.Time {
	t.Helper()
	return r.next(t, guard, what, &r.nextUpdate, &r.updates)
}

// NextReload waits for the token reload after the last one NextReload returned, and returns its
// expiry.
func (r *Recorder) NextReload(t testing.TB, guard time.Duration, what string) time.Time {
	t.Helper()
	return r.next(t, guard, what, &r.nextReload, &r.reloads)
}

func (r *Recorder) next(t testing.TB, guard time.Duration, what string, cursor *int, list *[]time.Time) time.Time {
	t.Helper()
	r.WaitFor(t, guard, what, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(*list) > *cursor
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	v := (*list)[*cursor]
	*cursor++
	return v
}
