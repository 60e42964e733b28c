package testlog

import (
	"log/slog"
	"strings"
	"sync"
	"testing"
)

func TestBufferCollectsConcurrentLines(t *testing.T) {
	tests := []struct {
		name    string
		level   slog.Level
		workers int
		want    int
	}{
		{name: "debug kept", level: slog.LevelDebug, workers: 8, want: 8},
		{name: "debug dropped at info", level: slog.LevelInfo, workers: 8, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log, buf := New(tt.level)
			var wg sync.WaitGroup
			for i := range tt.workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					log.Debug("event", "worker", i)
				}()
			}
			wg.Wait()
			if got := buf.Lines(); got != tt.want {
				t.Fatalf("Lines() = %d, want %d:\n%s", got, tt.want, buf.String())
			}
			if tt.want > 0 && !strings.Contains(buf.String(), `"msg":"event"`) {
				t.Fatalf("output is not JSON lines: %s", buf.String())
			}
		})
	}
}
