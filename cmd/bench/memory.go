package main

import (
	"context"
	"fmt"
	"time"

	"github.com/credsidecar/credsidecar/internal/testkit/proc"
)

// Memory targets (issue 7).
const (
	targetIdleRSS   = 15 << 20
	targetLoadedRSS = 30 << 20
)

// memConns is the load the loaded figure is taken under: the endpoint's highest connection
// count by default.
const memConns = 64

// benchMemory measures the resident memory of fresh sidecar processes: idle once serving, then
// under memConns connections.
func benchMemory(ctx context.Context, e *env, r *report) error {
	const conns = memConns
	const settle = 2 * time.Second
	var idle, loaded, peak []float64
	var failed uint64
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
		failed += res.Errors
		if res.Errors > 0 {
			e.log.Warn("failed requests", "run", i+1, "errors", res.Errors, "first", res.ErrorSamples)
		}
		loaded = append(loaded, float64(hi))
		peak = append(peak, float64(after.PeakRSS))
		e.log.Info("memory run", "run", i+1, "idle_mib", proc.MiB(m.RSS), "loaded_max_mib", proc.MiB(hi),
			"peak_mib", proc.MiB(after.PeakRSS), "rps", int(res.RPS()), "errors", res.Errors)
	}
	r.h2("2. Sidecar memory")
	r.p("Resident set size (VmRSS from /proc, what a container memory limit counts) of the built `cmd/sidecar` "+
		"serving credentials from SeaweedFS: idle %s after it first served, then sampled every 50 ms under "+
		"%d keep-alive connections for %s. VmHWM is the process's lifetime peak. Median of %s.",
		settle, conns, e.s.memLoad, count(e.s.memRuns, "fresh process", "fresh processes"))
	rows, summary := memoryTargets(idle, loaded, peak, conns, failed)
	r.table([]string{"", "median", "runs", "target", "result"}, rows)
	for _, row := range summary {
		r.summary = append(r.summary, append([]string{"2. Memory"}, row...))
	}
	if failed > 0 {
		r.p("%d requests failed under load: the loaded figures are not of the load asked for.", failed)
	}
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

// memoryTargets builds the section's table rows and summary rows (target text, verdict) from
// the runs' idle, loaded and peak RSS in bytes. The loaded figures rest on the load: with failed
// requests they are not met.
func memoryTargets(idle, loaded, peak []float64, conns int, failed uint64) (rows, summary [][]string) {
	idleM, loadedM, peakM := int64(median(idle)), int64(median(loaded)), int64(median(peak))
	idleOK := len(idle) > 0 && idleM <= targetIdleRSS
	loadedOK := len(loaded) > 0 && failed == 0 && loadedM <= targetLoadedRSS
	peakOK := len(peak) > 0 && failed == 0 && peakM <= targetLoadedRSS
	under := fmt.Sprintf("RSS under %d connections", conns)
	failedNote := ""
	if failed > 0 {
		failedNote = fmt.Sprintf("; %d failed requests", failed)
	}
	rows = [][]string{
		{"idle RSS", proc.MiB(idleM) + " MiB", mibList(idle), "<= " + wholeMiB(targetIdleRSS), verdict(idleOK)},
		{under + " (max sample)", proc.MiB(loadedM) + " MiB", mibList(loaded), "<= " + wholeMiB(targetLoadedRSS) + failedNote, verdict(loadedOK)},
		{"lifetime peak (VmHWM)", proc.MiB(peakM) + " MiB", mibList(peak), "<= " + wholeMiB(targetLoadedRSS) + failedNote, verdict(peakOK)},
	}
	summary = [][]string{
		{"idle RSS <= " + wholeMiB(targetIdleRSS) + ": " + proc.MiB(idleM) + " MiB", verdict(idleOK)},
		{under + " <= " + wholeMiB(targetLoadedRSS) + ": " + proc.MiB(loadedM) + " MiB (lifetime peak " + proc.MiB(peakM) + " MiB)" + failedNote,
			verdict(loadedOK && peakOK)},
	}
	return rows, summary
}

// wholeMiB writes a target size: 15 MiB.
func wholeMiB(n int64) string { return fmt.Sprintf("%d MiB", n>>20) }
