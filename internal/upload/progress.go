package upload

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"

	"github.com/credsidecar/credsidecar/internal/clock"
)

// progress logs how far an upload has got, on a timer, so a long multipart upload is visibly
// alive in the pod log. Bytes count once S3 has acknowledged the part that carried them.
type progress struct {
	clock    clock.Clock
	interval time.Duration
	log      *slog.Logger
	total    int64
	start    time.Time
	done     atomic.Int64
}

var _ transfermanager.ObjectBytesTransferredListener = (*progress)(nil)

func newProgress(c clock.Clock, interval time.Duration, log *slog.Logger, total int64) *progress {
	return &progress{clock: c, interval: interval, log: log, total: total, start: c.Now()}
}

// OnObjectBytesTransferred records the running total the transfer manager reports.
func (p *progress) OnObjectBytesTransferred(_ context.Context, e *transfermanager.ObjectBytesTransferredEvent) {
	p.done.Store(e.BytesTransferred)
}

// run logs a progress line every interval until ctx is done.
func (p *progress) run(ctx context.Context) {
	t := p.clock.NewTimer(p.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			p.report(ctx)
			t.Reset(p.interval)
		}
	}
}

func (p *progress) report(ctx context.Context) {
	done := p.done.Load()
	elapsed := p.clock.Now().Sub(p.start)
	attrs := []slog.Attr{
		slog.Int64("bytes_done", done),
		slog.Int64("bytes_total", p.total),
		slog.Duration("elapsed", elapsed),
	}
	if p.total > 0 {
		attrs = append(attrs, slog.Float64("percent", float64(int(float64(done)/float64(p.total)*1000))/10))
	}
	if secs := elapsed.Seconds(); secs > 0 {
		attrs = append(attrs, slog.Int64("bytes_per_second", int64(float64(done)/secs)))
	}
	p.log.LogAttrs(ctx, slog.LevelInfo, "upload progress", attrs...)
}
