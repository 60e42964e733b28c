package main

import (
	"bytes"
	"context"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/credsidecar/credsidecar/internal/clock"
	"github.com/credsidecar/credsidecar/internal/creds"
)

func TestMedianAndQuantile(t *testing.T) {
	tests := []struct {
		name string
		in   []float64
		want float64
	}{
		{name: "none", in: nil, want: 0},
		{name: "odd", in: []float64{3, 1, 2}, want: 2},
		{name: "even", in: []float64{4, 1, 3, 2}, want: 2.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := median(tt.in); got != tt.want {
				t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
	ds := []time.Duration{5, 1, 4, 2, 3}
	if q := quantileDuration(ds, 0); q != 1 {
		t.Errorf("quantile 0 = %v, want the minimum", q)
	}
	if q := quantileDuration(ds, 1); q != 5 {
		t.Errorf("quantile 1 = %v, want the maximum", q)
	}
	if q := quantileDuration(ds, 0.5); q != 3 {
		t.Errorf("quantile 0.5 = %v, want 3", q)
	}
	if ds[0] != 5 {
		t.Error("quantileDuration sorted its input in place")
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr bool
	}{
		{name: "defaults", args: nil},
		{name: "some sections", args: []string{"-sections", "fleet,micro", "-fleet", "100"}},
		{name: "unknown section", args: []string{"-sections", "speed"}, wantErr: true},
		{name: "bad conns", args: []string{"-conns", "1,0"}, wantErr: true},
		{name: "bad size", args: []string{"-upload-size", "1TB"}, wantErr: true},
		{name: "zero runs", args: []string{"-runs", "0"}, wantErr: true},
		{name: "stray argument", args: []string{"now"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := parseFlags(tt.args, io.Discard)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseFlags(%q) error = %v, want error %v", tt.args, err, tt.wantErr)
			}
			if err == nil && (len(s.sections) == 0 || len(s.conns) == 0 || s.uploadSize <= 0) {
				t.Errorf("parseFlags(%q) = %+v: sections, conns or size missing", tt.args, s)
			}
		})
	}
	s, _ := parseFlags(nil, io.Discard)
	if s.uploadSize != 1<<30 || len(s.conns) != 3 || s.fleet != 10000 || s.fleetHours != 24 {
		t.Errorf("defaults: size %d conns %v fleet %d hours %d; want 1 GiB, 1,16,64, 10000, 24", s.uploadSize, s.conns, s.fleet, s.fleetHours)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"1GiB": 1 << 30, "64MiB": 64 << 20, "3KiB": 3 << 10, "17": 17} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "GiB", "-1MiB", "1.5GiB", "1GB"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) succeeded", in)
		}
	}
}

// The bare server must be what the endpoint comparison says it is: the same bytes after the
// same auth check.
func TestBareHandler(t *testing.T) {
	body := []byte(`{"AccessKeyId":"ASIA","SecretAccessKey":"s","Token":"t","Expiration":"2026-01-01T00:00:00Z"}`)
	h := bareHandler(body, []byte("secret-token"))
	tests := []struct {
		name   string
		auth   []string
		status int
	}{
		{name: "right token", auth: []string{"secret-token"}, status: 200},
		{name: "no token", status: 401},
		{name: "wrong token", auth: []string{"secret-tokeN"}, status: 401},
		{name: "two tokens", auth: []string{"secret-token", "secret-token"}, status: 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/v1/credentials", nil)
			req.Header["Authorization"] = tt.auth
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d", rec.Code, tt.status)
			}
			if tt.status == 200 && (!bytes.Equal(rec.Body.Bytes(), body) || rec.Header().Get("Content-Type") != "application/json" ||
				rec.Header().Get("Cache-Control") != "no-store") {
				t.Errorf("answer %q with headers %v, want the body as JSON, no-store", rec.Body.Bytes(), rec.Header())
			}
		})
	}
}

func TestVirtualSTS(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := clock.NewFake(t0)
	v := newVirtualSTS(t0, time.Hour)
	api := v.client(clk)
	in := &sts.AssumeRoleWithWebIdentityInput{RoleSessionName: aws.String("s"), DurationSeconds: aws.Int32(3600)}
	for _, at := range []time.Duration{0, 0, 90 * time.Second, 2 * time.Hour} {
		clk.Set(t0.Add(at))
		out, err := api.AssumeRoleWithWebIdentity(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		if exp := *out.Credentials.Expiration; !exp.Equal(clk.Now().Add(time.Hour)) {
			t.Errorf("expiry %v, want an hour after %v", exp, clk.Now())
		}
	}
	counts := v.perSecond()
	if counts[0] != 2 || counts[90] != 1 || v.total.Load() != 4 || v.late.Load() != 1 {
		t.Errorf("counts[0]=%d counts[90]=%d total=%d late=%d; want 2, 1, 4, 1", counts[0], counts[90], v.total.Load(), v.late.Load())
	}
}

func TestSummarise(t *testing.T) {
	// Four hours: 100 calls at second 0, then one call every 10 s, with a burst of 30 calls in
	// minute 30.
	perSecond := make([]int64, 4*3600)
	perSecond[0] = 100
	for i := 10; i < len(perSecond); i += 10 {
		perSecond[i] = 1
	}
	perSecond[30*60+5] += 30
	s := summarise(perSecond)
	if s.peakSecond != 100 || s.peakSecondAt != 0 {
		t.Errorf("peak second %d at %d, want 100 at 0", s.peakSecond, s.peakSecondAt)
	}
	if s.steadyAvgMinute != 6 || s.steadyPeakMinute != 6 {
		t.Errorf("steady average %v, peak %d per minute; want 6 and 6", s.steadyAvgMinute, s.steadyPeakMinute)
	}
	if s.firstWavePeak != 36 || s.firstWaveAt != 30 {
		t.Errorf("first wave %d at minute %d, want 36 at 30", s.firstWavePeak, s.firstWaveAt)
	}
	if s.lastOver2x != 30 {
		t.Errorf("last minute above twice the average = %d, want 30", s.lastOver2x)
	}
}

func TestHistogramPNG(t *testing.T) {
	counts := []int64{500, 10, 40, 20, 0, 30}
	data, err := histogramPNG(counts, 10, 40, 3)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if w := img.Bounds().Dx(); w != pngMarginLeft+len(counts)+pngMarginRight {
		t.Errorf("width %d, want one pixel per bucket plus margins", w)
	}
	bottom := pngMarginTop + pngPlotHeight - 1
	top := pngMarginTop
	// Bucket 2 reaches the top of the scale; bucket 4 is empty; bucket 0 is cut and red.
	if r, g, b, _ := img.At(pngMarginLeft+2, top).RGBA(); r>>8 != 66 || g>>8 != 110 || b>>8 != 180 {
		t.Errorf("bucket 2 at the top: colour %d,%d,%d, want the bar colour", r>>8, g>>8, b>>8)
	}
	if r, g, b, _ := img.At(pngMarginLeft+4, bottom-5).RGBA(); r>>8 != 255 || g>>8 != 255 || b>>8 != 255 {
		t.Errorf("empty bucket 4: colour %d,%d,%d, want background", r>>8, g>>8, b>>8)
	}
	if r, _, _, _ := img.At(pngMarginLeft, top).RGBA(); r>>8 != 200 {
		t.Errorf("bucket 0 above the scale: red %d, want the clipped colour", r>>8)
	}
}

func TestParseCPUList(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []int
		wantErr bool
	}{
		{name: "one", in: "0", want: []int{0}},
		{name: "range", in: "0-1", want: []int{0, 1}},
		{name: "mixed", in: "0-2,8,10-11", want: []int{0, 1, 2, 8, 10, 11}},
		{name: "empty", in: "", wantErr: true},
		{name: "backwards range", in: "3-1", wantErr: true},
		{name: "not a number", in: "0,x", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseCPUList(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseCPUList(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("parseCPUList(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestCPUPlan(t *testing.T) {
	off := planCPUs(false)
	if off.pinned() || off.serverEnv() != nil || !strings.Contains(off.describe(), "-pin=false") {
		t.Errorf("planCPUs(false) = %+v (%q), want unpinned, saying why", off, off.describe())
	}
	on := cpuPlan{server: "0", load: "1"}
	if !on.pinned() || !slices.Equal(on.serverEnv(), []string{"GOMAXPROCS=1"}) {
		t.Errorf("pinned plan: env %v, want GOMAXPROCS=1", on.serverEnv())
	}
	if d := on.describe(); !strings.Contains(d, "CPU 0") || !strings.Contains(d, "CPU 1") {
		t.Errorf("pinned plan says %q, want both CPUs named", d)
	}
}

// endpointRowFor is a row of runs with the given ratios, the sidecar's p99s and failures.
func endpointRowFor(conns int, ratios []float64, p99 time.Duration, failed map[string]uint64) endpointRow {
	rw := endpointRow{conns: conns, ratio: ratios, sides: map[string]*endpointSide{}}
	for _, name := range []string{sideSidecar, childBare, childBareLimits} {
		rw.sides[name] = &endpointSide{p99: []float64{float64(p99)}, failed: failed[name]}
	}
	return rw
}

func TestEndpointTargets(t *testing.T) {
	fast := 100 * time.Microsecond
	tests := []struct {
		name       string
		rows       []endpointRow
		want       []string // verdicts, in order
		wantInText []string
	}{
		{name: "met", rows: []endpointRow{
			endpointRowFor(1, []float64{0.95, 0.91, 0.99}, fast, nil),
			endpointRowFor(16, []float64{0.92}, fast, nil),
		}, want: []string{"met", "met"}, wantInText: []string{"1: 0.95x, 16: 0.92x", "p99 <= 250 µs at 1 connection: 100 µs"}},
		{name: "one count below the ratio", rows: []endpointRow{
			endpointRowFor(1, []float64{0.95}, fast, nil),
			endpointRowFor(64, []float64{0.85, 0.89, 0.95}, fast, nil),
		}, want: []string{"**not met**", "met"}},
		{name: "slow at one connection", rows: []endpointRow{
			endpointRowFor(1, []float64{0.95}, 300*time.Microsecond, nil),
		}, want: []string{"met", "**not met**"}},
		{name: "failed requests on the bare side fail the ratio", rows: []endpointRow{
			endpointRowFor(1, []float64{0.95}, fast, nil),
			endpointRowFor(16, []float64{0.99}, fast, map[string]uint64{childBare: 3}),
		}, want: []string{"**not met**", "met"}, wantInText: []string{"3 failed requests"}},
		{name: "failed requests on the sidecar fail both", rows: []endpointRow{
			endpointRowFor(1, []float64{0.95}, fast, map[string]uint64{sideSidecar: 1}),
		}, want: []string{"**not met**", "**not met**"}},
		{name: "no p99 target without one connection", rows: []endpointRow{
			endpointRowFor(16, []float64{0.95}, fast, nil),
		}, want: []string{"met"}},
		{name: "nothing measured", want: []string{"**not met**"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := endpointTargets(tt.rows)
			var verdicts []string
			var text strings.Builder
			for _, row := range got {
				verdicts = append(verdicts, row[1])
				text.WriteString(row[0] + "\n")
			}
			if !slices.Equal(verdicts, tt.want) {
				t.Errorf("verdicts %q, want %q; rows:\n%s", verdicts, tt.want, text.String())
			}
			for _, s := range tt.wantInText {
				if !strings.Contains(text.String(), s) {
					t.Errorf("rows do not say %q:\n%s", s, text.String())
				}
			}
		})
	}
}

func TestProseNumbers(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Hour: "1 h", 2 * time.Hour: "2 h", 40 * time.Minute: "40 min", 90 * time.Minute: "90 min",
		30 * time.Second: "30 s", 100 * time.Millisecond: "100 ms", 1500 * time.Millisecond: "1.5s", 0: "0s",
	} {
		if got := human(d); got != want {
			t.Errorf("human(%v) = %q, want %q", d, got, want)
		}
	}
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 10000: "10,000", 1234567: "1,234,567", -4500: "-4,500"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
	if got := count(1, "run", "runs"); got != "1 run" {
		t.Errorf("count(1) = %q, want 1 run", got)
	}
	if got := count(1000, "run", "runs"); got != "1,000 runs" {
		t.Errorf("count(1000) = %q, want 1,000 runs", got)
	}
	for n, want := range map[float64]string{28_800_000: "28.8 M", 2880: "2,880"} {
		if got := millions(n); got != want {
			t.Errorf("millions(%v) = %q, want %q", n, got, want)
		}
	}
}

// The prose's refresh figures follow from the schedule: with creds' defaults (1 h sessions, a
// 40 min window, 10% jitter) a refresh comes every 16-20 min.
func TestRefreshPolicy(t *testing.T) {
	p := refreshPolicy{session: time.Hour, window: 40 * time.Minute}
	if lo, hi := p.spacing(); lo != 20*time.Minute || hi != 24*time.Minute {
		t.Errorf("spacing = %v-%v, want 16m-20m", lo, hi)
	}
	if lo, hi := p.perHour(); lo != 2.5 || hi != 3 {
		t.Errorf("perHour = %v-%v, want 2.5-3", lo, hi)
	}
	if w := p.windowFor(3); w != 40*time.Minute {
		t.Errorf("windowFor(3) = %v, want 40m (the jitter only shortens it)", w)
	}
	if d := p.describe(); d != "1 h sessions, refresh with 40 min less up to 10% jitter left" {
		t.Errorf("describe = %q", d)
	}
	why := economyWhy(p)
	for _, want := range []string{"every 20 min–24 min", "2.5–3 per hour", "jittered down to 36 min", "at most 40 min",
		"--duration 2 h: a refresh every 80 min–84 min"} {
		if !strings.Contains(why, want) {
			t.Errorf("economyWhy does not say %q:\n%s", want, why)
		}
	}
	// Another schedule gives other figures: nothing is copied from the defaults.
	why = economyWhy(refreshPolicy{session: 2 * time.Hour, window: 30 * time.Minute})
	if !strings.Contains(why, "every 90 min–93 min") || strings.Contains(why, "20 min–24 min") {
		t.Errorf("economyWhy for 2 h / 30 min:\n%s", why)
	}
}

func TestFleetProse(t *testing.T) {
	if got := fleetTitle(10000); got != "6. Fleet simulation: 10,000 sidecars started at once" {
		t.Errorf("fleetTitle(10000) = %q", got)
	}
	if got := fleetTitle(250); got != "6. Fleet simulation: 250 sidecars started at once" {
		t.Errorf("fleetTitle(250) = %q", got)
	}
	// 10,000 sidecars polling every 30 s for 24 h: 28.8 M reads.
	if got := fleetPollWhy(10000, 24, time.Hour); !strings.Contains(got, "28.8 M file reads") || !strings.Contains(got, "instead of the default 30 s") {
		t.Errorf("fleetPollWhy(10000, 24, 1h) = %q", got)
	}
	if got := fleetPollWhy(100, 2, time.Hour); !strings.Contains(got, "24,000 file reads") {
		t.Errorf("fleetPollWhy(100, 2, 1h) = %q", got)
	}
	if got := fleetPollWhy(100, 2, creds.DefaultPollInterval); got != "" {
		t.Errorf("fleetPollWhy at the default interval = %q, want nothing to explain", got)
	}
}

func TestMemoryTargets(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name             string
		idle, loaded     float64
		failed           uint64
		wantIdle, wantLd string
	}{
		{name: "met", idle: 14 * mib, loaded: 20 * mib, wantIdle: "met", wantLd: "met"},
		{name: "idle too big", idle: 16 * mib, loaded: 20 * mib, wantIdle: "**not met**", wantLd: "met"},
		{name: "loaded too big", idle: 14 * mib, loaded: 31 * mib, wantIdle: "met", wantLd: "**not met**"},
		{name: "failed requests", idle: 14 * mib, loaded: 20 * mib, failed: 2, wantIdle: "met", wantLd: "**not met**"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, summary := memoryTargets([]float64{tt.idle}, []float64{tt.loaded}, []float64{tt.loaded}, 48, tt.failed)
			if len(rows) != 3 || len(summary) != 2 {
				t.Fatalf("%d rows, %d summary rows; want 3 and 2", len(rows), len(summary))
			}
			if rows[0][4] != tt.wantIdle || summary[0][1] != tt.wantIdle {
				t.Errorf("idle verdicts %q / %q, want %q", rows[0][4], summary[0][1], tt.wantIdle)
			}
			if rows[1][4] != tt.wantLd || summary[1][1] != tt.wantLd {
				t.Errorf("loaded verdicts %q / %q, want %q", rows[1][4], summary[1][1], tt.wantLd)
			}
			if !strings.Contains(summary[1][0], "RSS under 48 connections <= 30 MiB") {
				t.Errorf("summary %q does not name the run's connections and target", summary[1][0])
			}
			if tt.failed > 0 && !strings.Contains(summary[1][0], "2 failed requests") {
				t.Errorf("summary %q does not count the failed requests", summary[1][0])
			}
		})
	}
}

func TestRotationTargets(t *testing.T) {
	ms := time.Millisecond
	quick := []time.Duration{2 * ms, 1 * ms, 3 * ms}
	virt := []time.Duration{10 * time.Second, 29 * time.Second}
	wall := []time.Duration{400 * ms, 900 * ms}
	tests := []struct {
		name   string
		notify []time.Duration
		missed int
		virt   []time.Duration
		wall   []time.Duration
		want   []string
	}{
		{name: "met", notify: quick, virt: virt, wall: wall, want: []string{"met", "met", "met"}},
		{name: "missed rotation", notify: quick, missed: 1, virt: virt, wall: wall, want: []string{"**not met**", "met", "met"}},
		{name: "slow notice", notify: []time.Duration{150 * ms}, virt: virt, wall: wall, want: []string{"**not met**", "met", "met"}},
		{name: "poll late", notify: quick, virt: []time.Duration{31 * time.Second}, wall: []time.Duration{1100 * ms},
			want: []string{"met", "**not met**", "**not met**"}},
		{name: "nothing timed", want: []string{"**not met**", "**not met**", "**not met**"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, summary := rotationTargets(tt.notify, tt.missed, tt.virt, 30*time.Second, tt.wall, time.Second)
			if len(rows) != 3 || len(summary) != 3 {
				t.Fatalf("%d rows, %d summary rows; want 3 each (no lower-bound row)", len(rows), len(summary))
			}
			for i, want := range tt.want {
				if rows[i][6] != want || summary[i][1] != want {
					t.Errorf("target %d: verdicts %q / %q, want %q", i, rows[i][6], summary[i][1], want)
				}
			}
			for _, row := range rows {
				if strings.Contains(row[0], "lower bound") {
					t.Errorf("row %q: the lower bound is not reported", row[0])
				}
			}
		})
	}
}

// pinSelf moves every thread of this process to one CPU with GOMAXPROCS 1, and its restore
// puts back the affinity and the default GOMAXPROCS.
func TestPinSelf(t *testing.T) {
	plan := planCPUs(true)
	if !plan.pinned() {
		t.Skipf("cannot pin here: %s", plan.unpinned)
	}
	before, err := allowedCPUList()
	if err != nil {
		t.Fatal(err)
	}
	// The bench process runs with the default GOMAXPROCS, which restore puts back; go test's
	// -cpu sets another, put back after the test.
	prev := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
	runtime.SetDefaultGOMAXPROCS()
	procs := runtime.GOMAXPROCS(0)
	restore, err := pinSelf(context.Background(), plan.load)
	if err != nil {
		t.Fatal(err)
	}
	pinned, err := allowedCPUList()
	if err != nil {
		t.Fatal(err)
	}
	pinnedProcs := runtime.GOMAXPROCS(0)
	if err := restore(); err != nil {
		t.Fatal(err)
	}
	if pinned != plan.load || pinnedProcs != 1 {
		t.Errorf("pinned: cpus %q, GOMAXPROCS %d; want %q and 1", pinned, pinnedProcs, plan.load)
	}
	after, err := allowedCPUList()
	if err != nil {
		t.Fatal(err)
	}
	if after != before || runtime.GOMAXPROCS(0) != procs {
		t.Errorf("restored: cpus %q, GOMAXPROCS %d; want %q and %d", after, runtime.GOMAXPROCS(0), before, procs)
	}
}
