package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/credsidecar/credsidecar/internal/clock"
	"github.com/credsidecar/credsidecar/internal/creds"
	"github.com/credsidecar/credsidecar/internal/testkit/testbed"
)

// fleetPollDefault is the simulated sidecars' token poll interval when -fleet-poll is 0. The
// poll only re-reads the token file, which never changes in the simulation, and a re-read that
// finds the same token wakes nothing (creds kicks the refresh loop only on a change), so polls
// cannot cause an STS call here. At the sidecar's default of 30 s they would still cost 28.8
// million file reads for 10,000 sidecars over a day, which would dominate the run; an hour keeps
// the poll's code path in the simulation at 1/120 of the cost.
const fleetPollDefault = time.Hour

// fleetResult is what the simulation counted.
type fleetResult struct {
	perSecond []int64
	total     int64
	took      time.Duration
	start     time.Time
}

// simulateFleet runs n real creds.Managers, all started at the same virtual instant, for hours
// of virtual time against virtualSTS, and counts STS calls per virtual second.
//
// Managers share nothing but STS, which never pushes back here, so how one schedules its calls
// does not depend on the others. That lets them run in batches, each batch on its own virtual
// clock starting at the same instant, and the per-second counts of all batches add up to
// exactly those of n Managers running at once. Batches keep the simulation within what the
// machine allows: every Manager holds an inotify instance while it runs (the kernel allows 128
// per user, shared with everything else running here) and one fake clock's timer list grows
// with every Manager on it.
func simulateFleet(ctx context.Context, e *env, n, hours, batch int, poll time.Duration) (*fleetResult, error) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	span := time.Duration(hours) * time.Hour
	dir := filepath.Join(e.tmp, "fleet")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// One token for every sidecar, valid throughout: the fleet measures refresh scheduling.
	iss, err := testbed.NewIssuer(testbed.IssuerOptions{Clock: clock.NewFake(t0)})
	if err != nil {
		return nil, err
	}
	tok, err := iss.Mint(testbed.TokenRequest{IssuedAt: t0, Lifetime: span + 24*time.Hour})
	iss.Close()
	if err != nil {
		return nil, err
	}
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(tok), 0o644); err != nil {
		return nil, err
	}
	vs := newVirtualSTS(t0, span)
	began := time.Now()

	workers := max(runtime.GOMAXPROCS(0), 1)
	next := make(chan int)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for first := range next {
				if err := runBatch(ctx, vs, t0, span, tokenFile, first, min(batch, n-first), poll); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	done := 0
	lastLog := time.Now()
feed:
	for first := 0; first < n; first += batch {
		select {
		case next <- first:
		case err := <-errs:
			close(next)
			wg.Wait()
			return nil, err
		case <-ctx.Done():
			break feed
		}
		done = first + batch
		if time.Since(lastLog) > 10*time.Second {
			e.log.Info("fleet", "sidecars_started", min(done, n), "of", n, "elapsed", time.Since(began).Round(time.Second).String())
			lastLog = time.Now()
		}
	}
	close(next)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if late := vs.late.Load(); late > 0 {
		return nil, fmt.Errorf("%d STS calls outside the simulated span", late)
	}
	return &fleetResult{perSecond: vs.perSecond(), total: vs.total.Load(), took: time.Since(began), start: t0}, nil
}

// runBatch runs Managers first..first+k-1 on one virtual clock until span has passed.
func runBatch(ctx context.Context, vs *virtualSTS, t0 time.Time, span time.Duration, tokenFile string, first, k int, poll time.Duration) error {
	clk := clock.NewFake(t0)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	runErrs := make(chan error, k)
	for i := range k {
		// Each sidecar draws its own jitter, reproducibly.
		rng := rand.New(rand.NewPCG(uint64(first+i), 2026))
		m, err := creds.NewManager(creds.Config{RoleARN: testbed.DefaultRoleARN, TokenFile: tokenFile, PollInterval: poll},
			vs.client(clk), creds.WithClock(clk), creds.WithRand(rng.Float64))
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.Run(ctx); err != nil {
				runErrs <- err
			}
		}()
	}
	// Every Manager keeps two timers armed when idle: its refresh loop's and its token poll's.
	timers := 2 * k
	end := t0.Add(span)
	for {
		if ctx.Err() != nil {
			break
		}
		clk.WaitForTimers(timers)
		if next, ok := clk.NextDeadline(); !ok || next.After(end) {
			break
		}
		clk.AdvanceToNext()
	}
	cancel()
	wg.Wait()
	close(runErrs)
	return errors.Join(<-runErrs)
}

// fleetStats summarises per-second counts. "Steady" is the second half of the span, by when the
// refresh waves of the common start have spread out.
type fleetStats struct {
	avgPerSecond     float64
	peakSecond       int64
	peakSecondAt     int
	perMinute        []int64
	firstWavePeak    int64 // the highest minute of the first hour after minute 0
	firstWaveAt      int
	lastOver2x       int // the last minute above twice the steady average per minute; -1 if none
	steadyFrom       int // first second of the steady half
	steadyAvgSecond  float64
	steadyPeakSecond int64
	steadyPeakSecAt  int
	steadyAvgMinute  float64
	steadyPeakMinute int64
	steadyPeakMinAt  int
}

func summarise(perSecond []int64) fleetStats {
	s := fleetStats{steadyFrom: len(perSecond) / 2 / 60 * 60, lastOver2x: -1}
	var total, steady int64
	for i, c := range perSecond {
		total += c
		if c > s.peakSecond {
			s.peakSecond, s.peakSecondAt = c, i
		}
		if i >= s.steadyFrom {
			steady += c
			if c > s.steadyPeakSecond {
				s.steadyPeakSecond, s.steadyPeakSecAt = c, i
			}
		}
	}
	s.avgPerSecond = float64(total) / float64(len(perSecond))
	if n := len(perSecond) - s.steadyFrom; n > 0 {
		s.steadyAvgSecond = float64(steady) / float64(n)
	}
	s.perMinute = make([]int64, (len(perSecond)+59)/60)
	for i, c := range perSecond {
		s.perMinute[i/60] += c
	}
	s.steadyAvgMinute = 60 * s.steadyAvgSecond
	for i, c := range s.perMinute {
		if i > 0 && i < 60 && c > s.firstWavePeak {
			s.firstWavePeak, s.firstWaveAt = c, i
		}
		if i >= s.steadyFrom/60 && c > s.steadyPeakMinute {
			s.steadyPeakMinute, s.steadyPeakMinAt = c, i
		}
		if float64(c) > 2*s.steadyAvgMinute {
			s.lastOver2x = i
		}
	}
	return s
}

// clock formats a virtual offset as h:mm.
func hhmm(minutes int) string { return fmt.Sprintf("%d:%02d", minutes/60, minutes%60) }

func benchFleet(ctx context.Context, e *env, r *report) error {
	poll := e.s.fleetPoll
	if poll <= 0 {
		poll = fleetPollDefault
	}
	res, err := simulateFleet(ctx, e, e.s.fleet, e.s.fleetHours, e.s.fleetBatch, poll)
	if err != nil {
		return err
	}
	st := summarise(res.perSecond)
	e.log.Info("fleet simulated", "sts_calls", res.total, "took", res.took.Round(time.Second).String(),
		"peak_second", st.peakSecond, "steady_peak_minute", st.steadyPeakMinute, "steady_avg_minute", fmt.Sprintf("%.1f", st.steadyAvgMinute))

	// The plot's scale: the highest minute after the cold start's first one, which is drawn cut.
	yMax := max(st.firstWavePeak, int64(2*st.steadyAvgMinute+1))
	for _, c := range st.perMinute[1:] {
		yMax = max(yMax, c)
	}
	img, err := histogramPNG(st.perMinute, st.steadyAvgMinute, yMax, 60)
	if err != nil {
		return err
	}
	name := e.s.date + "-fleet.png"
	r.files[name] = img

	pol := defaultRefresh()
	r.h2(fleetTitle(e.s.fleet))
	r.p("%s real `creds.Manager`s (default settings: %s; "+
		"token poll every %s, see below) all start at the same virtual instant and run for %d virtual hours on "+
		"fake clocks against `virtualSTS` (%s real STS sessions cannot run here; it answers like STS in "+
		"virtual time and never fails). Managers share nothing but STS, so they run in batches of %d on one "+
		"virtual clock each, all starting at the same instant, and the per-second counts add up to exactly "+
		"those of %s Managers running together; batches keep the number of inotify instances (%s per user here) "+
		"and timers per clock bounded. %s Simulated in %s of wall time.",
		thousands(e.s.fleet), pol.describe(), human(poll), e.s.fleetHours, thousands(e.s.fleet), e.s.fleetBatch,
		thousands(e.s.fleet), inotifyInstances(), fleetPollWhy(e.s.fleet, e.s.fleetHours, poll), res.took.Round(time.Second))
	r.p("![STS calls per minute](%s)", name)
	r.p("STS calls per virtual minute over %d h (x axis: hours). Green: the steady average per minute "+
		"(second half of the span); orange: twice that. The first minute (the cold start, %d calls) is cut at the "+
		"top of the scale and drawn red.", e.s.fleetHours, st.perMinute[0])
	settled := "never above it"
	if st.lastOver2x >= 0 {
		settled = "until " + hhmm(st.lastOver2x+1)
	}
	r.table([]string{"", "value"}, [][]string{
		{"STS calls in total", fmt.Sprint(res.total)},
		{"average per second over the whole span", fmt.Sprintf("%.2f", st.avgPerSecond)},
		{"peak second: the cold start", fmt.Sprintf("%d at %ds (%.0fx the average)", st.peakSecond, st.peakSecondAt, float64(st.peakSecond)/st.avgPerSecond)},
		{"first refresh wave: peak minute", fmt.Sprintf("%d at %s (%.1fx the steady average minute)",
			st.firstWavePeak, hhmm(st.firstWaveAt), float64(st.firstWavePeak)/st.steadyAvgMinute)},
		{"minutes above 2x the steady average", settled},
		{"steady half: average per second / per minute", fmt.Sprintf("%.2f / %.1f", st.steadyAvgSecond, st.steadyAvgMinute)},
		{"steady half: peak minute", fmt.Sprintf("%d at %s (%.2fx average)", st.steadyPeakMinute, hhmm(st.steadyPeakMinAt),
			float64(st.steadyPeakMinute)/st.steadyAvgMinute)},
		{"steady half: peak second", fmt.Sprintf("%d at %s (%.1fx average)", st.steadyPeakSecond,
			(time.Duration(st.steadyPeakSecAt) * time.Second).String(), float64(st.steadyPeakSecond)/st.steadyAvgSecond)},
	})
	r.checks("6. Fleet", [][]string{
		{fmt.Sprintf("peak STS calls <= 2x average, per second, cold start included: %d vs %.1f", st.peakSecond, st.avgPerSecond),
			verdict(float64(st.peakSecond) <= 2*st.avgPerSecond)},
		{fmt.Sprintf("same per minute, after the cold start's minute: first wave %.1fx, above 2x %s", float64(st.firstWavePeak)/st.steadyAvgMinute, settled),
			verdict(st.lastOver2x <= 0)},
		{fmt.Sprintf("same per minute, steady half: %.2fx", float64(st.steadyPeakMinute)/st.steadyAvgMinute),
			verdict(float64(st.steadyPeakMinute) <= 2*st.steadyAvgMinute)},
		{fmt.Sprintf("same per second, steady half: %.1fx", float64(st.steadyPeakSecond)/st.steadyAvgSecond),
			verdict(float64(st.steadyPeakSecond) <= 2*st.steadyAvgSecond)},
	})
	lo, hi := pol.spacing()
	r.p("Reading it: all %s sidecars need their first credentials at the instant they start, so the cold start "+
		"is one burst of %d calls whatever the refresh jitter does (creds has no start-up jitter: a random delay "+
		"of a few seconds before the first call, or serving the first fetch to waiting clients only, would be the "+
		"place to spread it). Refreshes then come every %s–%s, each with its own jitter of up to %s, so "+
		"the sidecars' phases spread like a random walk and the waves fade over the first hours. Per second, "+
		"%.1f calls on average is few enough that random timing alone gives single seconds far above 2x "+
		"(Poisson noise), so the per-minute figures are the meaningful ones for load on STS.",
		thousands(e.s.fleet), st.peakSecond, human(lo), human(hi), human(pol.window-pol.minWindow()), st.steadyAvgSecond)
	return nil
}

// fleetTitle is the fleet section's heading, for n sidecars.
func fleetTitle(n int) string {
	return fmt.Sprintf("6. Fleet simulation: %s sidecars started at once", thousands(n))
}

// fleetPollWhy says why the simulated sidecars poll their token at poll rather than at the
// sidecar's default, with the number of file reads the default would cost.
func fleetPollWhy(n, hours int, poll time.Duration) string {
	if poll == creds.DefaultPollInterval {
		return ""
	}
	reads := float64(n) * float64(time.Duration(hours)*time.Hour) / float64(creds.DefaultPollInterval)
	return fmt.Sprintf("The poll interval is %s instead of the default %s because a poll that finds the same "+
		"token wakes nothing, so it cannot cause an STS call, and %s file reads would dominate the run.",
		human(poll), human(creds.DefaultPollInterval), millions(reads))
}

// inotifyInstances is the kernel's limit of inotify instances per user, as this machine has it.
func inotifyInstances() string {
	b, err := os.ReadFile("/proc/sys/fs/inotify/max_user_instances")
	if err != nil {
		return "a kernel limit"
	}
	return strings.TrimSpace(string(b))
}
