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
	bin := o.BinDir
	if bin == "" {
		bin = filepath.Join(work, "bin")
	}
	step := stepper(out)

	if o.Build {
		step("building cmd/sidecar and cmd/uploader")
		if err := buildBinaries(ctx, bin); err != nil {
			return res, err
		}
	}

	step("starting the OIDC issuer (the cluster's service-account issuer, on loopback)")
	iss, err := testbed.NewIssuer(testbed.IssuerOptions{})
	if err != nil {
		return res, fmt.Errorf("demo: start issuer: %w", err)
	}
	defer iss.Close()
	fmt.Fprintf(out, "    issuer   %s\n    audience %s (the issuer URL with its trailing slash)\n", iss.URL(), iss.Audience())

	step("projecting the service-account token as the kubelet does (..data symlink swap)")
	tokenDir := filepath.Join(work, "serviceaccount")
	proj, err := testbed.NewProjector(testbed.ProjectorOptions{
		Dir:    tokenDir,
		Minter: iss.Minter(testbed.TokenRequest{PodName: "s3-upload-test-demo"}),
	})
	if err != nil {
		return res, fmt.Errorf("demo: project token: %w", err)
	}
	defer proj.Close()
	fmt.Fprintf(out, "    token    %s (sub %s)\n", proj.Path(), testbed.Subject(testbed.DefaultNamespace, testbed.DefaultServiceAccount))

	step("starting SeaweedFS as STS and S3, trusting the issuer for role " + testbed.DefaultRoleARN)
	sw, err := testbed.StartSeaweedFS(ctx, testbed.SeaweedFSOptions{Issuer: iss})
	if err != nil {
		return res, fmt.Errorf("demo: start SeaweedFS: %w", err)
	}
	defer sw.Close()
	fmt.Fprintf(out, "    endpoint %s, bucket %s\n", sw.Endpoint(), sw.Bucket())

	step("starting the sidecar (native sidecar container: token -> STS -> 127.0.0.1 endpoint)")
	listen, err := freeLoopbackAddr()
	if err != nil {
		return res, err
	}
	metricsListen, err := freeLoopbackAddr()
	if err != nil {
		return res, err
	}
	authFile := filepath.Join(work, "credsidecar", "auth-token")
	if err := os.MkdirAll(filepath.Dir(authFile), 0o750); err != nil {
		return res, fmt.Errorf("demo: make auth token dir: %w", err)
	}
	sidecar := exec.Command(filepath.Join(bin, "sidecar"), "serve")
	sidecar.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + work,
		"AWS_ROLE_ARN=" + sw.RoleARN(),
		"AWS_WEB_IDENTITY_TOKEN_FILE=" + proj.Path(),
		"AWS_REGION=" + testbed.Region,
		"AWS_ENDPOINT_URL_STS=" + sw.Endpoint(),
		"POD_NAMESPACE=" + testbed.DefaultNamespace,
		"POD_NAME=s3-upload-test-demo",
		"CREDSIDECAR_LISTEN=" + listen,
		"CREDSIDECAR_METRICS_LISTEN=" + metricsListen,
		"CREDSIDECAR_AUTH_TOKEN_FILE=" + authFile,
		"CREDSIDECAR_LOG_FORMAT=text",
	}
	sc, err := startStreaming(sidecar, out, "sidecar  | ")
	if err != nil {
		return res, fmt.Errorf("demo: start sidecar: %w", err)
	}
	defer sc.Stop()

	if err := waitReady(ctx, "http://"+metricsListen+"/readyz", o.ReadyTimeout); err != nil {
		return res, err
	}
	fmt.Fprintf(out, "    ready: http://%s/readyz answers 200\n", metricsListen)

	key := upload.DefaultKey("", time.Now())
	step("running the uploader with only AWS_CONTAINER_CREDENTIALS_FULL_URI and the token file")
	up := exec.CommandContext(ctx, filepath.Join(bin, "uploader"), "--path-style", "--key", key)
	up.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + work,
		"AWS_CONTAINER_CREDENTIALS_FULL_URI=http://" + listen + "/v1/credentials",
		"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=" + authFile,
		"AWS_CONFIG_FILE=" + filepath.Join(work, "no-config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(work, "no-credentials"),
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_REGION=" + testbed.Region,
		"AWS_ENDPOINT_URL=" + sw.Endpoint(),
		"S3_BUCKET_NAME=" + sw.Bucket(),
		"LOG_FORMAT=text",
		"POD_NAME=s3-upload-test-demo",
		"POD_NAMESPACE=" + testbed.DefaultNamespace,
	}
	uploader, err := startStreaming(up, out, "uploader | ")
	if err != nil {
		return res, fmt.Errorf("demo: start uploader: %w", err)
	}
	if err := uploader.Wait(); err != nil {
		return res, fmt.Errorf("demo: uploader failed: %w", err)
	}

	step("reading the object back from S3")
	obj, err := sw.S3Client(sw.AdminCredentials()).GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(sw.Bucket()), Key: aws.String(key),
	})
	if err != nil {
		return res, fmt.Errorf("demo: read back s3://%s/%s: %w", sw.Bucket(), key, err)
	}
	body, err := io.ReadAll(obj.Body)
	obj.Body.Close()
	if err != nil {
		return res, fmt.Errorf("demo: read back s3://%s/%s: %w", sw.Bucket(), key, err)
	}
	fmt.Fprintf(out, "    s3://%s/%s (%d bytes):\n", sw.Bucket(), key, len(body))
	for _, line := range strings.Split(strings.TrimRight(string(body), "\n"), "\n") {
		fmt.Fprintf(out, "    | %s\n", line)
	}

	step("stopping everything")
	if err := sc.Stop(); err != nil {
		return res, fmt.Errorf("demo: sidecar did not stop cleanly: %w", err)
	}
	return Result{Bucket: sw.Bucket(), Key: key, Object: body}, nil
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
