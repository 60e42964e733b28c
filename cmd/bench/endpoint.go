package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"time"

	"github.com/credsidecar/credsidecar/internal/testkit/load"
	"github.com/credsidecar/credsidecar/internal/testkit/sidecarproc"
	"github.com/credsidecar/credsidecar/internal/testkit/testbed"
)

// spawnSidecar starts the built sidecar against SeaweedFS (or stsEndpoint) with the projected
// token, without waiting for it.
func (e *env) spawnSidecar(ctx context.Context, stsEndpoint string, args ...string) (*sidecarproc.Process, error) {
	if stsEndpoint == "" {
		stsEndpoint = e.weed.Endpoint()
	}
	return sidecarproc.Start(ctx, sidecarproc.Options{
		Binary: e.sidecarBin, Dir: e.tmp,
		RoleARN: e.weed.RoleARN(), TokenFile: e.proj.Path(), STSEndpoint: stsEndpoint, Region: testbed.Region,
		Args: args,
	})
}

// startSidecar is spawnSidecar, then waits until the sidecar serves.
func (e *env) startSidecar(ctx context.Context, stsEndpoint string, args ...string) (*sidecarproc.Process, error) {
	p, err := e.spawnSidecar(ctx, stsEndpoint, args...)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := p.WaitServing(wctx); err != nil {
		_ = p.Stop(5 * time.Second)
		return nil, err
	}
	return p, nil
}

// credentialsAnswer fetches the sidecar's answer once.
func credentialsAnswer(ctx context.Context, p *sidecarproc.Process) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", p.Auth)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("credentials endpoint answered %d: %s", resp.StatusCode, body)
	}
	return body, nil
}

// loadAgainst runs one load run and refuses any answer other than 200 with body.
func loadAgainst(ctx context.Context, addr, auth string, body []byte, conns int, warmup, d time.Duration) (*load.Result, error) {
	return load.Run(ctx, load.Target{Addr: addr, Path: "/v1/credentials",
		Header: [][2]string{{"Authorization", auth}, {"Accept", "application/json"}}}, load.Options{
		Conns: conns, Warmup: warmup, Duration: d,
		Check: func(status int, got []byte) error {
			if status != http.StatusOK || !bytes.Equal(got, body) {
				return fmt.Errorf("status %d, %d bytes", status, len(got))
			}
			return nil
		},
	})
}

// benchEndpoint measures GET /v1/credentials on the built sidecar against the bare net/http
// limit, both in their own processes, under the same load generator in this one.
func benchEndpoint(ctx context.Context, e *env, r *report) error {
	sc, err := e.startSidecar(ctx, "")
	if err != nil {
		return err
	}
	defer func() { _ = sc.Stop(10 * time.Second) }()
	body, err := credentialsAnswer(ctx, sc)
	if err != nil {
		return err
	}
	bare, err := startBare(ctx, childBare, e.tmp, body, sc.Auth)
	if err != nil {
		return err
	}
	defer func() { _ = bare.stop() }()
	limits, err := startBare(ctx, childBareLimits, e.tmp, body, sc.Auth)
	if err != nil {
		return err
	}
	defer func() { _ = limits.stop() }()
	servers := []struct{ name, addr string }{{"sidecar", sc.Addr}, {childBare, bare.addr}, {childBareLimits, limits.addr}}

	type side struct {
		rps, p50, p99 []float64
		errors        uint64
	}
	type row struct {
		conns         int
		sides         map[string]*side
		ratio, ratio2 []float64 // sidecar / bare and sidecar / bare-limits, per run
	}
	var rows []row
	for _, conns := range e.s.conns {
		rw := row{conns: conns, sides: map[string]*side{}}
		for _, sv := range servers {
			rw.sides[sv.name] = &side{}
		}
		for i := range e.s.runs {
			// Each run starts with the next server, so none is always first or last.
			rps := map[string]float64{}
			for k := range servers {
				sv := servers[(i+k)%len(servers)]
				res, err := loadAgainst(ctx, sv.addr, sc.Auth, body, conns, e.s.warmup, e.s.duration)
				if err != nil {
					return err
				}
				if res.Errors > 0 {
					e.log.Warn("failed requests", "server", sv.name, "conns", conns, "errors", res.Errors, "first", res.ErrorSamples)
				}
				sd := rw.sides[sv.name]
				sd.errors += res.Errors
				sd.rps = append(sd.rps, res.RPS())
				sd.p50 = append(sd.p50, float64(res.Latency.Quantile(0.5)))
				sd.p99 = append(sd.p99, float64(res.Latency.Quantile(0.99)))
				rps[sv.name] = res.RPS()
			}
			rw.ratio = append(rw.ratio, rps["sidecar"]/rps[childBare])
			rw.ratio2 = append(rw.ratio2, rps["sidecar"]/rps[childBareLimits])
			e.log.Info("endpoint run", "conns", conns, "run", i+1, "sidecar_rps", int(rps["sidecar"]),
				"bare_rps", int(rps[childBare]), "bare_limits_rps", int(rps[childBareLimits]),
				"ratio", fmt.Sprintf("%.3f", rps["sidecar"]/rps[childBare]))
		}
		rows = append(rows, rw)
	}

	r.h2("1. Credentials endpoint throughput and latency")
	r.p("The built `cmd/sidecar` (serving credentials it got from SeaweedFS) against the limit of this stack: "+
		"a bare `net/http` server (no ServeMux, middleware, metrics or timeouts) in a re-executed copy of the bench binary, "+
		"answering the sidecar's exact bytes after the same Authorization check. The load generator (`internal/testkit/load`: "+
		"closed loop, keep-alive, one request in flight per connection, like wrk) runs in the bench process, so "+
		"all processes share the %d cores. %d runs of %s (after %s warm-up) per server and connection count, "+
		"rotating which server goes first; every answer was checked (200, exact body).",
		runtime.NumCPU(), e.s.runs, e.s.duration, e.s.warmup)
	var tab, tab2 [][]string
	allRatio, p99At1 := true, time.Duration(-1)
	for _, rw := range rows {
		ratio := median(rw.ratio)
		lo, hi := minMax(rw.ratio)
		allRatio = allRatio && ratio >= 0.9
		sc, bare, lim := rw.sides["sidecar"], rw.sides[childBare], rw.sides[childBareLimits]
		sp99 := time.Duration(median(sc.p99))
		if rw.conns == 1 {
			p99At1 = sp99
		}
		tab = append(tab, []string{
			fmt.Sprint(rw.conns),
			fmt.Sprintf("%.0f", median(sc.rps)), fmt.Sprintf("%.0f", median(bare.rps)),
			fmt.Sprintf("%.3f (%.3f–%.3f)", ratio, lo, hi),
			us(time.Duration(median(sc.p50))), us(sp99),
			us(time.Duration(median(bare.p50))), us(time.Duration(median(bare.p99))),
			fmt.Sprintf("%d / %d / %d", sc.errors, bare.errors, lim.errors),
		})
		lo2, hi2 := minMax(rw.ratio2)
		tab2 = append(tab2, []string{fmt.Sprint(rw.conns), fmt.Sprintf("%.0f", median(lim.rps)),
			fmt.Sprintf("%.3f", median(lim.rps)/median(bare.rps)),
			fmt.Sprintf("%.3f (%.3f–%.3f)", median(rw.ratio2), lo2, hi2),
			us(time.Duration(median(lim.p50))), us(time.Duration(median(lim.p99)))})
	}
	r.table([]string{"conns", "sidecar req/s", "bare req/s", "sidecar / bare (min–max)", "sidecar p50", "sidecar p99",
		"bare p50", "bare p99", "failed (sidecar / bare / limits)"}, tab)
	r.p("Where the gap comes from: the same bare handler served by `server.NewHTTPServer` (the sidecar's " +
		"http.Server: read-header, read, write and idle timeouts, 16 KiB header limit), measured in the same " +
		"rotation. What remains between it and the sidecar is the sidecar's handler: ServeMux, the metrics and " +
		"recovery middleware, the credentials lookup.")
	r.table([]string{"conns", "bare + limits req/s", "bare + limits / bare", "sidecar / bare + limits (min–max)",
		"bare + limits p50", "bare + limits p99"}, tab2)
	var worst []string
	for _, rw := range rows {
		worst = append(worst, fmt.Sprintf("%d: %.2fx", rw.conns, median(rw.ratio)))
	}
	rowsT := [][]string{{"throughput >= 0.9x bare at every connection count (" + strings.Join(worst, ", ") + ")", verdict(allRatio)}}
	if p99At1 >= 0 {
		rowsT = append(rowsT, []string{"p99 <= 250 µs at 1 connection: " + us(p99At1), verdict(p99At1 <= 250*time.Microsecond)})
	}
	r.checks("1. Endpoint", rowsT)
	return nil
}
