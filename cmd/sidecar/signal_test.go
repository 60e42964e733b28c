package main

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runMainEnv makes the test binary run main() instead of the tests, so that a test can start
// the real command in a child process and signal it.
const runMainEnv = "CREDSIDECAR_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		os.Args = []string{"sidecar"}
		main()
		return
	}
	os.Exit(m.Run())
}

// TestSIGTERM sends SIGTERM to the real command: it must shut down in order and exit 0.
func TestSIGTERM(t *testing.T) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = []string{runMainEnv + "=1", "CREDSIDECAR_LOG_FORMAT=text"}
	for k, v := range validEnv(t) {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var log []string
	timeout := time.After(30 * time.Second)
	next := func() (string, bool) {
		select {
		case l, ok := <-lines:
			if ok {
				log = append(log, l)
			}
			return l, ok
		case <-timeout:
			t.Fatalf("timed out; log so far:\n%s", strings.Join(log, "\n"))
			return "", false
		}
	}
	for {
		l, ok := next()
		if !ok {
			t.Fatalf("exited before starting:\n%s", strings.Join(log, "\n"))
		}
		if strings.Contains(l, `msg="credsidecar starting"`) {
			break
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for {
		if _, ok := next(); !ok {
			break
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, strings.Join(log, "\n"))
	}
	all := strings.Join(log, "\n")
	if !strings.Contains(all, `msg="shutting down"`) || !strings.HasSuffix(all, `msg="credsidecar stopped"`) {
		t.Fatalf("no orderly shutdown:\n%s", all)
	}
}
