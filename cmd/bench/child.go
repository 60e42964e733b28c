package main

import (
	"bufio"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/credsidecar/credsidecar/internal/server"
)

// bareHandler is the limit of this stack: net/http answering the sidecar's exact bytes after the
// same Authorization check (one header, constant-time compare), and nothing else: no ServeMux,
// no middleware, no metrics, no credentials lookup.
func bareHandler(body, auth []byte) http.Handler {
	length := []string{strconv.Itoa(len(body))}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := r.Header["Authorization"]
		if len(got) != 1 || subtle.ConstantTimeCompare([]byte(got[0]), auth) != 1 {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		h := w.Header()
		h["Content-Type"] = []string{"application/json"}
		h["Content-Length"] = length
		h["Cache-Control"] = []string{"no-store"}
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
	})
}

// Kinds of bare server child.
const (
	// childBare is plain net/http: the limit.
	childBare = "bare"
	// childBareLimits is the same handler in the http.Server the sidecar builds
	// (server.NewHTTPServer: its timeouts and header limit), to tell the server's configuration
	// apart from the handler and middleware in the sidecar's cost.
	childBareLimits = "bare-limits"
)

// runChild is the bench binary re-executed as a bare server: it prints its address and serves
// until it is signalled.
func runChild(ctx context.Context, s settings, stdout io.Writer) error {
	if s.child != childBare && s.child != childBareLimits {
		return fmt.Errorf("unknown child %q", s.child)
	}
	body, err := os.ReadFile(s.childBody)
	if err != nil {
		return err
	}
	auth, err := os.ReadFile(s.childAuth)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "LISTENING %s\n", ln.Addr())
	if s.child == childBareLimits {
		// The sidecar's http.Server served the sidecar's way: its timeouts, header limit and
		// coarse deadlines.
		return server.Serve(ctx, server.NewHTTPServer(bareHandler(body, auth), nil), ln, 5*time.Second)
	}
	srv := &http.Server{Handler: bareHandler(body, auth)}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// child is a running bare server.
type child struct {
	cmd  *exec.Cmd
	addr string
	done chan error
}

// startBare re-executes this binary as a bare server of kind answering body to auth, pinned to
// plan's server CPU when plan is pinned.
func startBare(ctx context.Context, kind, dir string, body []byte, auth string, plan cpuPlan) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	bodyFile, authFile := dir+"/"+kind+"-body", dir+"/"+kind+"-auth"
	if err := os.WriteFile(bodyFile, body, 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(authFile, []byte(auth), 0o600); err != nil {
		return nil, err
	}
	name, args := self, []string{"-child=" + kind, "-child-body=" + bodyFile, "-child-auth=" + authFile}
	if plan.pinned() {
		// taskset execs the child, so the pid is the server's.
		name, args = "taskset", append([]string{"-c", plan.server, self}, args...)
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), plan.serverEnv()...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, done: make(chan error, 1)}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("bare server did not start: %w", err)
	}
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "LISTENING ")
	if !ok {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("bare server said %q", line)
	}
	c.addr = addr
	go func() { c.done <- cmd.Wait() }()
	return c, nil
}

// pid is the server's process id.
func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) stop() error {
	_ = c.cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-c.done:
		return err
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
		return errors.New("bare server did not stop: killed")
	}
}
