package clock

import (
	"testing"
	"time"

	"github.com/credsidecar/credsidecar/internal/testkit/await"
)

func TestFakeTimers(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		arm     []time.Duration
		advance time.Duration
		fired   []bool
	}{
		{name: "none due", arm: []time.Duration{time.Minute}, advance: 59 * time.Second, fired: []bool{false}},
		{name: "exactly due", arm: []time.Duration{time.Minute}, advance: time.Minute, fired: []bool{true}},
		{name: "some due", arm: []time.Duration{time.Second, time.Hour}, advance: time.Minute, fired: []bool{true, false}},
		{name: "zero fires at once", arm: []time.Duration{0}, advance: 0, fired: []bool{true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := NewFake(start)
			var timers []Timer
			for _, d := range tt.arm {
				timers = append(timers, f.NewTimer(d))
			}
			f.Advance(tt.advance)
			for i, tm := range timers {
				select {
				case at := <-tm.C():
					if !tt.fired[i] {
						t.Errorf("timer %d fired at %v, want not fired", i, at)
					}
					if want := start.Add(tt.advance); !at.Equal(want) {
						t.Errorf("timer %d fired with %v, want %v", i, at, want)
					}
				default:
					if tt.fired[i] {
						t.Errorf("timer %d did not fire", i)
					}
				}
			}
		})
	}
}

func TestFakeStopResetAndWait(t *testing.T) {
	f := NewFake(time.Unix(0, 0))
	tm := f.NewTimer(time.Second)
	if !tm.Stop() {
		t.Fatal("Stop on an armed timer returned false")
	}
	if tm.Stop() {
		t.Fatal("second Stop returned true")
	}
	f.Advance(time.Hour)
	select {
	case <-tm.C():
		t.Fatal("stopped timer fired")
	default:
	}
	tm.Reset(time.Minute)
	if got, ok := f.NextDeadline(); !ok || !got.Equal(time.Unix(0, 0).Add(time.Hour+time.Minute)) {
		t.Fatalf("NextDeadline = %v %v", got, ok)
	}
	done := make(chan struct{})
	go func() {
		f.WaitForTimers(2)
		close(done)
	}()
	f.NewTimer(time.Minute)
	await.Receive(t, 30*time.Second, done, "WaitForTimers(2) to return once a second timer is armed")
	if !f.AdvanceToNext() {
		t.Fatal("AdvanceToNext found no timer")
	}
	if f.Pending() != 0 {
		t.Fatalf("Pending = %d after both same-deadline timers were due", f.Pending())
	}
	if f.AdvanceToNext() {
		t.Fatal("AdvanceToNext fired with nothing armed")
	}
}
