// Package sidecarproc builds cmd/sidecar and runs the binary as a child process, for the
// benchmarks and the soak test: memory and start-up are properties of the process users
// deploy, so they are measured on it rather than on the app run in-process.
package sidecarproc

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/credsidecar/credsidecar/internal/testkit/testbed"
)

// Build compiles cmd/sidecar into dir as the Makefile's build would, and returns the binary's
// path.
func Build(ctx context.Context, dir string) (string, error) {
	root, err := testbed.RepoRoot()
	if err != nil {
		return "", fmt.Errorf("build sidecar: %w", err)
	}
	bin := filepath.Join(dir, "sidecar")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/sidecar")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build sidecar: %w: %s", err, bytes.TrimSpace(out))
	}
	return bin, nil
}

// Options says how to run the sidecar.
type Options struct {
	// Binary is the built sidecar. Required.
	Binary string
	// Dir holds the auth token file. Required.
	Dir string
	// RoleARN, TokenFile, STSEndpoint and Region are the sidecar's flags of the same names.
	RoleARN, TokenFile, STSEndpoint, Region string
	// Args are more flags, e.g. --log-level=debug.
	Args []string
	// Logs receives a copy of the sidecar's stderr (its JSON logs); nil keeps only the tail.
	Logs io.Writer
	// CPUs, if set, is a CPU list for taskset(1) (e.g. "0"): the sidecar runs pinned to those
	// CPUs, so that a benchmark can keep it off the load generator's. taskset execs the sidecar,
	// so Pid is still the sidecar's.
	CPUs string
	// Env is added to the sidecar's environment, e.g. GOMAXPROCS=1 to match a CPU set.
	Env []string
}

// Process is a running sidecar.
type Process struct {
	cmd *exec.Cmd
	// Started is when the process was started, just before fork/exec.
	Started time.Time
	// Addr is the credentials endpoint's host:port; URL its full URL.
	Addr, URL string
	// MetricsURL is the base URL of /metrics, /healthz and /readyz.
	MetricsURL string
	// Auth is the Authorization token, written to AuthFile before start.
	Auth string
	// AuthFile is the sidecar's --auth-token-file, for AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE.
	AuthFile string

	exited chan struct{}
	err    error // set before exited is closed

	mu      sync.Mutex
	lines   []string // the last logs, for errors
	changed chan struct{}
}

// maxLines bounds the logs kept for error messages.
const maxLines = 200

// Start picks free loopback ports, writes an auth token and starts the sidecar. Stop it with
// Stop; ctx kills it if it ends first.
func Start(ctx context.Context, o Options) (*Process, error) {
	if o.Binary == "" || o.Dir == "" {
		return nil, errors.New("start sidecar: Binary and Dir are required")
	}
	credPort, err := freePort()
	if err != nil {
		return nil, err
	}
	opsPort, err := freePort()
	if err != nil {
		return nil, err
	}
	p := &Process{
		Addr:       "127.0.0.1:" + strconv.Itoa(credPort),
		MetricsURL: "http://127.0.0.1:" + strconv.Itoa(opsPort),
		exited:     make(chan struct{}),
		changed:    make(chan struct{}),
	}
	p.URL = "http://" + p.Addr + "/v1/credentials"
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("start sidecar: auth token: %w", err)
	}
	p.Auth = hex.EncodeToString(b)
	authFile := filepath.Join(o.Dir, "auth-token-"+strconv.Itoa(credPort))
	p.AuthFile = authFile
	if err := os.WriteFile(authFile, []byte(p.Auth), 0o600); err != nil {
		return nil, fmt.Errorf("start sidecar: %w", err)
	}
	args := []string{"serve",
		"--role-arn=" + o.RoleARN,
		"--token-file=" + o.TokenFile,
		"--sts-endpoint=" + o.STSEndpoint,
		"--region=" + o.Region,
		"--listen=" + p.Addr,
		"--metrics-listen=127.0.0.1:" + strconv.Itoa(opsPort),
		"--auth-token-file=" + authFile,
	}
	args = append(args, o.Args...)
	name := o.Binary
	if o.CPUs != "" {
		taskset, err := exec.LookPath("taskset")
		if err != nil {
			return nil, fmt.Errorf("start sidecar pinned to cpus %s: %w", o.CPUs, err)
		}
		name, args = taskset, append([]string{"-c", o.CPUs, o.Binary}, args...)
	}
	cmd := exec.CommandContext(ctx, name, args...)
	// Only what the sidecar needs: the AWS_* of this environment must not steer it.
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + o.Dir}, o.Env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, fmt.Errorf("start sidecar: %w", err)
	}
	p.cmd = cmd
	p.Started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start sidecar: %w", err)
	}
	logs := o.Logs
	if logs == nil {
		logs = io.Discard
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			_, _ = fmt.Fprintln(logs, line)
			p.mu.Lock()
			p.lines = append(p.lines, line)
			if len(p.lines) > maxLines {
				p.lines = p.lines[len(p.lines)-maxLines:]
			}
			close(p.changed)
			p.changed = make(chan struct{})
			p.mu.Unlock()
		}
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Pid is the sidecar's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Tail returns the last lines the sidecar logged.
func (p *Process) Tail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// WaitLog blocks until the sidecar logs a line containing every one of want, and returns it.
func (p *Process) WaitLog(ctx context.Context, want ...string) (string, error) {
	for {
		p.mu.Lock()
		ch := p.changed
		for _, l := range p.lines {
			if containsAll(l, want) {
				p.mu.Unlock()
				return l, nil
			}
		}
		p.mu.Unlock()
		select {
		case <-ch:
		case <-p.exited:
			return "", fmt.Errorf("sidecar exited (%v) before logging %q; last logs:\n%s", p.err, want, p.Tail())
		case <-ctx.Done():
			return "", fmt.Errorf("sidecar did not log %q: %w; last logs:\n%s", want, ctx.Err(), p.Tail())
		}
	}
}

func containsAll(s string, want []string) bool {
	for _, w := range want {
		if !strings.Contains(s, w) {
			return false
		}
	}
	return true
}

// WaitServing returns once the credentials endpoint answers 200: it waits for the listeners
// (the start-up log line comes after both are bound), then asks until the answer is 200; each
// ask is held by the endpoint's cold-start wait, so there is no polling interval.
func (p *Process) WaitServing(ctx context.Context) (time.Time, error) {
	if _, err := p.WaitLog(ctx, `"msg":"credsidecar starting"`); err != nil {
		return time.Time{}, err
	}
	client := &http.Client{}
	defer client.CloseIdleConnections()
	for {
		status, err := p.Get(ctx, client)
		if err == nil && status == http.StatusOK {
			return time.Now(), nil
		}
		if ctx.Err() != nil {
			return time.Time{}, fmt.Errorf("sidecar not serving (last: status %d, %v): %w; last logs:\n%s", status, err, ctx.Err(), p.Tail())
		}
		select {
		case <-p.exited:
			return time.Time{}, fmt.Errorf("sidecar exited (%v); last logs:\n%s", p.err, p.Tail())
		default:
		}
	}
}

// Get asks the credentials endpoint once and returns the status.
func (p *Process) Get(ctx context.Context, client *http.Client) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", p.Auth)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// Metric returns the sum of every sample of the named metric on /metrics (all label sets),
// e.g. credsidecar_sts_requests_total.
func (p *Process) Metric(ctx context.Context, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.MetricsURL+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("scrape metrics: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, fmt.Errorf("scrape metrics: %w", err)
	}
	return SumMetric(body, name)
}

// SumMetric adds up the samples of name in a Prometheus text exposition.
func SumMetric(exposition []byte, name string) (float64, error) {
	var sum float64
	found := false
	for _, line := range strings.Split(string(exposition), "\n") {
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue // a longer name with this prefix
		}
		f := strings.Fields(rest[strings.LastIndex(rest, "}")+1:])
		if len(f) < 1 {
			return 0, fmt.Errorf("metric %s: bad line %q", name, line)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return 0, fmt.Errorf("metric %s: bad line %q", name, line)
		}
		sum += v
		found = true
	}
	if !found {
		return 0, fmt.Errorf("metric %s not exposed", name)
	}
	return sum, nil
}

// Stop sends SIGTERM and waits up to timeout for a clean exit, then kills. It returns the
// exit error, nil for exit code 0.
func (p *Process) Stop(timeout time.Duration) error {
	select {
	case <-p.exited:
		return p.err
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return p.err
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("sidecar did not stop within %s after SIGTERM: killed", timeout)
	}
}
