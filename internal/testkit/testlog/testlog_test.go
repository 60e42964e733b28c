package testlog

import (
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credsidecar/credsidecar/internal/testkit/await"
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
			await.Done(t, 10*time.Second, "the workers' logging", wg.Wait)
			if got := buf.Lines(); got != tt.want {
				t.Fatalf("Lines() = %d, want %d:\n%s", got, tt.want, buf.String())
			}
			if tt.want > 0 && !strings.Contains(buf.String(), `"msg":"event"`) {
				t.Fatalf("output is not JSON lines: %s", buf.String())
			}
		})
	}
}

const sample = `{"time":"t","level":"INFO","msg":"fetched credentials","role_arn":"arn:aws:iam::1:role/a","n":2}
{"time":"t","level":"WARN","msg":"token problem","id":"token-multiple-audiences"}
{"time":"t","level":"WARN","msg":"token problem","id":"other"}
`

func TestBufferQueries(t *testing.T) {
	var b Buffer
	if _, err := b.Write([]byte(sample)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		got  func() any
		want any
	}{
		{name: "count by message", got: func() any { return b.Count("token problem", nil) }, want: 2},
		{name: "count by attribute", got: func() any { return b.Count("token problem", map[string]string{"id": "other"}) }, want: 1},
		{name: "count by number attribute", got: func() any { return b.Count("fetched credentials", map[string]string{"n": "2"}) }, want: 1},
		{name: "count missing attribute", got: func() any { return b.Count("fetched credentials", map[string]string{"id": ""}) }, want: 0},
		{name: "has substrings", got: func() any { return b.Has("fetched credentials", `"role_arn":"arn:aws:iam::1:role/a"`) }, want: true},
		{name: "has other message", got: func() any { return b.Has("token problem", "role_arn") }, want: false},
		{name: "find returns the record", got: func() any { return fmt.Sprint(b.Find("token problem", "other")["id"]) }, want: "other"},
		{name: "find nothing", got: func() any { return b.Find("absent") == nil }, want: true},
		{name: "tail", got: func() any { return b.Tail(1) }, want: strings.Split(sample, "\n")[2]},
		{name: "records", got: func() any { r, err := b.Records(); return fmt.Sprint(len(r), err) }, want: "3 <nil>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.got(); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRecordsRejectsNonJSON(t *testing.T) {
	tests := []struct {
		name, logs, wantErr string
	}{
		{name: "empty", logs: "", wantErr: "no log lines"},
		{name: "text line", logs: "time=x msg=y\n", wantErr: "log line 1 is not JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b Buffer
			b.Write([]byte(tt.logs))
			if _, err := b.Records(); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Records() error = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestWaitCountWakesOnWrite(t *testing.T) {
	log, b := New(slog.LevelInfo)
	go func() {
		for i := range 3 {
			log.Info("event", "i", i)
		}
	}()
	b.WaitCount(t, 10*time.Second, 3, "event", nil)
	if rec := b.WaitFind(t, 10*time.Second, "event", `"i":2`); rec["i"] != float64(2) {
		t.Fatalf("WaitFind found %v", rec)
	}
	if n := b.Count("event", nil); n != 3 {
		t.Fatalf("Count = %d after WaitCount(3)", n)
	}
}

// fatalTB records Fatalf and ends the goroutine, as testing.T does, so a wait's failure can be
// tested without failing this test.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (f *fatalTB) Errorf(format string, args ...any) { f.msg = fmt.Sprintf(format, args...) }

func TestWaitForFailsWithWhatAndTail(t *testing.T) {
	var b Buffer
	b.Write([]byte(sample))
	tb := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.WaitFor(tb, 10*time.Millisecond, "the impossible", func() bool { return false })
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("WaitFor did not give up within 10 s of its 10 ms guard")
	}
	for _, want := range []string{"no the impossible within 10ms", `"id":"other"`} {
		if !strings.Contains(tb.msg, want) {
			t.Errorf("failure %q lacks %q", tb.msg, want)
		}
	}
}

func TestMustNotContain(t *testing.T) {
	var b Buffer
	b.Write([]byte(sample))
	tests := []struct {
		name    string
		secrets []string
		fail    bool
	}{
		{name: "absent", secrets: []string{"AKIASECRET"}},
		{name: "empty secret ignored", secrets: []string{""}},
		{name: "present", secrets: []string{"role/a"}, fail: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := &fatalTB{TB: t}
			b.MustNotContain(tb, "secret", tt.secrets...)
			if got := tb.msg != ""; got != tt.fail {
				t.Fatalf("failed = %v (%q), want %v", got, tb.msg, tt.fail)
			}
			if strings.Contains(tb.msg, "role/a") {
				t.Error("the failure quotes the secret")
			}
		})
	}
}
