package load

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

func TestHistogramQuantiles(t *testing.T) {
	tests := []struct {
		name   string
		values []time.Duration
		q      float64
		want   time.Duration
	}{
		{name: "single", values: []time.Duration{42 * time.Microsecond}, q: 0.5, want: 42 * time.Microsecond},
		{name: "exact range", values: []time.Duration{1, 2, 3, 4}, q: 0.5, want: 2},
		{name: "p99 of 1..100us", values: seq(100, time.Microsecond), q: 0.99, want: 99 * time.Microsecond},
		{name: "p50 of 1..100us", values: seq(100, time.Microsecond), q: 0.5, want: 50 * time.Microsecond},
		{name: "max", values: seq(1000, time.Millisecond), q: 1, want: time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Histogram
			for _, v := range tt.values {
				h.Record(v)
			}
			got := h.Quantile(tt.q)
			if diff := got - tt.want; diff < -tt.want/100 || diff > tt.want/100 {
				t.Errorf("Quantile(%v) = %v, want %v within 1%%", tt.q, got, tt.want)
			}
		})
	}
}

// The histogram's answer must match sorting the raw values, to its stated 0.8% precision, for
// values spread over many orders of magnitude.
func TestHistogramAgainstSort(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h, a, b Histogram
	var all []time.Duration
	for i := range 100000 {
		v := time.Duration(r.ExpFloat64() * float64(200*time.Microsecond))
		all = append(all, v)
		if i%2 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
	}
	h.Merge(&a)
	h.Merge(&b)
	slices.Sort(all)
	if h.Count() != uint64(len(all)) || h.Max() != all[len(all)-1] {
		t.Fatalf("Count, Max = %d, %v; want %d, %v", h.Count(), h.Max(), len(all), all[len(all)-1])
	}
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999} {
		want := all[int(q*float64(len(all)))-1]
		got := h.Quantile(q)
		if diff := float64(got-want) / float64(want); diff < -0.008 || diff > 0.008 {
			t.Errorf("Quantile(%v) = %v, sorted says %v (%.2f%% off)", q, got, want, diff*100)
		}
	}
}

func TestHistogramEmpty(t *testing.T) {
	var h Histogram
	if h.Quantile(0.5) != 0 || h.Count() != 0 {
		t.Errorf("empty histogram: Quantile = %v, Count = %d", h.Quantile(0.5), h.Count())
	}
}

func seq(n int, unit time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = time.Duration(i+1) * unit
	}
	return out
}

// The generator against a real net/http server: every request carries the headers, every
// answer is counted by status, keep-alive is used (few connections), and Check failures count
// as errors.
func TestRunAgainstServer(t *testing.T) {
	var conns atomic.Int64
	var requests atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := requests.Add(1)
		if r.Header.Get("Authorization") != "tok" || r.URL.Path != "/v1/credentials" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if n%10 == 0 {
			w.Header().Set("Content-Length", "3")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("bad"))
			return
		}
		body := `{"ok":true}`
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write([]byte(body))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	addr := srv.Listener.Addr().String()
	res, err := Run(context.Background(), Target{Addr: addr, Path: "/v1/credentials",
		Header: [][2]string{{"Authorization", "tok"}}}, Options{
		Conns: 4, Warmup: 20 * time.Millisecond, Duration: 200 * time.Millisecond,
		Check: func(status int, body []byte) error {
			if status == 200 && string(body) != `{"ok":true}` {
				return fmt.Errorf("body %q", body)
			}
			if status == 503 {
				return errors.New("503")
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests == 0 || res.Latency.Count() != res.Requests {
		t.Fatalf("Requests = %d, latency count %d; want > 0 and equal", res.Requests, res.Latency.Count())
	}
	if res.Status[401] != 0 {
		t.Errorf("%d answers were 401: headers or path not sent", res.Status[401])
	}
	total := res.Status[200] + res.Status[503]
	// Each connection may have one answer in flight when the run ends, unread.
	if served := uint64(requests.Load()); total > served || served > total+4 {
		t.Errorf("counted %d answers, server answered %d; want at most 4 (one per connection) uncounted", total, served)
	}
	if res.Errors != res.Status[503] || res.Non200() != res.Status[503] {
		t.Errorf("Errors = %d, Non200 = %d; want both = the %d answers Check refused", res.Errors, res.Non200(), res.Status[503])
	}
	if c := conns.Load(); c != 4 {
		t.Errorf("%d connections opened for 4 workers, want 4 (keep-alive)", c)
	}
	if res.RPS() <= 0 || res.Elapsed != 200*time.Millisecond {
		t.Errorf("RPS = %v, Elapsed = %v", res.RPS(), res.Elapsed)
	}
}

// A server that answers "Connection: close" makes the worker reconnect, not fail.
func TestRunReconnectsOnClose(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Connection", "close")
		w.Header().Set("Content-Length", "2")
		_, _ = w.Write([]byte("ok"))
	}))
	defer srv.Close()
	res, err := Run(context.Background(), Target{Addr: srv.Listener.Addr().String(), Path: "/"},
		Options{Conns: 2, Duration: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.Status[200] < 2 {
		t.Errorf("Errors = %d (%q), 200s = %d; want 0 errors and several answers", res.Errors, res.ErrorSamples, res.Status[200])
	}
}

func TestRunRefusedConnectionsCount(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	res, err := Run(context.Background(), Target{Addr: addr, Path: "/"}, Options{Conns: 1, Duration: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors == 0 || len(res.ErrorSamples) == 0 || res.Requests != 0 {
		t.Errorf("against a closed port: Errors = %d, samples %q, Requests %d", res.Errors, res.ErrorSamples, res.Requests)
	}
}

func TestRunRejectsBadOptions(t *testing.T) {
	for _, o := range []Options{{Conns: 0, Duration: time.Second}, {Conns: 1}} {
		if _, err := Run(context.Background(), Target{Addr: "127.0.0.1:1"}, o); err == nil {
			t.Errorf("Run(%+v) = nil error", o)
		}
	}
}
