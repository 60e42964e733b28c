package observe

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// fatalTB records Fatalf and ends the goroutine, as testing.T does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestRecorderKeepsEveryEvent(t *testing.T) {
	r := NewRecorder()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	go func() {
		r.STSCall("success", "", time.Millisecond)
		r.CredentialsUpdated(t0.Add(time.Hour))
		r.TokenReloaded(t0.Add(24 * time.Hour))
		r.STSCall("error", "Throttling", time.Millisecond)
		r.CredentialsUpdated(t0.Add(2 * time.Hour))
	}()
	if got := r.WaitUpdates(t, 10*time.Second, 2); !got.Equal(t0.Add(2 * time.Hour)) {
		t.Errorf("WaitUpdates(2) = %v, want the second expiry", got)
	}
	if got := r.WaitReload(t, 10*time.Second, "the day-long token", func(exp time.Time) bool { return exp.Sub(t0) == 24*time.Hour }); got.IsZero() {
		t.Error("WaitReload found nothing")
	}
	if got := strings.Join(r.Calls(), " "); got != "success/ error/Throttling" {
		t.Errorf("Calls() = %q", got)
	}
	for i, want := range []time.Duration{time.Hour, 2 * time.Hour} {
		if got := r.NextUpdate(t, 10*time.Second, "an update"); got.Sub(t0) != want {
			t.Errorf("NextUpdate #%d = +%v, want +%v", i+1, got.Sub(t0), want)
		}
	}
	if got := r.NextReload(t, 10*time.Second, "a reload"); got.Sub(t0) != 24*time.Hour {
		t.Errorf("NextReload = +%v, want +24h", got.Sub(t0))
	}
}

func TestRecorderWaitFailsWithWhat(t *testing.T) {
	r := NewRecorder()
	r.STSCall("error", "InvalidIdentityToken", 0)
	tb := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.NextUpdate(tb, 10*time.Millisecond, "credentials update #1")
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("WaitUpdates did not give up within 10 s of its 10 ms guard")
	}
	for _, want := range []string{"no credentials update #1 within 10ms", "error/InvalidIdentityToken"} {
		if !strings.Contains(tb.msg, want) {
			t.Errorf("failure %q lacks %q", tb.msg, want)
		}
	}
}
