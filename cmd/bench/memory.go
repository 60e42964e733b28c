package main

import (
	"context"
	"fmt"
	"time"

	"github.com/credsidecar/credsidecar/internal/testkit/proc"
)

// benchMemory measures the resident memory of fresh sidecar processes: idle once serving, then
// under 64 connections.
func benchMemory(ctx context.Context, e *env, r *report) error {
	const conns = 64
	const settle = 2 * time.Second
	var idle, loaded, peak []float64
	for i := range e.s.memRuns {
		sc, err := e.startSidecar(ctx, "")
		if err != nil {
			return err
		}
		body, err := credentialsAnswer(ctx, sc)
		if err != nil {
			_ = sc.Stop(10 * time.Second)
			return err
		}
		// What an idle sidecar holds once start-up garbage is collected: Go returns it to the OS
		// within minutes, and a pod spends almost all its life idle.
		time.Sleep(settle)
		m, err := proc.ReadMemory(sc.Pid())
		if err != nil {
			_ = sc.Stop(10 * time.Second)
			return err
		}
		idle = append(idle, float64(m.RSS))

		stop := make(chan struct{})
		maxRSS := make(chan int64, 1)
		go func() {
			var hi int64
			t := time.NewTicker(50 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					maxRSS <- hi
					return
				case <-t.C:
					if m, err := proc.ReadMemory(sc.Pid()); err == nil {
						hi = max(hi, m.RSS)
					}
				}
			}
		}()
		res, err := loadAgainst(ctx, sc.Addr, sc.Auth, body, conns, 0, e.s.memLoad)
		close(stop)
		hi := <-maxRSS
		after, merr := proc.ReadMemory(sc.Pid())
		if serr := sc.Stop(10 * time.Second); serr != nil {
			e.log.Warn("sidecar stop", "error", serr.Error())
		}
		if err != nil {
			return err
		}
		if merr != nil {
			return merr
		}
		loaded = append(loaded, float64(hi))
		peak = append(peak, float64(after.PeakRSS))
		e.log.Info("memory run", "run", i+1, "idle_mib", proc.MiB(m.RSS), "loaded_max_mib", proc.MiB(hi),
			"peak_mib", proc.MiB(after.PeakRSS), "rps", int(res.RPS()), "errors", res.Errors)
	}
	idleM, loadedM, peakM := int64(median(idle)), int64(median(loaded)), int64(median(peak))
	r.h2("2. Sidecar memory")
	r.p("Resident set size (VmRSS from /proc, what a container memory limit counts) of the built `cmd/sidecar` "+
		"serving credentials from SeaweedFS: idle %s after it first served, then sampled every 50 ms under "+
		"%d keep-alive connections for %s. VmHWM is the process's lifetime peak. Median of %d fresh processes.",
		settle, conns, e.s.memLoad, e.s.memRuns)
	r.table([]string{"", "median", "runs", "target", "result"}, [][]string{
		{"idle RSS", proc.MiB(idleM) + " MiB", mibList(idle), "<= 15 MiB", verdict(idleM <= 15<<20)},
		{"RSS under 64 connections (max sample)", proc.MiB(loadedM) + " MiB", mibList(loaded), "<= 30 MiB", verdict(loadedM <= 30<<20)},
		{"lifetime peak (VmHWM)", proc.MiB(peakM) + " MiB", mibList(peak), "<= 30 MiB", verdict(peakM <= 30<<20)},
	})
	r.summary = append(r.summary,
		[]string{"2. Memory", "idle RSS <= 15 MiB: " + proc.MiB(idleM) + " MiB", verdict(idleM <= 15<<20)},
		[]string{"2. Memory", "RSS under 64 connections <= 30 MiB: " + proc.MiB(loadedM) + " MiB (lifetime peak " + proc.MiB(peakM) + " MiB)",
			verdict(loadedM <= 30<<20 && peakM <= 30<<20)})
	return nil
}

func mibList(xs []float64) string {
	s := ""
	for i, x := range xs {
		if i > 0 {
			s += ", "
		}
		s += proc.MiB(int64(x))
	}
	return fmt.Sprint(s)
}
