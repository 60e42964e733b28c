package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/credsidecar/credsidecar/internal/authtoken"
	"github.com/credsidecar/credsidecar/internal/creds"
	"github.com/credsidecar/credsidecar/internal/server"
	"github.com/credsidecar/credsidecar/internal/testkit/testbed"
)

// microFixture is what the Go benchmarks work on: a creds.Manager holding credentials it got
// from SeaweedFS, the auth token, and a projected token's bytes.
type microFixture struct {
	m     *creds.Manager
	auth  *authtoken.Token
	token string
	jwt   []byte
	stop  func() error
}

// newMicroFixture runs a Manager against weed with the token at tokenFile until stop.
func newMicroFixture(ctx context.Context, weed *testbed.SeaweedFS, tokenFile, dir string) (*microFixture, error) {
	jwt, err := os.ReadFile(tokenFile)
	if err != nil {
		return nil, err
	}
	m, err := creds.NewManager(creds.Config{RoleARN: weed.RoleARN(), TokenFile: tokenFile},
		creds.NewSTSClient(testbed.Region, weed.Endpoint()))
	if err != nil {
		return nil, err
	}
	stop := runManager(ctx, m)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if m.Wait(wctx) == nil {
		_ = stop()
		return nil, fmt.Errorf("no credentials from SeaweedFS: %v", m.LastError())
	}
	authFile := filepath.Join(dir, "micro-auth-token")
	if err := os.WriteFile(authFile, []byte("micro-benchmark-auth-token-0123456789"), 0o600); err != nil {
		_ = stop()
		return nil, err
	}
	tok, err := authtoken.Load(authFile)
	if err != nil {
		_ = stop()
		return nil, err
	}
	return &microFixture{m: m, auth: tok, token: "micro-benchmark-auth-token-0123456789", jwt: jwt, stop: stop}, nil
}

// discardWriter is a ResponseWriter that keeps only the status, so a benchmark measures the
// handler and not a recorder.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(code int)        { w.status = code }

// benchHandler is one GET /v1/credentials through the endpoint's full handler (routing,
// middleware, auth check, cached answer), without the network.
func benchHandler(b *testing.B, f *microFixture) {
	h := server.NewCredentials(f.m, f.auth)
	req := httptest.NewRequest(http.MethodGet, server.CredentialsPath, nil)
	req.Header.Set("Authorization", f.token)
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		h.ServeHTTP(w, req)
	}
	if w.status != http.StatusOK {
		b.Fatalf("status %d, want 200", w.status)
	}
}

// benchHandlerParallel is benchHandler from GOMAXPROCS goroutines at once.
func benchHandlerParallel(b *testing.B, f *microFixture) {
	h := server.NewCredentials(f.m, f.auth)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req := httptest.NewRequest(http.MethodGet, server.CredentialsPath, nil)
		req.Header.Set("Authorization", f.token)
		w := &discardWriter{h: http.Header{}}
		served := false
		for pb.Next() {
			clear(w.h)
			h.ServeHTTP(w, req)
			served = true
		}
		// A goroutine may get no iteration at all.
		if served && w.status != http.StatusOK {
			b.Errorf("status %d, want 200", w.status)
		}
	})
}

// benchServable is the request path's one look at the cache.
func benchServable(b *testing.B, f *microFixture) {
	b.ReportAllocs()
	for b.Loop() {
		if f.m.Servable() == nil {
			b.Fatal("nothing servable")
		}
	}
}

// benchDecodeToken decodes a projected service-account token, as every refresh and token check
// does.
func benchDecodeToken(b *testing.B, f *microFixture) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := creds.DecodeToken(f.jwt); err != nil {
			b.Fatal(err)
		}
	}
}

// microBenches are the Go benchmarks, run by benchMicro and by bench_test.go.
func microBenches() []struct {
	name string
	fn   func(*testing.B, *microFixture)
} {
	return []struct {
		name string
		fn   func(*testing.B, *microFixture)
	}{
		{"CredentialsHandler", benchHandler},
		{"CredentialsHandlerParallel", benchHandlerParallel},
		{"Servable", benchServable},
		{"DecodeToken", benchDecodeToken},
	}
}

func benchMicro(ctx context.Context, e *env, r *report) error {
	f, err := newMicroFixture(ctx, e.weed, e.proj.Path(), e.tmp)
	if err != nil {
		return err
	}
	defer func() { _ = f.stop() }()
	// testing.Benchmark reads -test.benchtime; it is registered only by testing.Init.
	testing.Init()
	if err := flag.CommandLine.Set("test.benchtime", e.s.microTime.String()); err != nil {
		return err
	}
	var rows [][]string
	for _, mb := range microBenches() {
		var results []testing.BenchmarkResult
		for range 3 {
			res := testing.Benchmark(func(b *testing.B) { mb.fn(b, f) })
			if res.N == 0 {
				return fmt.Errorf("benchmark %s failed", mb.name)
			}
			results = append(results, res)
		}
		var ns []float64
		for _, res := range results {
			ns = append(ns, float64(res.T.Nanoseconds())/float64(res.N))
		}
		last := results[len(results)-1]
		rows = append(rows, []string{mb.name, fmt.Sprintf("%.1f", median(ns)), fmt.Sprint(last.AllocedBytesPerOp()), fmt.Sprint(last.AllocsPerOp())})
		e.log.Info("micro", "name", mb.name, "ns_per_op", fmt.Sprintf("%.1f", median(ns)))
	}
	r.h2("Go benchmarks")
	r.p("`testing.Benchmark`, %s each, median of 3; also `go test -bench . ./cmd/bench` (needs the weed binary). "+
		"The handler benchmarks call the credentials endpoint's full handler (routing, metrics and recovery "+
		"middleware, auth check, cached answer) without the network; its credentials come from SeaweedFS through a real Manager. "+
		"CredentialsHandlerParallel runs on all %d Ps, so its ns/op is per request across them.", e.s.microTime, runtime.GOMAXPROCS(0))
	r.table([]string{"benchmark", "ns/op", "B/op", "allocs/op"}, rows)
	return nil
}
