package upload

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"

	"github.com/credsidecar/credsidecar/internal/clock"
	"github.com/credsidecar/credsidecar/internal/testkit/await"
)

// recordHandler hands every log record to the test through a channel, so a test can wait for a
// line without sleeping.
type recordHandler struct {
	ch chan slog.Record
}

func newRecordHandler(tb testing.TB) *recordHandler {
	tb.Helper()
	return &recordHandler{ch: make(chan slog.Record, 64)}
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.ch <- r.Clone()
	return nil
}
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordHandler) WithGroup(string) slog.Handler      { return h }

// next waits for the next record; the timeout only bounds a broken test.
func (h *recordHandler) next(tb testing.TB) slog.Record {
	tb.Helper()
	select {
	case r := <-h.ch:
		return r
	case <-time.After(10 * time.Second):
		tb.Fatal("no log record within 10s")
		return slog.Record{}
	}
}

func attrs(r slog.Record) map[string]slog.Value {
	m := map[string]slog.Value{}
	r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value; return true })
	return m
}

func TestProgressLogsEveryInterval(t *testing.T) {
	start := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	fc := clock.NewFake(start)
	h := newRecordHandler(t)
	const total = 40 * MiB
	p := newProgress(fc, 5*time.Second, slog.New(h), total)

	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { p.run(ctx) })

	steps := []struct {
		name        string
		transferred int64
		wantPercent float64
		wantRate    int64
	}{
		{name: "first interval", transferred: 10 * MiB, wantPercent: 25, wantRate: 10 * MiB / 5},
		{name: "second interval", transferred: 30 * MiB, wantPercent: 75, wantRate: 30 * MiB / 10},
		{name: "nothing new still logs", transferred: 30 * MiB, wantPercent: 75, wantRate: 30 * MiB / 15},
	}
	for i, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			await.Timers(t, 30*time.Second, fc, 1)
			p.OnObjectBytesTransferred(ctx, &transfermanager.ObjectBytesTransferredEvent{BytesTransferred: st.transferred, TotalBytes: total})
			// Just short of the interval: no line yet.
			fc.Advance(5*time.Second - time.Millisecond)
			select {
			case r := <-h.ch:
				t.Fatalf("progress logged early: %v", r.Message)
			default:
			}
			fc.Advance(time.Millisecond)
			r := h.next(t)
			a := attrs(r)
			if r.Message != "upload progress" {
				t.Fatalf("message %q", r.Message)
			}
			if got := a["bytes_done"].Int64(); got != st.transferred {
				t.Errorf("bytes_done = %d, want %d", got, st.transferred)
			}
			if got := a["bytes_total"].Int64(); got != total {
				t.Errorf("bytes_total = %d", got)
			}
			if got := a["percent"].Float64(); got != st.wantPercent {
				t.Errorf("percent = %v, want %v", got, st.wantPercent)
			}
			if got := a["bytes_per_second"].Int64(); got != st.wantRate {
				t.Errorf("bytes_per_second = %d, want %d", got, st.wantRate)
			}
			if got := a["elapsed"].Duration(); got != time.Duration(i+1)*5*time.Second {
				t.Errorf("elapsed = %v", got)
			}
		})
	}
	cancel()
	await.Done(t, 30*time.Second, "the progress loop's end after cancel", wg.Wait)
	if n := fc.Pending(); n != 0 {
		t.Errorf("%d timers left armed after stop", n)
	}
}

func TestProgressUnknownTotal(t *testing.T) {
	fc := clock.NewFake(time.Unix(0, 0))
	h := newRecordHandler(t)
	p := newProgress(fc, time.Second, slog.New(h), 0)
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { p.run(ctx) })
	await.Timers(t, 30*time.Second, fc, 1)
	fc.Advance(time.Second)
	a := attrs(h.next(t))
	if _, ok := a["percent"]; ok {
		t.Error("percent logged without a known total")
	}
	cancel()
	await.Done(t, 30*time.Second, "the progress loop's end after cancel", wg.Wait)
}
