package security

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/credsidecar/credsidecar/internal/testkit/await"
	"github.com/credsidecar/credsidecar/internal/testkit/podenv"
	"github.com/credsidecar/credsidecar/internal/testkit/sidecarproc"
	"github.com/credsidecar/credsidecar/internal/testkit/testbed"
)

// guard bounds every wait of the suite.
const guard = 30 * time.Second

// binary is the sidecar built once for the test binary.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "credsidecar-security-")
	if err == nil {
		// Readable by the unprivileged uid the port-80 test runs the sidecar as.
		err = os.Chmod(dir, 0o755)
	}
	if err == nil {
		binary, err = sidecarproc.Build(context.Background(), dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "security: build the sidecar:", err)
		os.Exit(1)
	}
	code := podenv.Main(m, podenv.Options{Guard: guard})
	os.RemoveAll(dir)
	os.Exit(code)
}

// sidecar is a running built sidecar.
type sidecar struct {
	// CredentialsURL, MetricsURL and IMDSURL are read from its start-up log line.
	CredentialsURL, MetricsURL, IMDSURL string
	// AuthFile is its --auth-token-file.
	AuthFile string
	// Pid is its process id.
	Pid int

	mu    sync.Mutex
	lines []string
}

// logs returns everything the sidecar logged so far.
func (s *sidecar) logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.lines, "\n")
}

// runOptions say how to run the built sidecar beyond the World's defaults.
type runOptions struct {
	// Args are flags after serve and the World's role, token, STS and listen flags; a later
	// flag wins over an earlier one.
	Args []string
	// Env is added to the sidecar's otherwise empty environment.
	Env []string
	// Attr runs the process as another user, with capabilities.
	Attr *syscall.SysProcAttr
	// Dir holds the token and auth token; a fresh world-readable one when empty.
	Dir string
}

// startBinary runs the built sidecar for w's default role, waits for its start-up log line and
// for its first credentials, and stops it in t's clean-up.
func startBinary(t *testing.T, w *podenv.World, o runOptions) *sidecar {
	t.Helper()
	s, err := runBinary(t, w, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// runBinary is startBinary returning the failure (a sidecar that exits at start, say) instead of
// failing t.
func runBinary(t *testing.T, w *podenv.World, o runOptions) (*sidecar, error) {
	t.Helper()
	dir := o.Dir
	if dir == "" {
		dir = worldReadableDir(t)
	}
	proj := testbed.NewProjectorForTest(t, testbed.ProjectorOptions{Dir: filepath.Join(dir, "token"),
		Minter: w.Issuer.Minter(testbed.TokenRequest{Lifetime: time.Hour})})
	s := &sidecar{AuthFile: filepath.Join(dir, "auth", "auth-token")}
	args := append([]string{"serve", "--role-arn=" + w.Weed.RoleARN(), "--token-file=" + proj.Path(),
		"--sts-endpoint=" + w.Weed.Endpoint(), "--region=" + testbed.Region, "--listen=127.0.0.1:0",
		"--metrics-listen=127.0.0.1:0", "--auth-token-file=" + s.AuthFile}, o.Args...)
	cmd := exec.Command(binary, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}, o.Env...)
	cmd.SysProcAttr = o.Attr
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start sidecar: %w", err)
	}
	s.Pid = cmd.Process.Pid
	exited := make(chan error, 1)
	started, fetched := make(chan struct{}), make(chan struct{})
	go s.read(stderr, started, fetched)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		await.Receive(t, guard, exited, "the sidecar's exit after SIGTERM")
	})
	for _, step := range []struct {
		ch   chan struct{}
		what string
	}{{started, "its start-up log line"}, {fetched, "its first credentials"}} {
		select {
		case <-step.ch:
		case err := <-exited:
			exited <- err // for the clean-up
			return nil, fmt.Errorf("sidecar exited (%v) before %s; it logged:\n%s", err, step.what, s.logs())
		case <-time.After(guard):
			return nil, fmt.Errorf("sidecar: no %s within %s; it logged:\n%s", step.what, guard, s.logs())
		}
	}
	return s, nil
}

// read keeps the sidecar's log lines, takes the URLs from the start-up line and closes started,
// then fetched at the first "fetched credentials".
func (s *sidecar) read(r io.Reader, started, fetched chan struct{}) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var once1, once2 sync.Once
	for sc.Scan() {
		var rec struct {
			Msg         string `json:"msg"`
			Credentials string `json:"credentials_url"`
			Metrics     string `json:"metrics_addr"`
			IMDS        string `json:"imds_url"`
		}
		s.mu.Lock()
		s.lines = append(s.lines, sc.Text())
		s.mu.Unlock()
		if json.Unmarshal(sc.Bytes(), &rec) != nil {
			continue
		}
		switch rec.Msg {
		case "credsidecar starting":
			s.mu.Lock()
			s.CredentialsURL, s.MetricsURL, s.IMDSURL = rec.Credentials, "http://"+rec.Metrics, rec.IMDS
			s.mu.Unlock()
			once1.Do(func() { close(started) })
		case "fetched credentials":
			once2.Do(func() { close(fetched) })
		}
	}
}

// worldReadableDir is a temporary directory any uid can enter, with an "auth" directory inside
// that any uid can write: the port-80 test runs the sidecar as nobody.
func worldReadableDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "credsidecar-security-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "auth"), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "auth"), 0o777); err != nil {
		t.Fatal(err)
	}
	return dir
}
