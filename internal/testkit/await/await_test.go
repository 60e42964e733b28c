package await

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
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

// failure runs wait on a fatalTB in its own goroutine and returns the failure message.
func failure(t *testing.T, wait func(testing.TB)) string {
	t.Helper()
	tb := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		wait(tb)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the wait did not give up within 10 s of its 10 ms guard")
	}
	return tb.msg
}

func TestWaits(t *testing.T) {
	tests := []struct {
		name     string
		wait     func(testing.TB)
		wantFail string // "" when the wait must succeed
	}{
		{name: "receive a value", wait: func(tb testing.TB) {
			ch := make(chan int, 1)
			ch <- 7
			if v := Receive(tb, time.Second, ch, "seven"); v != 7 {
				tb.Fatalf("got %d", v)
			}
		}},
		{name: "receive times out", wait: func(tb testing.TB) {
			Receive(tb, 10*time.Millisecond, make(chan int), "the answer")
		}, wantFail: "no the answer within 10ms"},
		{name: "done returns", wait: func(tb testing.TB) {
			var wg sync.WaitGroup
			wg.Add(1)
			go wg.Done()
			Done(tb, time.Second, "the worker", wg.Wait)
		}},
		{name: "done times out", wait: func(tb testing.TB) {
			block := make(chan struct{})
			defer close(block)
			Done(tb, 10*time.Millisecond, "the stuck worker", func() { <-block })
		}, wantFail: "no the stuck worker within 10ms"},
		{name: "timers armed", wait: func(tb testing.TB) {
			Timers(tb, time.Second, armed(2), 2)
		}},
		{name: "timers never armed", wait: func(tb testing.TB) {
			block := make(chan struct{})
			defer close(block)
			Timers(tb, 10*time.Millisecond, stuckClock(block), 3)
		}, wantFail: "no 3 armed timers on the fake clock within 10ms"},
		{name: "file written later", wait: func(tb testing.TB) {
			path := filepath.Join(t.TempDir(), "f")
			go func() { _ = os.WriteFile(path, []byte("ready"), 0o600) }()
			File(tb, 10*time.Second, path, "ready", func(b []byte) bool { return string(b) == "ready" })
		}},
		{name: "file never right", wait: func(tb testing.TB) {
			path := filepath.Join(t.TempDir(), "f")
			File(tb, 10*time.Millisecond, path, "holding the key", func(b []byte) bool { return len(b) > 0 })
		}, wantFail: ": not holding the key within 10ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := failure(t, tt.wait)
			if tt.wantFail == "" && got != "" {
				t.Fatalf("failed: %s", got)
			}
			if tt.wantFail != "" && !strings.Contains(got, tt.wantFail) {
				t.Fatalf("failure %q, want %q", got, tt.wantFail)
			}
		})
	}
}

func TestDrain(t *testing.T) {
	ch := make(chan int, 3)
	ch <- 1
	ch <- 2
	Drain(ch)
	if len(ch) != 0 {
		t.Fatalf("%d values left after Drain", len(ch))
	}
}

// armed is a clock with that many timers armed.
type armed int

func (a armed) WaitForTimers(n int) {
	if n > int(a) {
		select {}
	}
}

// stuckClock never gets its timers armed until its channel closes.
type stuckClock chan struct{}

func (c stuckClock) WaitForTimers(int) { <-c }
