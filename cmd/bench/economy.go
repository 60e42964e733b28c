package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/credsidecar/credsidecar/internal/clock"
	"github.com/credsidecar/credsidecar/internal/creds"
	"github.com/credsidecar/credsidecar/internal/testkit/testbed"
)

// stsProxy sits between the sidecar and SeaweedFS's STS: it counts AssumeRoleWithWebIdentity
// calls and holds each for delay before passing it on, as a WAN round trip to AWS STS would.
// It changes nothing in either direction.
type stsProxy struct {
	srv   *http.Server
	url   string
	delay time.Duration

	mu       sync.Mutex
	calls    int
	answered []time.Time
}

func startSTSProxy(target string, delay time.Duration) (*stsProxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &stsProxy{url: "http://" + ln.Addr().String(), delay: delay}
	rp := httputil.NewSingleHostReverseProxy(u)
	p.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		isAssume := bytes.Contains(body, []byte("Action=AssumeRoleWithWebIdentity"))
		if isAssume {
			p.mu.Lock()
			p.calls++
			p.mu.Unlock()
			time.Sleep(p.delay)
		}
		rp.ServeHTTP(w, r)
		if isAssume {
			p.mu.Lock()
			p.answered = append(p.answered, time.Now())
			p.mu.Unlock()
		}
	})}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

func (p *stsProxy) result() (int, []time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls, append([]time.Time(nil), p.answered...)
}

func (p *stsProxy) close() { _ = p.srv.Close() }

// coldClient is one client's view of a cold start.
type coldClient struct {
	sent   time.Time
	status int
	err    error
}

// coldStart starts a sidecar and, as soon as its listener is bound, n clients at once, each on
// its own connection.
func coldStart(ctx context.Context, e *env, n int) (stsCalls int, metricCalls float64, clients []coldClient, answered time.Time, err error) {
	proxy, err := startSTSProxy(e.weed.Endpoint(), e.s.stsDelay)
	if err != nil {
		return 0, 0, nil, time.Time{}, err
	}
	defer proxy.close()
	p, err := e.spawnSidecar(ctx, proxy.url)
	if err != nil {
		return 0, 0, nil, time.Time{}, err
	}
	defer func() { _ = p.Stop(10 * time.Second) }()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// The listeners are bound before this line is logged and the first STS call starts after.
	if _, err := p.WaitLog(wctx, `"msg":"credsidecar starting"`); err != nil {
		return 0, 0, nil, time.Time{}, err
	}
	req := []byte("GET /v1/credentials HTTP/1.1\r\nHost: " + p.Addr + "\r\nAuthorization: " + p.Auth + "\r\n\r\n")
	clients = make([]coldClient, n)
	var ready, done sync.WaitGroup
	gate := make(chan struct{})
	for i := range clients {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			ready.Done()
			<-gate
			c := &clients[i]
			c.sent = time.Now()
			c.status, c.err = askOnce(p.Addr, req)
		}()
	}
	ready.Wait()
	close(gate)
	done.Wait()
	calls, ans := proxy.result()
	if len(ans) > 0 {
		answered = ans[0]
	}
	metricCalls, err = p.Metric(ctx, "credsidecar_sts_requests_total")
	return calls, metricCalls, clients, answered, err
}

// askOnce opens a connection, asks for credentials and returns the status.
func askOnce(addr string, req []byte) (int, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return 0, err
	}
	if _, err := c.Write(req); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// econTokenLifetime is the projected token's lifetime in the steady-serving simulation: the
// kubelet's default of an hour.
const econTokenLifetime = time.Hour

// econTargetPerHour is issue 7's bound on steady STS calls per hour.
const econTargetPerHour = 3

// steadyDay runs one creds.Manager for hours of virtual time, with the kubelet rotating its
// token (econTokenLifetime) at 80% of its life on the same clock, and returns the virtual times
// of its STS calls and whether it ever had nothing to serve.
func steadyDay(ctx context.Context, dir string, seed uint64, hours int) (calls []time.Time, unservable, rotations int, err error) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	span := time.Duration(hours) * time.Hour
	clk := clock.NewFake(t0)
	iss, err := testbed.NewIssuer(testbed.IssuerOptions{Clock: clk})
	if err != nil {
		return nil, 0, 0, err
	}
	defer iss.Close()
	proj, err := testbed.NewProjector(testbed.ProjectorOptions{
		Dir: dir, Clock: clk, Minter: iss.Minter(testbed.TokenRequest{Lifetime: econTokenLifetime}),
	})
	if err != nil {
		return nil, 0, 0, err
	}
	defer proj.Close()
	vs := newVirtualSTS(t0, span)
	var log callLog
	rng := rand.New(rand.NewPCG(seed, 7))
	m, err := creds.NewManager(creds.Config{RoleARN: testbed.DefaultRoleARN, TokenFile: proj.Path()},
		&loggingSTS{next: vs.client(clk), clk: clk, log: &log}, creds.WithClock(clk), creds.WithRand(rng.Float64))
	if err != nil {
		return nil, 0, 0, err
	}
	rctx, cancel := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() { runErr <- m.Run(rctx) }()
	defer func() {
		cancel()
		if rerr := <-runErr; rerr != nil && err == nil {
			err = rerr
		}
	}()
	// The refresh loop, the token poll and the projector each keep one timer armed.
	const timers = 3
	end := t0.Add(span)
	for clk.Now().Before(end) {
		if ctx.Err() != nil {
			return nil, 0, 0, ctx.Err()
		}
		clk.WaitForTimers(timers)
		if next, _ := clk.NextDeadline(); next.After(end) {
			clk.Set(end)
		} else {
			clk.AdvanceToNext()
		}
		clk.WaitForTimers(timers)
		// Reading never calls STS; it must always find something to serve.
		if m.Servable() == nil {
			unservable++
		}
	}
	return log.list(), unservable, proj.Rotations() - 1, nil
}

// benchEconomy counts STS calls: at a cold start with many clients waiting, and per hour of
// steady serving.
func benchEconomy(ctx context.Context, e *env, r *report) error {
	type cold struct {
		proxyCalls  int
		metricCalls float64
		ok, waited  int
		failed      []string
	}
	var colds []cold
	for i := range e.s.coldRuns {
		calls, metric, clients, answered, err := coldStart(ctx, e, e.s.coldClients)
		if err != nil {
			return err
		}
		c := cold{proxyCalls: calls, metricCalls: metric}
		for _, cl := range clients {
			switch {
			case cl.err != nil:
				c.failed = append(c.failed, cl.err.Error())
			case cl.status != http.StatusOK:
				c.failed = append(c.failed, fmt.Sprintf("status %d", cl.status))
			default:
				c.ok++
				if !answered.IsZero() && cl.sent.Before(answered) {
					c.waited++
				}
			}
		}
		colds = append(colds, c)
		e.log.Info("cold start", "run", i+1, "sts_calls", calls, "metric", metric, "ok", c.ok, "waited", c.waited, "failed", len(c.failed))
	}

	type day struct {
		calls              int
		perHour, maxInHour float64
		interval           time.Duration
		unservable         int
		rotations          int
	}
	var days []day
	for i := range e.s.econRuns {
		dir := filepath.Join(e.tmp, fmt.Sprintf("economy-%d", i))
		calls, unservable, rotations, err := steadyDay(ctx, dir, uint64(i+1), e.s.econHours)
		if err != nil {
			return err
		}
		_ = os.RemoveAll(dir)
		d := day{calls: len(calls), unservable: unservable, rotations: rotations}
		// Steady serving: every call after the cold start's first.
		d.perHour = float64(len(calls)-1) / float64(e.s.econHours)
		perHour := make([]int, e.s.econHours)
		var gaps []time.Duration
		for j, c := range calls {
			if h := int(c.Sub(calls[0]) / time.Hour); j > 0 && h < len(perHour) {
				perHour[h]++
			}
			if j > 0 {
				gaps = append(gaps, c.Sub(calls[j-1]))
			}
		}
		for _, n := range perHour {
			d.maxInHour = max(d.maxInHour, float64(n))
		}
		d.interval = medianDuration(gaps)
		days = append(days, d)
		e.log.Info("virtual day", "run", i+1, "sts_calls", len(calls), "per_hour", fmt.Sprintf("%.2f", d.perHour),
			"max_in_an_hour", d.maxInHour, "median_interval", d.interval.String(), "rotations", rotations, "unservable", unservable)
	}

	r.h2("3. STS economy")
	r.h3("Cold start: concurrent clients")
	var coldRows [][]string
	coldOK, coldFailed := len(colds) > 0, 0
	for i, c := range colds {
		coldOK = coldOK && c.proxyCalls == 1 && len(c.failed) == 0
		coldFailed += len(c.failed)
		failed := "0"
		if len(c.failed) > 0 {
			failed = fmt.Sprintf("%d (%s)", len(c.failed), c.failed[0])
		}
		coldRows = append(coldRows, []string{fmt.Sprint(i + 1), fmt.Sprint(c.proxyCalls), fmt.Sprint(c.metricCalls),
			fmt.Sprint(c.ok), fmt.Sprint(c.waited), failed})
	}
	r.p("The built sidecar is started against SeaweedFS through a counting proxy that adds %s to each STS "+
		"answer (a WAN round trip to AWS STS; without it the local STS answers before most clients arrive). "+
		"As soon as its listener is bound, %d clients ask at once, each on its own connection. "+
		"\"waited\" counts the clients whose request was sent before STS had answered, i.e. that a cold "+
		"cache had to hold; STS calls are counted by the proxy and by the sidecar's own "+
		"credsidecar_sts_requests_total.", e.s.stsDelay, e.s.coldClients)
	r.table([]string{"run", "STS calls (proxy)", "STS calls (metric)", "200s", "waited", "failed"}, coldRows)
	coldText := fmt.Sprintf("exactly 1 STS call for %s concurrent cold-start clients, none failing", thousands(e.s.coldClients))
	if coldFailed > 0 {
		coldText += fmt.Sprintf(": %d failed", coldFailed)
	}
	r.checks("3. STS economy", [][]string{{coldText, verdict(coldOK)}})

	r.h3("Steady serving: STS calls per hour (virtual clock)")
	var perHour, maxIn, intervals []float64
	var unservable int
	var dayRows [][]string
	for i, d := range days {
		perHour = append(perHour, d.perHour)
		maxIn = append(maxIn, d.maxInHour)
		intervals = append(intervals, float64(d.interval))
		unservable += d.unservable
		dayRows = append(dayRows, []string{fmt.Sprint(i + 1), fmt.Sprint(d.calls), fmt.Sprintf("%.2f", d.perHour),
			fmt.Sprint(d.maxInHour), d.interval.Round(time.Second).String(), fmt.Sprint(d.rotations), fmt.Sprint(d.unservable)})
	}
	pol := defaultRefresh()
	r.p("One real `creds.Manager` (default settings: %s) "+
		"runs for %d virtual hours on a fake clock, while the kubelet-style projector rotates its %s token at "+
		"80%% of its life on the same clock (inotify and the poll both see the rotations), and the credentials "+
		"are read after every clock step. STS is `virtualSTS` (credentials in virtual time). %s with "+
		"different jitter seeds; per hour excludes the cold start's first call.",
		pol.describe(), e.s.econHours, human(econTokenLifetime), count(e.s.econRuns, "day", "days"))
	r.table([]string{"day", "STS calls", "per hour", "most in one hour", "median interval", "token rotations", "steps with nothing servable"}, dayRows)
	ph := median(perHour)
	r.checks("3. STS economy", [][]string{
		{fmt.Sprintf("<= %d STS calls per hour of steady serving at %s sessions: %.2f (median), most in one hour %v",
			econTargetPerHour, human(pol.session), ph, median(maxIn)), verdict(ph <= econTargetPerHour)},
		{"never without servable credentials", verdict(unservable == 0)},
	})
	if ph > econTargetPerHour {
		r.p("%s Median interval measured: %s.", economyWhy(pol), time.Duration(median(intervals)).Round(time.Second))
	}
	return nil
}

// economyWhy explains, from the refresh schedule, what steady serving costs in STS calls and
// what would lower it; the report prints it when the target is missed.
func economyWhy(p refreshPolicy) string {
	lo, hi := p.spacing()
	phLo, phHi := p.perHour()
	longer := refreshPolicy{session: 2 * p.session, window: p.window}
	llo, lhi := longer.spacing()
	w := p.windowFor(econTargetPerHour)
	return fmt.Sprintf("Why: with %s sessions and the default %s refresh window (jittered down to %s), a refresh "+
		"comes every %s–%s, i.e. %.3g–%.3g per hour. The window is what keeps >= 20 min for the SDKs "+
		"through 20 min of STS trouble (PROTOCOL.md §2); <= %d/h at %s sessions needs a window of "+
		"at most %s, or longer sessions (--duration %s: a refresh every %s–%s).",
		human(p.session), human(p.window), human(p.minWindow()), human(lo), human(hi), phLo, phHi,
		econTargetPerHour, human(p.session), human(w), human(longer.session), human(llo), human(lhi))
}
