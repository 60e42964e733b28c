//go:build soak

package reliability

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/credsidecar/credsidecar/internal/testkit/await"
	"github.com/credsidecar/credsidecar/internal/testkit/load"
	"github.com/credsidecar/credsidecar/internal/testkit/podenv"
	"github.com/credsidecar/credsidecar/internal/testkit/proc"
	"github.com/credsidecar/credsidecar/internal/testkit/sidecarproc"
	"github.com/credsidecar/credsidecar/internal/testkit/testbed"
	"github.com/credsidecar/credsidecar/internal/testkit/testlog"
)

// soakDurationEnv overrides the soak's length (a Go duration), e.g. for a quick try.
const soakDurationEnv = "CREDSIDECAR_SOAK_DURATION"

// TestSoak runs the built sidecar binary against SeaweedFS for ten minutes under 64
// keep-alive connections while the kubelet's token rotates every minute: no request may fail,
// every rotation must be noticed, STS must be called only for refreshes, and the process's
// resident memory must stay flat (the last minute's peak within 10% + 1 MiB of the first's).
func TestSoak(t *testing.T) {
	length := 10 * time.Minute
	if v := os.Getenv(soakDurationEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 10*time.Second {
			t.Fatalf("%s=%q: want a duration of at least 10s", soakDurationEnv, v)
		}
		length = d
	}
	const (
		conns          = 64
		rotateEvery    = time.Minute
		sampleEvery    = 5 * time.Second
		compareWindows = time.Minute
	)
	ctx, cancel := context.WithTimeout(context.Background(), length+5*time.Minute)
	defer cancel()

	w := podenv.Shared(t)
	dir := t.TempDir()
	bin, err := sidecarproc.Build(ctx, dir)
	must(t, err)
	proj := testbed.NewProjectorForTest(t, testbed.ProjectorOptions{Minter: w.Issuer.Minter(testbed.TokenRequest{})})
	var logs testlog.Buffer
	sc, err := sidecarproc.Start(ctx, sidecarproc.Options{
		Binary: bin, Dir: dir,
		RoleARN: w.Weed.RoleARN(), TokenFile: proj.Path(), STSEndpoint: w.Weed.Endpoint(), Region: testbed.Region,
		Logs: &logs,
	})
	must(t, err)
	defer func() {
		if t.Failed() {
			t.Logf("sidecar logs (last 60 lines):\n%s", logs.Tail(60))
		}
	}()
	defer func() {
		if err := sc.Stop(10 * time.Second); err != nil {
			t.Errorf("sidecar did not exit cleanly on SIGTERM: %v", err)
		}
	}()
	if _, err := sc.WaitServing(ctx); err != nil {
		t.Fatal(err)
	}
	startMem, err := proc.ReadMemory(sc.Pid())
	must(t, err)

	// The kubelet's rotations and the memory samples run beside the load.
	type sample struct {
		at  time.Duration
		rss int64
	}
	var samples []sample
	rotations := 0
	loadDone := make(chan struct{})
	var side sync.WaitGroup
	side.Add(1)
	go func() {
		defer side.Done()
		began := time.Now()
		rotate := time.NewTicker(rotateEvery)
		defer rotate.Stop()
		measure := time.NewTicker(sampleEvery)
		defer measure.Stop()
		for {
			select {
			case <-loadDone:
				return
			case <-rotate.C:
				if err := proj.Rotate(); err != nil {
					t.Errorf("rotate token: %v", err)
					return
				}
				rotations++
			case <-measure.C:
				m, err := proc.ReadMemory(sc.Pid())
				if err != nil {
					t.Errorf("read sidecar memory: %v", err)
					return
				}
				samples = append(samples, sample{time.Since(began), m.RSS})
			}
		}
	}()
	res, err := load.Run(ctx, load.Target{Addr: sc.Addr, Path: "/v1/credentials",
		Header: [][2]string{{"Authorization", sc.Auth}, {"Accept", "application/json"}}}, load.Options{
		Conns: conns, Duration: length,
		Check: func(status int, body []byte) error {
			if status != 200 || !bytes.Contains(body, []byte(`"AccessKeyId":"`)) {
				return fmt.Errorf("status %d: %.200s", status, body)
			}
			return nil
		},
	})
	close(loadDone)
	await.Done(t, guard, "the rotations and memory samples to stop", side.Wait)
	must(t, err)
	endMem, err := proc.ReadMemory(sc.Pid())
	must(t, err)

	if res.Errors != 0 || res.Non200() != 0 {
		t.Errorf("%d failed requests, %d non-200 answers; first errors: %q", res.Errors, res.Non200(), res.ErrorSamples)
	}
	if res.Requests == 0 {
		t.Fatal("no request answered")
	}
	reloads, err := sc.Metric(ctx, "credsidecar_token_reloads_total")
	must(t, err)
	if int(reloads) < rotations {
		t.Errorf("%v token reloads counted for %d rotations", reloads, rotations)
	}
	stsCalls, err := sc.Metric(ctx, "credsidecar_sts_requests_total")
	must(t, err)
	// One call at start, then one per refresh: at least 16 min apart with 1 h sessions.
	if most := 1 + int(length/(16*time.Minute)) + 1; int(stsCalls) > most {
		t.Errorf("%v STS calls in %v with %d token rotations, want at most %d", stsCalls, length, rotations, most)
	}

	var first, last int64
	for _, s := range samples {
		if s.at <= compareWindows {
			first = max(first, s.rss)
		}
		if s.at >= length-compareWindows {
			last = max(last, s.rss)
		}
	}
	if first == 0 || last == 0 {
		t.Fatalf("not enough memory samples: %d", len(samples))
	}
	if limit := first + first/10 + 1<<20; last > limit {
		t.Errorf("RSS grew: first minute's peak %s MiB, last minute's %s MiB (limit %s MiB)",
			proc.MiB(first), proc.MiB(last), proc.MiB(limit))
	}
	t.Logf("soak %v, %d connections: %d requests (%.0f/s), p50 %v, p99 %v, max %v; %d token rotations, %v reloads, %v STS calls",
		length, conns, res.Requests, res.RPS(), res.Latency.Quantile(0.5), res.Latency.Quantile(0.99), res.Latency.Max(),
		rotations, reloads, stsCalls)
	t.Logf("sidecar RSS: %s MiB when ready, first minute's peak %s MiB, last minute's peak %s MiB, %s MiB at the end (peak %s MiB)",
		proc.MiB(startMem.RSS), proc.MiB(first), proc.MiB(last), proc.MiB(endMem.RSS), proc.MiB(endMem.PeakRSS))
}
