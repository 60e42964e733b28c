// Package demo runs the whole credsidecar flow on this machine, on real parts: a
// Kubernetes-shaped OIDC issuer, a projector writing the service-account token as the kubelet
// does, SeaweedFS as STS and S3, the sidecar binary and the uploader binary. The uploader gets
// exactly what the Job's app container gets, AWS_CONTAINER_CREDENTIALS_FULL_URI and
// AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE, and nothing else that could carry credentials.
//
// It is what `make demo` runs, and its test runs it too, so the README's first command is
// checked on every `make test`.
package demo

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/credsidecar/credsidecar/internal/testkit/testbed"
	"github.com/credsidecar/credsidecar/internal/upload"
)

// Options are what a run of the demo may be given.
type Options struct {
	// Out receives the narration and both programs' logs.
	Out io.Writer
	// BinDir holds (or receives) the sidecar and uploader binaries; a temporary directory when
	// empty. Build decides whether they are built there first.
	BinDir string
	// Build runs `go build` for both binaries into BinDir before starting.
	Build bool
	// ReadyTimeout bounds the wait for the sidecar's /readyz, as a startupProbe would.
	ReadyTimeout time.Duration
}

// Result is what a successful run observed.
type Result struct {
	Bucket, Key string
	// Object is the uploaded object as read back from S3 with the bed's admin credentials.
	Object []byte
}

// Run plays the demo and returns what it read back. Every process and directory it starts is
// stopped and removed before it returns, whatever happens.
func Run(ctx context.Context, o Options) (res Result, err error) {
	out := &lockedWriter{w: o.Out}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 30 * time.Second
	}
	work, err := os.MkdirTemp("", "credsidecar-demo-")
	if err != nil {
		return res, fmt.Errorf("demo: make work dir: %w", err)
	}
	defer os.RemoveAll(work)
	d := &demo{out: out, step: stepper(out), work: work, bin: o.BinDir}
	if d.bin == "" {
		d.bin = filepath.Join(work, "bin")
	}

	if o.Build {
		d.step("building cmd/sidecar and cmd/uploader")
		if err := buildBinaries(ctx, d.bin); err != nil {
			return res, err
		}
	}
	stopWorld, err := d.startWorld(ctx)
	defer stopWorld()
	if err != nil {
		return res, err
	}
	sc, err := d.startSidecar(ctx, o.ReadyTimeout)
	if err != nil {
		return res, err
	}
	defer sc.Stop()

	key := upload.DefaultKey("", time.Now())
	if err := d.runUploader(ctx, key); err != nil {
		return res, err
	}
	body, err := d.readBack(ctx, key)
	if err != nil {
		return res, err
	}

	d.step("stopping everything")
	if err := sc.Stop(); err != nil {
		return res, fmt.Errorf("demo: sidecar did not stop cleanly: %w", err)
	}
	return Result{Bucket: d.sw.Bucket(), Key: key, Object: body}, nil
}

// demo is one run of the demo: where it works, what it narrates to, and the parts it started,
// which each step hands on to the next.
type demo struct {
	out       io.Writer
	step      func(string)
	work, bin string

	iss  *testbed.Issuer
	proj *testbed.Projector
	sw   *testbed.SeaweedFS
	// listen is the sidecar's credentials address, authFile the token file it shares with apps.
	listen, authFile string
}

// startWorld starts what a cluster and AWS provide: the OIDC issuer, the kubelet's projected
// token and SeaweedFS as STS and S3. The returned stop closes whatever was started, even when
// err is not nil.
func (d *demo) startWorld(ctx context.Context) (stop func(), err error) {
	var closers []func() error
	stop = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}

	d.step("starting the OIDC issuer (the cluster's service-account issuer, on loopback)")
	if d.iss, err = testbed.NewIssuer(testbed.IssuerOptions{}); err != nil {
		return stop, fmt.Errorf("demo: start issuer: %w", err)
	}
	closers = append(closers, d.iss.Close)
	fmt.Fprintf(d.out, "    issuer   %s\n    audience %s (the issuer URL with its trailing slash)\n", d.iss.URL(), d.iss.Audience())

	d.step("projecting the service-account token as the kubelet does (..data symlink swap)")
	d.proj, err = testbed.NewProjector(testbed.ProjectorOptions{
		Dir:    filepath.Join(d.work, "serviceaccount"),
		Minter: d.iss.Minter(testbed.TokenRequest{PodName: "s3-upload-test-demo"}),
	})
	if err != nil {
		return stop, fmt.Errorf("demo: project token: %w", err)
	}
	closers = append(closers, d.proj.Close)
	fmt.Fprintf(d.out, "    token    %s (sub %s)\n", d.proj.Path(), testbed.Subject(testbed.DefaultNamespace, testbed.DefaultServiceAccount))

	d.step("starting SeaweedFS as STS and S3, trusting the issuer for role " + testbed.DefaultRoleARN)
	if d.sw, err = testbed.StartSeaweedFS(ctx, testbed.SeaweedFSOptions{Issuer: d.iss}); err != nil {
		return stop, fmt.Errorf("demo: start SeaweedFS: %w", err)
	}
	closers = append(closers, d.sw.Close)
	fmt.Fprintf(d.out, "    endpoint %s, bucket %s\n", d.sw.Endpoint(), d.sw.Bucket())
	return stop, nil
}

// startSidecar starts the sidecar binary as the pod's native sidecar container would run it and
// returns once its /readyz answers 200, as its startupProbe would wait.
func (d *demo) startSidecar(ctx context.Context, readyTimeout time.Duration) (*process, error) {
	d.step("starting the sidecar (native sidecar container: token -> STS -> 127.0.0.1 endpoint)")
	var err error
	if d.listen, err = freeLoopbackAddr(); err != nil {
		return nil, err
	}
	metricsListen, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	d.authFile = filepath.Join(d.work, "credsidecar", "auth-token")
	if err := os.MkdirAll(filepath.Dir(d.authFile), 0o750); err != nil {
		return nil, fmt.Errorf("demo: make auth token dir: %w", err)
	}
	cmd := exec.Command(filepath.Join(d.bin, "sidecar"), "serve")
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + d.work,
		"AWS_ROLE_ARN=" + d.sw.RoleARN(),
		"AWS_WEB_IDENTITY_TOKEN_FILE=" + d.proj.Path(),
		"AWS_REGION=" + testbed.Region,
		"AWS_ENDPOINT_URL_STS=" + d.sw.Endpoint(),
		"POD_NAMESPACE=" + testbed.DefaultNamespace,
		"POD_NAME=s3-upload-test-demo",
		"CREDSIDECAR_LISTEN=" + d.listen,
		"CREDSIDECAR_METRICS_LISTEN=" + metricsListen,
		"CREDSIDECAR_AUTH_TOKEN_FILE=" + d.authFile,
		"CREDSIDECAR_LOG_FORMAT=text",
	}
	sc, err := startStreaming(cmd, d.out, "sidecar  | ")
	if err != nil {
		return nil, fmt.Errorf("demo: start sidecar: %w", err)
	}
	if err := waitReady(ctx, "http://"+metricsListen+"/readyz", readyTimeout); err != nil {
		sc.Stop()
		return nil, err
	}
	fmt.Fprintf(d.out, "    ready: http://%s/readyz answers 200\n", metricsListen)
	return sc, nil
}

// runUploader runs the uploader with exactly what the Job's app container gets, so that the
// upload proves the sidecar alone provided its credentials.
func (d *demo) runUploader(ctx context.Context, key string) error {
	d.step("running the uploader with only AWS_CONTAINER_CREDENTIALS_FULL_URI and the token file")
	cmd := exec.CommandContext(ctx, filepath.Join(d.bin, "uploader"), "--path-style", "--key", key)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + d.work,
		"AWS_CONTAINER_CREDENTIALS_FULL_URI=http://" + d.listen + "/v1/credentials",
		"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=" + d.authFile,
		"AWS_CONFIG_FILE=" + filepath.Join(d.work, "no-config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(d.work, "no-credentials"),
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_REGION=" + testbed.Region,
		"AWS_ENDPOINT_URL=" + d.sw.Endpoint(),
		"S3_BUCKET_NAME=" + d.sw.Bucket(),
		"LOG_FORMAT=text",
		"POD_NAME=s3-upload-test-demo",
		"POD_NAMESPACE=" + testbed.DefaultNamespace,
	}
	uploader, err := startStreaming(cmd, d.out, "uploader | ")
	if err != nil {
		return fmt.Errorf("demo: start uploader: %w", err)
	}
	if err := uploader.Wait(); err != nil {
		return fmt.Errorf("demo: uploader failed: %w", err)
	}
	return nil
}

// readBack reads the uploaded object with the bed's admin credentials, not the sidecar's, and
// shows it.
func (d *demo) readBack(ctx context.Context, key string) ([]byte, error) {
	d.step("reading the object back from S3")
	obj, err := d.sw.S3Client(d.sw.AdminCredentials()).GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(d.sw.Bucket()), Key: aws.String(key),
	})
	if err != nil {
		return nil, fmt.Errorf("demo: read back s3://%s/%s: %w", d.sw.Bucket(), key, err)
	}
	body, err := io.ReadAll(obj.Body)
	obj.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("demo: read back s3://%s/%s: %w", d.sw.Bucket(), key, err)
	}
	fmt.Fprintf(d.out, "    s3://%s/%s (%d bytes):\n", d.sw.Bucket(), key, len(body))
	for _, line := range strings.Split(strings.TrimRight(string(body), "\n"), "\n") {
		fmt.Fprintf(d.out, "    | %s\n", line)
	}
	return body, nil
}

// buildBinaries builds both commands with the go tool into dir.
func buildBinaries(ctx context.Context, dir string) error {
	root, err := testbed.RepoRoot()
	if err != nil {
		return fmt.Errorf("demo: find repository root: %w", err)
	}
	for _, name := range []string{"sidecar", "uploader"} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(dir, name), "./cmd/"+name)
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("demo: go build ./cmd/%s: %w\n%s", name, err, b)
		}
	}
	return nil
}

// process is a started program whose output is streamed.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error
	copied chan struct{}
	mu     sync.Mutex
	out    strings.Builder
}

// output is everything the program has printed so far.
func (p *process) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// startStreaming starts cmd with its output copied line by line to out behind prefix.
func startStreaming(cmd *exec.Cmd, out io.Writer, prefix string) (*process, error) {
	r, w := io.Pipe()
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, exited: make(chan struct{}), copied: make(chan struct{})}
	go func() {
		defer close(p.copied)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.out.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			fmt.Fprintf(out, "%s%s\n", prefix, sc.Text())
		}
		io.Copy(io.Discard, r)
	}()
	go func() {
		p.err = cmd.Wait()
		w.Close()
		close(p.exited)
	}()
	return p, nil
}

// Wait waits for the program to exit and its output to be copied.
func (p *process) Wait() error {
	<-p.exited
	<-p.copied
	return p.err
}

// Stop sends SIGTERM, as the kubelet does, and waits; after 10 s it kills. Safe to repeat.
func (p *process) Stop() error {
	select {
	case <-p.exited:
		return p.Wait()
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return p.Wait()
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		return errors.Join(errors.New("killed after 10 s"), p.Wait())
	}
}

// waitReady polls url until it answers 200, as the kubelet's startupProbe does.
func waitReady(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("demo: sidecar not ready after %s (%s): see its log above", timeout, last)
		case <-tick.C:
		}
	}
}

func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("demo: find a free loopback port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func stepper(out io.Writer) func(string) {
	n := 0
	return func(what string) {
		n++
		fmt.Fprintf(out, "\n==> %d. %s\n", n, what)
	}
}

// lockedWriter serialises the two programs' log streams and the narration.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
