// Command bench measures credsidecar against its targets and writes the report
// docs/bench/<YYYY-MM-DD>.md (with the fleet histogram as a PNG beside it), then prints it.
// `make bench` runs it as `go run ./cmd/bench`; every run count and duration is a flag, and the
// defaults finish in about ten minutes on 2 cores.
//
// The figures come from the real parts wherever they run here: the built cmd/sidecar and
// cmd/uploader binaries, SeaweedFS as STS and S3 (testbed), the kubelet-style token projector,
// and the AWS CLI. Load is generated in this process while the servers run in their own (the
// bare net/http limit runs in a re-executed copy of this binary), so the generator and the
// server never share a Go scheduler; in the endpoint section they do not share a CPU either
// (-pin: servers on one CPU, the generator on another, each with GOMAXPROCS=1). Each figure is
// the median of several runs; ratios are measured side by side in one run, alternating which
// server goes first.
//
// Two figures run on a virtual clock, since they span a day: the STS economy of one sidecar and
// the fleet of 10,000. Their STS is virtualSTS, which says why.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/credsidecar/credsidecar/internal/testkit/sidecarproc"
	"github.com/credsidecar/credsidecar/internal/testkit/testbed"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// sectionNames are the report's sections in order; -sections picks some.
func sectionNames() []string {
	return []string{"endpoint", "memory", "economy", "rotation", "startup", "fleet", "upload", "micro"}
}

// settings are the flags.
type settings struct {
	out      string
	sections []string
	date     string

	runs     int
	warmup   time.Duration
	duration time.Duration
	conns    []int
	pin      bool

	memRuns int
	memLoad time.Duration

	coldClients int
	coldRuns    int
	stsDelay    time.Duration
	econHours   int
	econRuns    int

	rotations    int
	pollRotation int

	startRuns int

	fleet      int
	fleetHours int
	fleetBatch int
	fleetPoll  time.Duration

	uploadSize int64
	uploadRuns int

	microTime time.Duration

	child     string
	childBody string
	childAuth string
}

func parseFlags(args []string, stderr io.Writer) (settings, error) {
	var s settings
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sections, conns, uploadSize string
	fs.StringVar(&s.out, "out", "docs/bench", "directory of the report, relative to the repository root")
	fs.StringVar(&sections, "sections", strings.Join(sectionNames(), ","), "sections to run, comma-separated")
	fs.StringVar(&s.date, "date", time.Now().UTC().Format(time.DateOnly), "the report's date (its file name)")
	fs.IntVar(&s.runs, "runs", 7, "endpoint: runs per server and connection count (alternating)")
	fs.DurationVar(&s.warmup, "warmup", 500*time.Millisecond, "endpoint: warm-up before each measured run")
	fs.DurationVar(&s.duration, "duration", 3*time.Second, "endpoint: length of each measured run")
	fs.StringVar(&conns, "conns", "1,16,64", "endpoint: connection counts")
	fs.BoolVar(&s.pin, "pin", true, "endpoint: pin the servers to one CPU and the load generator to another (taskset), when there are two")
	fs.IntVar(&s.memRuns, "mem-runs", 5, "memory: sidecar processes measured")
	fs.DurationVar(&s.memLoad, "mem-load", 5*time.Second, "memory: length of the 64-connection load")
	fs.IntVar(&s.coldClients, "cold-clients", 1000, "economy: concurrent clients at cold start")
	fs.IntVar(&s.coldRuns, "cold-runs", 3, "economy: cold starts measured")
	fs.DurationVar(&s.stsDelay, "sts-delay", 100*time.Millisecond, "economy: round trip added to SeaweedFS's STS answers at cold start, as a WAN to AWS STS would")
	fs.IntVar(&s.econHours, "economy-hours", 24, "economy: virtual hours of steady serving")
	fs.IntVar(&s.econRuns, "economy-runs", 5, "economy: virtual days simulated (different jitter)")
	fs.IntVar(&s.rotations, "rotations", 20, "rotation: token rotations timed with file notifications")
	fs.IntVar(&s.pollRotation, "poll-rotations", 20, "rotation: token rotations timed with the poll alone")
	fs.IntVar(&s.startRuns, "start-runs", 10, "startup: sidecar starts measured")
	fs.IntVar(&s.fleet, "fleet", 10000, "fleet: sidecars simulated")
	fs.IntVar(&s.fleetHours, "fleet-hours", 24, "fleet: virtual hours")
	fs.IntVar(&s.fleetBatch, "fleet-batch", 16, "fleet: sidecars run at once on one virtual clock (each holds an inotify instance; the kernel allows 128 per user)")
	fs.DurationVar(&s.fleetPoll, "fleet-poll", 0, "fleet: token poll interval of the simulated sidecars (0: the sidecar's default)")
	fs.StringVar(&uploadSize, "upload-size", "1GiB", "upload: file size")
	fs.IntVar(&s.uploadRuns, "upload-runs", 5, "upload: uploads per tool (alternating)")
	fs.DurationVar(&s.microTime, "micro-time", time.Second, "micro: target time of each Go benchmark")
	fs.StringVar(&s.child, "child", "", "internal: run as the bare server child")
	fs.StringVar(&s.childBody, "child-body", "", "internal: file with the bare server's answer")
	fs.StringVar(&s.childAuth, "child-auth", "", "internal: file with the bare server's auth token")
	if err := fs.Parse(args); err != nil {
		return s, err
	}
	if fs.NArg() > 0 {
		return s, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for _, name := range strings.Split(sections, ",") {
		name = strings.TrimSpace(name)
		if !slices.Contains(sectionNames(), name) {
			return s, fmt.Errorf("-sections: unknown section %q (known: %s)", name, strings.Join(sectionNames(), ", "))
		}
		s.sections = append(s.sections, name)
	}
	for _, c := range strings.Split(conns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || n < 1 {
			return s, fmt.Errorf("-conns: %q is not a positive number", c)
		}
		s.conns = append(s.conns, n)
	}
	size, err := parseSize(uploadSize)
	if err != nil {
		return s, fmt.Errorf("-upload-size: %w", err)
	}
	s.uploadSize = size
	for name, v := range map[string]int{"runs": s.runs, "mem-runs": s.memRuns, "cold-clients": s.coldClients,
		"cold-runs": s.coldRuns, "economy-hours": s.econHours, "economy-runs": s.econRuns, "rotations": s.rotations,
		"poll-rotations": s.pollRotation, "start-runs": s.startRuns, "fleet": s.fleet, "fleet-hours": s.fleetHours,
		"fleet-batch": s.fleetBatch, "upload-runs": s.uploadRuns} {
		if v < 1 {
			return s, fmt.Errorf("-%s: %d, want at least 1", name, v)
		}
	}
	if s.duration <= 0 || s.memLoad <= 0 {
		return s, errors.New("-duration and -mem-load must be positive")
	}
	return s, nil
}

// parseSize reads 1GiB, 512MiB, 100KiB or a byte count.
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"", 1}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := strconv.ParseInt(num, 10, 64)
			if err != nil || n <= 0 {
				return 0, fmt.Errorf("%q is not a size like 1GiB", s)
			}
			return n * u.mult, nil
		}
	}
	return 0, fmt.Errorf("%q is not a size like 1GiB", s)
}

// env is what the sections share: the test bed, the built binaries and a scratch directory.
type env struct {
	s      settings
	log    *slog.Logger
	root   string
	tmp    string
	iss    *testbed.Issuer
	weed   *testbed.SeaweedFS
	proj   *testbed.Projector
	binDir string
	// sidecarBin is built once; uploaderBin too, or uploaderErr says why not.
	sidecarBin  string
	uploaderBin string
	uploaderErr error
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	s, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 2
	}
	if s.child != "" {
		if err := runChild(ctx, s, stdout); err != nil {
			fmt.Fprintf(stderr, "bench child: %v\n", err)
			return 1
		}
		return 0
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := runAll(ctx, s, log, stdout); err != nil {
		log.Error("bench failed", "error", err.Error())
		return 1
	}
	return 0
}

func runAll(ctx context.Context, s settings, log *slog.Logger, stdout io.Writer) error {
	root, err := testbed.RepoRoot()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "credsidecar-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	e := &env{s: s, log: log, root: root, tmp: tmp, binDir: filepath.Join(tmp, "bin")}
	if err := os.MkdirAll(e.binDir, 0o755); err != nil {
		return err
	}
	began := time.Now()

	log.Info("building cmd/sidecar and cmd/uploader")
	if e.sidecarBin, err = sidecarproc.Build(ctx, e.binDir); err != nil {
		return err
	}
	e.uploaderBin, e.uploaderErr = buildUploader(ctx, root, e.binDir)

	log.Info("starting the test bed: OIDC issuer, SeaweedFS, token projector")
	if e.iss, err = testbed.NewIssuer(testbed.IssuerOptions{}); err != nil {
		return err
	}
	defer e.iss.Close()
	if e.weed, err = testbed.StartSeaweedFS(ctx, testbed.SeaweedFSOptions{Issuer: e.iss}); err != nil {
		return err
	}
	defer e.weed.Close()
	if e.proj, err = testbed.NewProjector(testbed.ProjectorOptions{
		Dir:    filepath.Join(tmp, "projected"),
		Minter: e.iss.Minter(testbed.TokenRequest{}),
	}); err != nil {
		return err
	}
	defer e.proj.Close()

	r := newReport(s)
	sections := map[string]func(context.Context, *env, *report) error{
		"endpoint": benchEndpoint,
		"memory":   benchMemory,
		"economy":  benchEconomy,
		"rotation": benchRotation,
		"startup":  benchStartup,
		"fleet":    benchFleet,
		"upload":   benchUpload,
		"micro":    benchMicro,
	}
	for _, name := range sectionNames() {
		if !slices.Contains(s.sections, name) {
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		t0 := time.Now()
		log.Info("section", "name", name)
		if err := sections[name](ctx, e, r); err != nil {
			log.Error("section failed", "name", name, "error", err.Error())
			r.failed(name, err)
		}
		log.Info("section done", "name", name, "took", time.Since(t0).Round(time.Second).String())
	}
	r.footer(time.Since(began))

	dir := s.out
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(root, dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, data := range r.files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	path := filepath.Join(dir, s.date+".md")
	if err := os.WriteFile(path, []byte(r.String()), 0o644); err != nil {
		return err
	}
	fmt.Fprint(stdout, r.String())
	log.Info("report written", "path", path, "took", time.Since(began).Round(time.Second).String())
	return nil
}
