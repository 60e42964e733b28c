package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/credsidecar/credsidecar/internal/server"
	"github.com/credsidecar/credsidecar/internal/testkit/load"
	"github.com/credsidecar/credsidecar/internal/testkit/proc"
	"github.com/credsidecar/credsidecar/internal/testkit/sidecarproc"
	"github.com/credsidecar/credsidecar/internal/testkit/testbed"
)

// spawnSidecar starts the built sidecar against SeaweedFS (or stsEndpoint) with the projected
// token, without waiting for it.
func (e *env) spawnSidecar(ctx context.Context, stsEndpoint string, args ...string) (*sidecarproc.Process, error) {
	return e.spawnSidecarOn(ctx, cpuPlan{unpinned: "not asked"}, stsEndpoint, args...)
}

// spawnSidecarOn is spawnSidecar, pinned to plan's server CPU when plan is pinned.
func (e *env) spawnSidecarOn(ctx context.Context, plan cpuPlan, stsEndpoint string, args ...string) (*sidecarproc.Process, error) {
	if stsEndpoint == "" {
		stsEndpoint = e.weed.Endpoint()
	}
	return sidecarproc.Start(ctx, sidecarproc.Options{
		Binary: e.sidecarBin, Dir: e.tmp,
		RoleARN: e.weed.RoleARN(), TokenFile: e.proj.Path(), STSEndpoint: stsEndpoint, Region: testbed.Region,
		Args: args, CPUs: plan.server, Env: plan.serverEnv(),
	})
}

// startSidecar is spawnSidecar, then waits until the sidecar serves.
func (e *env) startSidecar(ctx context.Context, stsEndpoint string, args ...string) (*sidecarproc.Process, error) {
	return e.startSidecarOn(ctx, cpuPlan{unpinned: "not asked"}, stsEndpoint, args...)
}

// startSidecarOn is spawnSidecarOn, then waits until the sidecar serves.
func (e *env) startSidecarOn(ctx context.Context, plan cpuPlan, stsEndpoint string, args ...string) (*sidecarproc.Process, error) {
	p, err := e.spawnSidecarOn(ctx, plan, stsEndpoint, args...)
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

// Names of the servers compared in the endpoint section.
const sideSidecar = "sidecar"

// endpointSide is one server's figures at one connection count, one entry per run.
type endpointSide struct {
	rps, p50, p99 []float64
	// busy is the server process's CPU time over the run's wall time (1 is one core).
	busy []float64
	// cpuPerReq is the server's CPU time per answer, in nanoseconds: unlike req/s it hardly
	// depends on what else the machine runs, so it shows a server's cost on a noisy machine too.
	cpuPerReq []float64
	// failed counts failed requests over every run, warm-up included.
	failed uint64
}

// endpointRow is one connection count.
type endpointRow struct {
	conns int
	sides map[string]*endpointSide
	// ratio and ratio2 are sidecar / bare and sidecar / bare-limits, per run.
	ratio, ratio2 []float64
	// loadBusy is the load generator's (this process's) CPU time over wall time, per run.
	loadBusy []float64
}

func (rw endpointRow) failed() uint64 {
	var n uint64
	for _, sd := range rw.sides {
		n += sd.failed
	}
	return n
}

// Endpoint targets (issue 7).
const (
	targetRatio   = 0.9
	targetP99At1  = 250 * time.Microsecond
	p99TargetConn = 1
)

// endpointTargets are the section's target rows. A ratio rests on every answer of both sides
// being right, and a latency on the sidecar's: a run with failed requests is never met, however
// fast it was.
func endpointTargets(rows []endpointRow) [][]string {
	allRatio := len(rows) > 0
	var each []string
	var failed uint64
	for _, rw := range rows {
		ratio := median(rw.ratio)
		allRatio = allRatio && ratio >= targetRatio
		failed += rw.failed()
		each = append(each, fmt.Sprintf("%d: %.2fx", rw.conns, ratio))
	}
	text := fmt.Sprintf("throughput >= %.1fx bare at every connection count (%s)", targetRatio, strings.Join(each, ", "))
	if failed > 0 {
		text += fmt.Sprintf("; %d failed requests", failed)
	}
	out := [][]string{{text, verdict(allRatio && failed == 0)}}
	for _, rw := range rows {
		if rw.conns != p99TargetConn {
			continue
		}
		sc := rw.sides[sideSidecar]
		p99 := time.Duration(median(sc.p99))
		text := fmt.Sprintf("p99 <= %s at %d connection: %s", us(targetP99At1), p99TargetConn, us(p99))
		if sc.failed > 0 {
			text += fmt.Sprintf("; %d failed requests", sc.failed)
		}
		out = append(out, []string{text, verdict(p99 <= targetP99At1 && sc.failed == 0)})
	}
	return out
}

// busyMeter measures the CPU time a process used during a load run.
type busyMeter struct {
	pid   int
	cpu   time.Duration
	began time.Time
}

func startBusy(pid int) (busyMeter, error) {
	cpu, err := proc.ReadCPUTime(pid)
	return busyMeter{pid: pid, cpu: cpu, began: time.Now()}, err
}

// stop returns the CPU time used since start and its share of the wall time (1 is one core).
func (b busyMeter) stop() (time.Duration, float64, error) {
	cpu, err := proc.ReadCPUTime(b.pid)
	if err != nil {
		return 0, 0, err
	}
	used := cpu - b.cpu
	return used, float64(used) / float64(time.Since(b.began)), nil
}

// answers counts every answer of a run, warm-up included, as the CPU time does.
func answers(res *load.Result) uint64 {
	var n uint64
	for _, c := range res.Status {
		n += c
	}
	return n
}

// benchEndpoint measures GET /v1/credentials on the built sidecar against the bare net/http
// limit, both in their own processes, under the same load generator in this one.
func benchEndpoint(ctx context.Context, e *env, r *report) error {
	plan := planCPUs(e.s.pin)
	e.log.Info("endpoint cpus", "pinned", plan.pinned(), "servers", plan.server, "load", plan.load, "unpinned", plan.unpinned)
	sc, err := e.startSidecarOn(ctx, plan, "")
	if err != nil {
		return err
	}
	defer func() { _ = sc.Stop(10 * time.Second) }()
	body, err := credentialsAnswer(ctx, sc)
	if err != nil {
		return err
	}
	bare, err := startBare(ctx, childBare, e.tmp, body, sc.Auth, plan)
	if err != nil {
		return err
	}
	defer func() { _ = bare.stop() }()
	limits, err := startBare(ctx, childBareLimits, e.tmp, body, sc.Auth, plan)
	if err != nil {
		return err
	}
	defer func() { _ = limits.stop() }()
	if plan.pinned() {
		restore, err := pinSelf(ctx, plan.load)
		if err != nil {
			return err
		}
		defer func() {
			if err := restore(); err != nil {
				e.log.Warn("unpin the bench process", "error", err.Error())
			}
		}()
	}
	servers := []struct {
		name, addr string
		pid        int
	}{{sideSidecar, sc.Addr, sc.Pid()}, {childBare, bare.addr, bare.pid()}, {childBareLimits, limits.addr, limits.pid()}}

	var rows []endpointRow
	for _, conns := range e.s.conns {
		rw := endpointRow{conns: conns, sides: map[string]*endpointSide{}}
		for _, sv := range servers {
			rw.sides[sv.name] = &endpointSide{}
		}
		for i := range e.s.runs {
			// Each run starts with the next server, so none is always first or last.
			rps := map[string]float64{}
			for k := range servers {
				sv := servers[(i+k)%len(servers)]
				srvBusy, err := startBusy(sv.pid)
				if err != nil {
					return err
				}
				loadBusy, err := startBusy(os.Getpid())
				if err != nil {
					return err
				}
				res, err := loadAgainst(ctx, sv.addr, sc.Auth, body, conns, e.s.warmup, e.s.duration)
				if err != nil {
					return err
				}
				used, busy, err := srvBusy.stop()
				if err != nil {
					return err
				}
				_, lbusy, err := loadBusy.stop()
				if err != nil {
					return err
				}
				if res.Errors > 0 {
					e.log.Warn("failed requests", "server", sv.name, "conns", conns, "errors", res.Errors, "first", res.ErrorSamples)
				}
				sd := rw.sides[sv.name]
				sd.failed += res.Errors
				sd.rps = append(sd.rps, res.RPS())
				sd.p50 = append(sd.p50, float64(res.Latency.Quantile(0.5)))
				sd.p99 = append(sd.p99, float64(res.Latency.Quantile(0.99)))
				sd.busy = append(sd.busy, busy)
				if n := answers(res); n > 0 {
					sd.cpuPerReq = append(sd.cpuPerReq, float64(used)/float64(n))
				}
				rw.loadBusy = append(rw.loadBusy, lbusy)
				rps[sv.name] = res.RPS()
			}
			rw.ratio = append(rw.ratio, rps[sideSidecar]/rps[childBare])
			rw.ratio2 = append(rw.ratio2, rps[sideSidecar]/rps[childBareLimits])
			e.log.Info("endpoint run", "conns", conns, "run", i+1, "sidecar_rps", int(rps[sideSidecar]),
				"bare_rps", int(rps[childBare]), "bare_limits_rps", int(rps[childBareLimits]),
				"ratio", fmt.Sprintf("%.3f", rps[sideSidecar]/rps[childBare]))
		}
		rows = append(rows, rw)
	}

	r.h2("1. Credentials endpoint throughput and latency")
	r.p("The built `cmd/sidecar` (serving credentials it got from SeaweedFS) against the limit of this stack: "+
		"a bare `net/http` server (no ServeMux, middleware, metrics or timeouts) in a re-executed copy of the bench binary, "+
		"answering the sidecar's exact bytes after the same Authorization check. The load generator (`internal/testkit/load`: "+
		"closed loop, keep-alive, one request in flight per connection, like wrk) runs in the bench process. %s "+
		"%s of %s (after %s warm-up) per server and connection count (%s), rotating which server goes first; "+
		"every answer was checked (200, exact body), and a failed one fails the target.",
		plan.describe(), count(e.s.runs, "run", "runs"), e.s.duration, e.s.warmup, joinInts(e.s.conns))
	var tab, tab2 [][]string
	for _, rw := range rows {
		ratio := median(rw.ratio)
		lo, hi := minMax(rw.ratio)
		sc, bare, lim := rw.sides[sideSidecar], rw.sides[childBare], rw.sides[childBareLimits]
		tab = append(tab, []string{
			fmt.Sprint(rw.conns),
			fmt.Sprintf("%.0f", median(sc.rps)), fmt.Sprintf("%.0f", median(bare.rps)),
			fmt.Sprintf("%.3f (%.3f–%.3f)", ratio, lo, hi),
			us(time.Duration(median(sc.p50))), us(time.Duration(median(sc.p99))),
			us(time.Duration(median(bare.p50))), us(time.Duration(median(bare.p99))),
			fmt.Sprintf("%d / %d / %d", sc.failed, bare.failed, lim.failed),
		})
		lo2, hi2 := minMax(rw.ratio2)
		tab2 = append(tab2, []string{fmt.Sprint(rw.conns), fmt.Sprintf("%.0f", median(lim.rps)),
			fmt.Sprintf("%.3f", median(lim.rps)/median(bare.rps)),
			fmt.Sprintf("%.3f (%.3f–%.3f)", median(rw.ratio2), lo2, hi2),
			us(time.Duration(median(lim.p50))), us(time.Duration(median(lim.p99))),
			fmt.Sprintf("%.2f / %.2f / %.2f / %.2f", median(sc.busy), median(bare.busy), median(lim.busy), median(rw.loadBusy)),
			fmt.Sprintf("%.1f / %.1f / %.1f", median(sc.cpuPerReq)/1e3, median(bare.cpuPerReq)/1e3, median(lim.cpuPerReq)/1e3)})
	}
	r.table([]string{"conns", "sidecar req/s", "bare req/s", "sidecar / bare (min–max)", "sidecar p50", "sidecar p99",
		"bare p50", "bare p99", "failed (sidecar / bare / limits)"}, tab)
	r.p("Where the gap comes from: the same bare handler served by `server.NewHTTPServer` through `server.Serve` "+
		"(the sidecar's http.Server served the sidecar's way: read-header, read, write and idle timeouts enforced "+
		"by each listener's deadline sweeper, %d KiB header limit), measured in the same rotation. What remains "+
		"between it and the sidecar is the sidecar's handler: routing, the loopback check, the metrics and "+
		"recovery middleware, the auth check, the credentials lookup. CPU is each process's CPU time over the run's wall time "+
		"(1.00 is one core busy): a server below 1 while pinned was waiting for the load generator or for "+
		"other processes on its core. CPU per request is a server's CPU time over its answers (warm-up included): "+
		"it hardly depends on what else runs, so bare's over the sidecar's is the ratio a saturated core would give.",
		server.MaxHeaderBytes>>10)
	r.table([]string{"conns", "bare + limits req/s", "bare + limits / bare", "sidecar / bare + limits (min–max)",
		"bare + limits p50", "bare + limits p99", "CPU (sidecar / bare / limits / generator)",
		"CPU µs per request (sidecar / bare / limits)"}, tab2)
	r.checks("1. Endpoint", endpointTargets(rows))
	return nil
}

// joinInts writes 1, 16, 64.
func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ", ")
}
