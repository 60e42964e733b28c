package testbed

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// Region is the region clients of the test bed's STS and S3 sign for; SeaweedFS accepts any.
const Region = "us-east-1"

// ModulePath is the module whose root holds .cache/bin/weed.
const ModulePath = "github.com/credsidecar/credsidecar"

// WeedEnv names the variable that overrides where the weed binary is.
const WeedEnv = "CREDSIDECAR_WEED"

// SeaweedFSOptions configures StartSeaweedFS.
type SeaweedFSOptions struct {
	// Binary is the weed executable; FindWeed() when empty.
	Binary string
	// Issuer is the OIDC issuer the default IAM config trusts. Required unless IAM is set.
	Issuer *Issuer
	// Bucket is created at start and is the one the default policy allows; DefaultBucket when
	// empty.
	Bucket string
	// ExtraBuckets are created at start too; the default policy allows none of them.
	ExtraBuckets []string
	// Audience is the audience the HTTP provider accepts; Issuer.Audience() when empty.
	Audience string
	// IAM replaces the whole default IAM config when set.
	IAM *IAMConfig
	// ExtraRoles and ExtraPolicies are appended to the IAM config, e.g. a ChainedRole.
	ExtraRoles    []Role
	ExtraPolicies []Policy
	// TempDir is the parent of the instance's directory; os.TempDir() when empty. Keep it short:
	// unix socket paths under it are limited to 108 bytes.
	TempDir string
	// KeepDir leaves the instance's directory (data, logs, iam.json) behind after Close.
	KeepDir bool
	// StartTimeout bounds start-up, waiting for other instances' start-up included, to the
	// created buckets; 90 s when 0.
	StartTimeout time.Duration
	// StopTimeout is how long Close waits after SIGTERM before SIGKILL; 10 s when 0.
	StopTimeout time.Duration
	// Logger receives lifecycle events; discarded when nil.
	Logger *slog.Logger
	// TLS, when set, also serves S3 over https on HTTPSPort (a port from PickPort, fixed before
	// start because an IAM config may need the https URL), with TLS's certificate.
	TLS       *ServingCert
	HTTPSPort int
}

// SeaweedFS is a running `weed mini` serving S3 and STS on one loopback port, trusting an Issuer.
type SeaweedFS struct {
	tls                       *ServingCert
	httpsPort                 int
	bin, dir, iamPath, logDir string
	bucket                    string
	adminKey, adminSecret     string
	endpoint                  string
	ports                     []int
	keepDir                   bool
	stopTimeout               time.Duration
	log                       *slog.Logger

	proc *child

	closeOnce sync.Once
	closeErr  error
}

// weedPortFlags are every listening-port flag of `weed mini` that is on with the flags below;
// each gets a port chosen here, so no two instances can meet on a default port. The others are
// switched off: -s3.port.iceberg, -s3.port.lance, -admin.port.legacy (0), -s3.port.https,
// -metricsPort, -s3.metricsPort (0 by default), -debug.port (only with -debug); -webdav.port is
// set although -webdav=false, because mini checks it anyway.
// The first is the S3 (and STS) port.
func weedPortFlags() []string {
	return []string{
		"s3.port", "s3.port.grpc",
		"master.port", "master.port.grpc",
		"volume.port", "volume.port.grpc",
		"filer.port", "filer.port.grpc",
		"admin.port", "admin.port.grpc",
		"webdav.port",
	}
}

// grpcSocket is the unix socket mini puts at /tmp/seaweedfs-<service>-grpc-<port>.sock for a
// gRPC port flag, with no flag to move it; "" for other flags. Close removes any a killed weed
// left behind.
func grpcSocket(flag string, port int) string {
	service, ok := strings.CutSuffix(flag, ".port.grpc")
	if !ok {
		return ""
	}
	return fmt.Sprintf("/tmp/seaweedfs-%s-grpc-%d.sock", service, port)
}

// StartSeaweedFS writes iam.json, starts `weed mini` on 127.0.0.1 with data and logs in a new
// temporary directory, waits until S3 and STS answer and creates the buckets. Close stops it.
func StartSeaweedFS(ctx context.Context, opts SeaweedFSOptions) (_ *SeaweedFS, err error) {
	if opts.IAM == nil && opts.Issuer == nil {
		return nil, errors.New("start seaweedfs: Issuer or IAM is required")
	}
	bin := opts.Binary
	if bin == "" {
		if bin, err = FindWeed(); err != nil {
			return nil, fmt.Errorf("start seaweedfs: %w", err)
		}
	}
	startTimeout := durationOr(opts.StartTimeout, 90*time.Second)
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()

	if opts.TLS != nil && opts.HTTPSPort == 0 {
		return nil, errors.New("start seaweedfs: TLS needs HTTPSPort")
	}
	s := &SeaweedFS{
		tls:         opts.TLS,
		httpsPort:   opts.HTTPSPort,
		bin:         bin,
		bucket:      valueOr(opts.Bucket, DefaultBucket),
		keepDir:     opts.KeepDir,
		stopTimeout: durationOr(opts.StopTimeout, 10*time.Second),
		log:         opts.Logger,
		adminKey:    "AKIATESTBED" + strings.ToUpper(randomHex(5)),
		adminSecret: randomHex(20),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.dir, err = os.MkdirTemp(opts.TempDir, "credsidecar-weed-"); err != nil {
		return nil, fmt.Errorf("start seaweedfs: %w", err)
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	s.logDir = filepath.Join(s.dir, "logs")
	for _, d := range []string{s.logDir, filepath.Join(s.dir, "data")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, fmt.Errorf("start seaweedfs: %w", err)
		}
	}

	cfg := opts.IAM
	if cfg == nil {
		c := DefaultIAMConfig(opts.Issuer, s.bucket, opts.Audience)
		cfg = &c
	}
	full := *cfg
	full.Roles = append(append([]Role(nil), cfg.Roles...), opts.ExtraRoles...)
	full.Policies = append(append([]Policy(nil), cfg.Policies...), opts.ExtraPolicies...)
	body, err := full.marshal()
	if err != nil {
		return nil, fmt.Errorf("start seaweedfs: %w", err)
	}
	s.iamPath = filepath.Join(s.dir, "iam.json")
	if err := os.WriteFile(s.iamPath, body, 0o600); err != nil {
		return nil, fmt.Errorf("start seaweedfs: %w", err)
	}

	if err := s.launch(ctx); err != nil {
		return nil, fmt.Errorf("start seaweedfs: %w%s", err, s.logTail())
	}
	for _, b := range append([]string{s.bucket}, opts.ExtraBuckets...) {
		if err := s.createBucket(ctx, b); err != nil {
			return nil, fmt.Errorf("start seaweedfs: %w%s", err, s.logTail())
		}
	}
	s.log.Info("seaweedfs ready", "endpoint", s.endpoint, "dir", s.dir, "pid", s.proc.pid())
	return s, nil
}

// launch holds the start-up lock while it picks ports and waits for weed to bind them, so test
// binaries running in parallel never pick the same port. A weed that dies during start-up (a
// port taken by an unrelated process in the meantime) is retried on new ports, twice at most.
func (s *SeaweedFS) launch(ctx context.Context) error {
	unlock, err := lockStartup(ctx, filepath.Join(os.TempDir(), "credsidecar-weed-start.lock"))
	if err != nil {
		return err
	}
	defer unlock()
	sweepStale(s.log)
	const attempts = 3
	for attempt := 1; ; attempt++ {
		if s.ports, err = pickPorts(len(weedPortFlags())); err != nil {
			return err
		}
		if err := s.writeOwner(); err != nil {
			return err
		}
		s.endpoint = "http://127.0.0.1:" + strconv.Itoa(s.ports[0])
		if err = s.startProcess(); err != nil {
			return err
		}
		err = s.waitReady(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-s.proc.exited:
			if attempt < attempts && ctx.Err() == nil {
				s.log.Warn("weed exited during start-up, retrying on other ports", "attempt", attempt, "error", err)
				s.cleanupSockets()
				continue
			}
		default:
		}
		return err
	}
}

func (s *SeaweedFS) args() []string {
	args := []string{
		"-logdir=" + s.logDir,
		"mini",
		"-dir=" + filepath.Join(s.dir, "data"),
		"-ip=127.0.0.1",
		"-ip.bind=127.0.0.1",
		"-master.telemetry=false",
		"-webdav=false",
		"-admin.ui=false",
		"-s3.iam.config=" + s.iamPath,
		"-s3.port.iceberg=0",
		"-s3.port.lance=0",
		"-admin.port.legacy=0",
		"-filer.localSocket=" + filepath.Join(s.dir, "filer.sock"),
		"-s3.localSocket=" + filepath.Join(s.dir, "s3.sock"),
	}
	for i, f := range weedPortFlags() {
		args = append(args, "-"+f+"="+strconv.Itoa(s.ports[i]))
	}
	if s.tls != nil {
		args = append(args, "-s3.port.https="+strconv.Itoa(s.httpsPort), "-s3.cert.file="+s.tls.CertFile,
			"-s3.key.file="+s.tls.KeyFile)
	}
	return args
}

// HTTPSEndpoint is S3's https URL, "" unless started with TLS.
func (s *SeaweedFS) HTTPSEndpoint() string {
	if s.tls == nil {
		return ""
	}
	return "https://127.0.0.1:" + strconv.Itoa(s.httpsPort)
}

// PickPort returns a port free on 127.0.0.1, below the ephemeral range (see SeaweedFSOptions.HTTPSPort).
func PickPort() (int, error) {
	ports, err := pickPorts(1)
	if err != nil {
		return 0, err
	}
	return ports[0], nil
}

// startProcess starts weed in its own process group, with an environment reduced to what it
// needs: a HOME of its own, so no ~/.seaweedfs configuration applies, and the admin key pair,
// which mini turns into an admin identity (used to create buckets).
func (s *SeaweedFS) startProcess() error {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + s.dir,
		"AWS_ACCESS_KEY_ID=" + s.adminKey,
		"AWS_SECRET_ACCESS_KEY=" + s.adminSecret,
	}
	proc, err := startChild("weed", s.bin, s.args(), env, s.dir, s.logDir, s.log)
	if err != nil {
		return err
	}
	s.proc = proc
	s.log.Debug("weed ports", "pid", proc.pid(), "ports", s.ports)
	return s.writeOwner()
}

// ownerFile records who runs an instance, so that a later start can clean up after a test
// binary that was killed before its clean-up ran (Pdeathsig took weed down with it, but the
// directory and weed's /tmp sockets stay).
const ownerFile = "owner"

func (s *SeaweedFS) writeOwner() error {
	weedPid := 0
	if s.proc != nil {
		weedPid = s.proc.pid()
	}
	ports := make([]string, len(s.ports))
	for i, p := range s.ports {
		ports[i] = strconv.Itoa(p)
	}
	body := fmt.Sprintf("%d %d %s\n", os.Getpid(), weedPid, strings.Join(ports, ","))
	if err := os.WriteFile(filepath.Join(s.dir, ownerFile), []byte(body), 0o644); err != nil {
		return fmt.Errorf("record owner: %w", err)
	}
	return nil
}

// sweepStale removes the directories and sockets of instances in os.TempDir() whose test binary
// and weed are both gone. The caller holds the start-up lock.
func sweepStale(log *slog.Logger) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "credsidecar-weed-*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue // not ours, or still being set up
		}
		var owner, weed int
		var ports string
		if n, _ := fmt.Sscanf(string(b), "%d %d %s", &owner, &weed, &ports); n != 3 {
			continue
		}
		if owner == os.Getpid() || processAlive(owner) || (weed > 0 && processAlive(weed)) {
			continue
		}
		stale := &SeaweedFS{}
		for _, p := range strings.Split(ports, ",") {
			if v, err := strconv.Atoi(p); err == nil {
				stale.ports = append(stale.ports, v)
			}
		}
		stale.cleanupSockets()
		if err := os.RemoveAll(dir); err == nil {
			log.Info("removed the leftovers of a killed test run", "dir", dir)
		}
	}
}

// waitReady polls, with a bounded backoff, until STS answers an AssumeRoleWithWebIdentity with a
// verdict rather than "not ready" and every port weed was given is listening: the admin server
// binds last, and until it has, another instance could still pick its port. It gives up when
// weed exits or ctx ends.
func (s *SeaweedFS) waitReady(ctx context.Context) error {
	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	form := url.Values{
		"Action":           {"AssumeRoleWithWebIdentity"},
		"Version":          {"2011-06-15"},
		"RoleArn":          {DefaultRoleARN},
		"RoleSessionName":  {"testbed-readiness"},
		"WebIdentityToken": {"not.a.token"},
	}.Encode()
	delay := 50 * time.Millisecond
	var last error
	for {
		last = s.probeSTS(ctx, client, form)
		if last == nil {
			last = s.probePorts()
		}
		if last == nil {
			return nil
		}
		t := time.NewTimer(delay)
		select {
		case <-s.proc.exited:
			t.Stop()
			return fmt.Errorf("weed exited before it was ready (%v): %w", s.proc.waitErr, last)
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("weed not ready: %w (last probe: %w)", ctx.Err(), last)
		case <-t.C:
		}
		delay = min(delay*2, 500*time.Millisecond)
	}
}

func (s *SeaweedFS) probeSTS(ctx context.Context, client *http.Client, form string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.endpoint+"/", strings.NewReader(form))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if !bytes.Contains(body, []byte("<ErrorResponse")) || bytes.Contains(body, []byte("ServiceUnavailable")) {
		return fmt.Errorf("sts probe: status %d", resp.StatusCode)
	}
	return nil
}

func (s *SeaweedFS) probePorts() error {
	for i, f := range weedPortFlags() {
		if f == "webdav.port" {
			continue // -webdav=false
		}
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(s.ports[i]), time.Second)
		if err != nil {
			return fmt.Errorf("-%s=%d not listening yet: %w", f, s.ports[i], err)
		}
		c.Close()
	}
	return nil
}

func (s *SeaweedFS) createBucket(ctx context.Context, bucket string) error {
	_, err := s.S3Client(s.AdminCredentials()).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)})
	if err != nil {
		return fmt.Errorf("create bucket %q: %w", bucket, err)
	}
	return nil
}

// Endpoint is the URL of both S3 and STS, http://127.0.0.1:<port>.
func (s *SeaweedFS) Endpoint() string { return s.endpoint }

// Bucket is the bucket the default policy allows.
func (s *SeaweedFS) Bucket() string { return s.bucket }

// RoleARN is the role the default IAM config lets DefaultServiceAccount assume.
func (s *SeaweedFS) RoleARN() string { return DefaultRoleARN }

// Dir is the instance's directory: data/, logs/ and iam.json.
func (s *SeaweedFS) Dir() string { return s.dir }

// LogDir holds weed's weed.stdout.log, weed.stderr.log and glog files.
func (s *SeaweedFS) LogDir() string { return s.logDir }

// Pid is weed's process id (and process group id).
func (s *SeaweedFS) Pid() int { return s.proc.pid() }

// AdminCredentials are static credentials of an admin identity, for test set-up and checks that
// must not depend on the web-identity path under test.
func (s *SeaweedFS) AdminCredentials() aws.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider(s.adminKey, s.adminSecret, "")
}

// S3Client returns an S3 client of this instance (path-style, Region) signing with creds.
func (s *SeaweedFS) S3Client(creds aws.CredentialsProvider) *s3.Client {
	return s3.New(s3.Options{
		Region:       Region,
		Credentials:  creds,
		BaseEndpoint: aws.String(s.endpoint),
		UsePathStyle: true,
	})
}

// STSClient returns an unsigned STS client of this instance, as AssumeRoleWithWebIdentity needs.
func (s *SeaweedFS) STSClient() *sts.Client {
	return sts.New(sts.Options{
		Region:       Region,
		Credentials:  aws.AnonymousCredentials{},
		BaseEndpoint: aws.String(s.endpoint),
	})
}

// LogTail returns the last lines of weed's stderr and glog warnings, for failure reports.
func (s *SeaweedFS) LogTail() string { return s.logTail() }

// Close stops weed: SIGTERM to its process group, SIGKILL after StopTimeout. It then removes the
// sockets weed could not and the instance's directory unless KeepDir. It is idempotent.
func (s *SeaweedFS) Close() error {
	s.closeOnce.Do(func() {
		if s.proc != nil {
			s.closeErr = s.proc.stop(s.stopTimeout)
		}
		s.cleanupSockets()
		if !s.keepDir && s.dir != "" {
			if err := os.RemoveAll(s.dir); err != nil {
				s.closeErr = errors.Join(s.closeErr, fmt.Errorf("close seaweedfs: %w", err))
			}
		}
	})
	return s.closeErr
}

func (s *SeaweedFS) cleanupSockets() {
	for i, f := range weedPortFlags() {
		if i >= len(s.ports) {
			break
		}
		p := grpcSocket(f, s.ports[i])
		if p == "" {
			continue
		}
		if fi, err := os.Lstat(p); err == nil && fi.Mode()&os.ModeSocket != 0 {
			os.Remove(p)
		}
	}
}

func (s *SeaweedFS) logTail() string {
	var b strings.Builder
	for _, name := range []string{"weed.stderr.log", "weed.WARNING"} {
		lines := tailLines(filepath.Join(s.logDir, name), 15)
		if len(lines) > 0 {
			fmt.Fprintf(&b, "\n--- %s ---\n%s", name, strings.Join(lines, "\n"))
		}
	}
	return b.String()
}

func tailLines(path string, n int) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return lines
}

// FindWeed returns the weed binary: $CREDSIDECAR_WEED, else .cache/bin/weed under the root of
// module ModulePath, found by walking up from the working directory.
func FindWeed() (string, error) { return findCached("weed", WeedEnv, "make weed") }

// RepoRoot walks up from the working directory to the directory whose go.mod declares
// ModulePath.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("repo root: %w", err)
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && modulePath(b) == ModulePath {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("repo root: no go.mod of module %s above the working directory", ModulePath)
		}
		dir = parent
	}
}

func modulePath(gomod []byte) string {
	for _, line := range strings.Split(string(gomod), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`)
		}
	}
	return ""
}

// pickPorts returns n distinct ports free on 127.0.0.1, drawn below the kernel's ephemeral range
// so that no outgoing connection can take one before weed binds it.
func pickPorts(n int) ([]int, error) {
	lo, hi := 20000, ephemeralFloor()
	if hi-lo < 1000 {
		lo = 10000
	}
	seen := make(map[int]bool, n)
	ports := make([]int, 0, n)
	for tries := 0; len(ports) < n; tries++ {
		if tries > 50*n {
			return nil, fmt.Errorf("pick ports: no %d free ports in [%d, %d)", n, lo, hi)
		}
		r, err := rand.Int(rand.Reader, big.NewInt(int64(hi-lo)))
		if err != nil {
			return nil, fmt.Errorf("pick ports: %w", err)
		}
		p := lo + int(r.Int64())
		if seen[p] {
			continue
		}
		seen[p] = true
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		ln.Close()
		ports = append(ports, p)
	}
	return ports, nil
}

// ephemeralFloor is the lowest port the kernel hands out to outgoing connections.
func ephemeralFloor() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil && v > 1024 {
				return v
			}
		}
	}
	return 32768
}

func durationOr(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
