package reliability

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/credsidecar/credsidecar/internal/clock"
	"github.com/credsidecar/credsidecar/internal/server"
	"github.com/credsidecar/credsidecar/internal/testkit/await"
	"github.com/credsidecar/credsidecar/internal/testkit/podenv"
)

// wellBehaved is an SDK-like client that keeps asking the endpoint for credentials while a test
// abuses the server, and remembers every answer that was not 200 with credentials.
type wellBehaved struct {
	stop     chan struct{}
	done     chan struct{}
	requests atomic.Int64
	mu       sync.Mutex
	failures []string
	slowest  time.Duration
}

// maxWellBehaved bounds the client's requests, whatever the test's length.
const maxWellBehaved = 1_000_000

func startWellBehaved(s *podenv.Sidecar) *wellBehaved {
	w := &wellBehaved{stop: make(chan struct{}), done: make(chan struct{})}
	client := &http.Client{Timeout: guard}
	go func() {
		defer close(w.done)
		for w.requests.Load() < maxWellBehaved {
			select {
			case <-w.stop:
				return
			default:
			}
			began := time.Now()
			a, err := podenv.Get(client, s.URL, s.Auth)
			took := time.Since(began)
			w.requests.Add(1)
			w.mu.Lock()
			w.slowest = max(w.slowest, took)
			switch {
			case err != nil:
				w.failures = append(w.failures, err.Error())
			case a.Status != http.StatusOK || a.Creds.AccessKeyID == "":
				w.failures = append(w.failures, fmt.Sprintf("status %d: %s", a.Status, a.Body))
			}
			w.mu.Unlock()
		}
	}()
	return w
}

// checkpoint fails t if any request failed so far, and returns how many were made.
func (w *wellBehaved) checkpoint(t *testing.T, phase string) int64 {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.failures) > 0 {
		t.Errorf("%s: the well-behaved client got %d failures, first: %s", phase, len(w.failures), w.failures[0])
		w.failures = nil
	}
	return w.requests.Load()
}

// close stops the client and waits for its last request, which its HTTP timeout bounds.
func (w *wellBehaved) close(t *testing.T) {
	t.Helper()
	close(w.stop)
	await.Receive(t, 2*guard, w.done, "the well-behaved client's end")
}

// rawRequest sends request bytes on a new connection and reads one answer.
func rawRequest(t *testing.T, addr, request string) (*http.Response, []byte, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, guard)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	must(t, c.SetDeadline(time.Now().Add(guard)))
	if _, err := io.WriteString(c, request); err != nil {
		return nil, nil, err
	}
	method, _, _ := strings.Cut(request, " ")
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// TestHTTPAbuse throws what a hostile or broken local process might send at the real
// credentials server (the whole app, against SeaweedFS), while a well-behaved client keeps
// asking for credentials: each abuse gets a bounded, credential-free answer or a closed
// connection, and the well-behaved client gets 200 throughout.
func TestHTTPAbuse(t *testing.T) {
	s := startApp(t, clock.Real())
	addr := s.Addrs.Credentials.String()
	good := startWellBehaved(s)
	defer good.close(t)
	secret := func(body []byte) bool { return bytes.Contains(body, []byte(`"SecretAccessKey"`)) }

	t.Run("wrong methods", func(t *testing.T) {
		for _, m := range []string{"POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "CONNECT", "PROPFIND", "get"} {
			resp, body, err := rawRequest(t, addr, m+" /v1/credentials HTTP/1.1\r\nHost: "+addr+
				"\r\nAuthorization: "+s.Auth+"\r\nContent-Length: 0\r\n\r\n")
			if err != nil {
				t.Errorf("%s: %v", m, err)
				continue
			}
			if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET" || secret(body) {
				t.Errorf("%s: status %d Allow %q, want 405 with Allow: GET and no credentials", m, resp.StatusCode, resp.Header.Get("Allow"))
			}
		}
		good.checkpoint(t, "wrong methods")
	})

	t.Run("path traversal", func(t *testing.T) {
		tests := []struct {
			target string
			want   int
		}{
			{"/v1/credentials/../..", http.StatusTemporaryRedirect}, // to "/", which is a 404
			{"/v1/credentials/%2e%2e/%2e%2e", http.StatusNotFound},
			{"/v1/credentials/%2E%2E/%2E%2E/etc/passwd", http.StatusNotFound},
			{"/v1/%2e%2e/v1/credentials", http.StatusNotFound},
			{"/v1/credentials%2f..%2f..", http.StatusNotFound},
			{"/v1/credentials/..%2f..%2fetc%2fpasswd", http.StatusNotFound},
			{"/../../../etc/passwd", http.StatusTemporaryRedirect}, // to "/etc/passwd", a 404
			{"/etc/passwd", http.StatusNotFound},
			{"/v1/credentials/", http.StatusNotFound},
			{"/V1/CREDENTIALS", http.StatusNotFound},
			{"/v1/credentials%00", http.StatusNotFound},
			{"/v1/credentials\\..\\..", http.StatusNotFound},
			{"..", http.StatusBadRequest},
			{"*", http.StatusBadRequest},
		}
		for _, tt := range tests {
			for _, auth := range []string{s.Auth, ""} {
				req := "GET " + tt.target + " HTTP/1.1\r\nHost: " + addr + "\r\n"
				if auth != "" {
					req += "Authorization: " + auth + "\r\n"
				}
				resp, body, err := rawRequest(t, addr, req+"\r\n")
				if err != nil {
					t.Errorf("%q: %v", tt.target, err)
					continue
				}
				if resp.StatusCode != tt.want || secret(body) {
					t.Errorf("%q (auth %v): status %d, want %d and no credentials", tt.target, auth != "", resp.StatusCode, tt.want)
				}
				if loc := resp.Header.Get("Location"); loc != "" && !strings.HasPrefix(loc, "/") {
					t.Errorf("%q: redirected off the server to %q", tt.target, loc)
				}
			}
		}
		good.checkpoint(t, "path traversal")
	})

	t.Run("1 MiB headers", func(t *testing.T) {
		mib := strings.Repeat("a", 1<<20)
		var many strings.Builder
		for i := 0; many.Len() < 1<<20; i++ {
			fmt.Fprintf(&many, "X-Filler-%d: %s\r\n", i, strings.Repeat("b", 48))
		}
		for name, hdr := range map[string]string{
			"one large header":     "X-Large: " + mib + "\r\n",
			"large Authorization":  "Authorization: " + mib + "\r\n",
			"16,000 small headers": many.String(),
		} {
			status, err := sendLarge(addr, "GET /v1/credentials HTTP/1.1\r\nHost: "+addr+"\r\n"+hdr+"\r\n")
			// net/http answers 431 once MaxHeaderBytes is exceeded and closes; a reset that
			// overtakes the 431 while we are still writing is as good.
			if err == nil && status != http.StatusRequestHeaderFieldsTooLarge {
				t.Errorf("%s: status %d, want 431 or a closed connection", name, status)
			}
			if err != nil && !isConnClosed(err) {
				t.Errorf("%s: %v, want 431 or a closed connection", name, err)
			}
			t.Logf("%s: status %d, error %v", name, status, err)
		}
		good.checkpoint(t, "1 MiB headers")
	})

	t.Run("slowloris", func(t *testing.T) {
		const conns = 200
		began := time.Now()
		closed := make(chan time.Duration, conns)
		var wg sync.WaitGroup
		for range conns {
			c, err := net.DialTimeout("tcp", addr, guard)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				closed <- slowloris(c, addr, began)
			}()
		}
		// Each slowloris gives up by itself after guard.
		await.Done(t, 2*guard, "the slowloris connections' end", wg.Wait)
		close(closed)
		var slowest time.Duration
		for d := range closed {
			if d < 0 {
				t.Fatalf("a slowloris connection was still open after %s", guard)
			}
			slowest = max(slowest, d)
		}
		t.Logf("the server closed all %d slowloris connections within %v (ReadHeaderTimeout %v)", conns, slowest.Round(time.Millisecond), server.ReadHeaderTimeout)
		good.checkpoint(t, "slowloris")
	})

	t.Run("10,000 idle connections", func(t *testing.T) {
		want := 10000
		limit := raiseFileLimit(t)
		// This process holds the server's end of each connection besides its own files.
		if room := int(limit) - 1024; room < want {
			t.Logf("RLIMIT_NOFILE hard limit %d: scaling down from %d to %d connections", limit, want, room)
			want = room
		}
		before := good.checkpoint(t, "before idle connections")
		held := holdConnections(t, addr, s.Auth, want)
		// While they are held the server still answers a new client at once.
		a, err := podenv.Get(&http.Client{Timeout: guard}, s.URL, s.Auth)
		if err != nil || a.Status != http.StatusOK {
			t.Errorf("a new client while %d connections are held: %v", want, describe(a, err))
		}
		after := good.checkpoint(t, "while idle connections were held")
		held.release(t)
		t.Logf("%d idle keep-alive connections held by another process; the well-behaved client made %d requests meanwhile", want, after-before)
		if after == before {
			t.Error("the well-behaved client made no request while the connections were held")
		}
	})

	// Everything above is over: the server still serves.
	if a := s.Get(t, s.Auth); a.Status != http.StatusOK {
		t.Errorf("after the abuse: status %d", a.Status)
	}
	n := good.checkpoint(t, "end")
	good.mu.Lock()
	slowest := good.slowest
	good.mu.Unlock()
	t.Logf("well-behaved client: %d requests, none failed, slowest %v", n, slowest.Round(time.Millisecond))
}

// describe says what an answer was, for a failure message.
func describe(a *podenv.Answer, err error) string {
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("status %d", a.Status)
}

// sendLarge writes request while reading the answer, as the server may answer and close before
// the whole request is written.
func sendLarge(addr, request string) (int, error) {
	c, err := net.DialTimeout("tcp", addr, guard)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(guard)); err != nil {
		return 0, err
	}
	wrote := make(chan error, 1)
	go func() {
		_, err := io.WriteString(c, request)
		wrote <- err
	}()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	_ = c.Close() // unblocks the writer if the server stopped reading
	<-wrote
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

func isConnClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// slowloris sends a request's headers a byte every 50 ms, forever unless the server gives up on
// it, and returns how long after began the server closed the connection (-1: still open after
// guard).
func slowloris(c net.Conn, addr string, began time.Time) time.Duration {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(guard))
	if _, err := io.WriteString(c, "GET /v1/credentials HTTP/1.1\r\nHost: "+addr+"\r\n"); err != nil {
		return time.Since(began)
	}
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		// The server either closes silently or answers 408 and closes; both end the read.
		_, _ = io.Copy(io.Discard, c)
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	drip := "X-Slow: " + strings.Repeat("z", 1<<12)
	for i := 0; ; i++ {
		select {
		case <-gone:
			return time.Since(began)
		case <-tick.C:
			if time.Since(began) > guard {
				return -1
			}
			if _, err := c.Write([]byte{drip[i%len(drip)]}); err != nil {
				<-gone
				return time.Since(began)
			}
		}
	}
}

// raiseFileLimit raises this process's soft RLIMIT_NOFILE to its hard limit (never above) and
// returns it.
func raiseFileLimit(t *testing.T) uint64 {
	t.Helper()
	var lim syscall.Rlimit
	must(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim))
	if lim.Cur < lim.Max {
		old := lim.Cur
		lim.Cur = lim.Max
		must(t, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim))
		t.Cleanup(func() {
			lim.Cur = old
			_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
		})
	}
	return lim.Max
}

// holder is the child process holding the client ends of the idle connections, so that this
// process needs file descriptors only for the server's ends.
type holder struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

const (
	holdEnvAddr  = "CREDSIDECAR_HOLD_ADDR"
	holdEnvAuth  = "CREDSIDECAR_HOLD_AUTH"
	holdEnvConns = "CREDSIDECAR_HOLD_CONNS"
)

// holdConnections starts the test binary again as TestHelperHoldConnections, which opens n
// connections, asks for credentials once on each and keeps them open and idle, as n SDK
// clients between two fetches would. It returns once they are all open and answered.
func holdConnections(t *testing.T, addr, auth string, n int) *holder {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHoldConnections$", "-test.v")
	cmd.Env = append(os.Environ(), holdEnvAddr+"="+addr, holdEnvAuth+"="+auth, holdEnvConns+"="+strconv.Itoa(n))
	stdin, err := cmd.StdinPipe()
	must(t, err)
	stdout, err := cmd.StdoutPipe()
	must(t, err)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	must(t, cmd.Start())
	h := &holder{cmd: cmd, stdin: stdin}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if line := sc.Text(); strings.HasPrefix(line, "HOLDING ") || strings.HasPrefix(line, "HOLD FAILED ") {
				ready <- line
			}
		}
		close(ready)
	}()
	select {
	case line, ok := <-ready:
		if !ok || line != fmt.Sprintf("HOLDING %d", n) {
			h.release(t)
			t.Fatalf("holder process: %q, want HOLDING %d; stderr:\n%s", line, n, stderr.String())
		}
	case <-time.After(2 * guard):
		h.release(t)
		t.Fatalf("holder process did not report within %s", 2*guard)
	}
	return h
}

// release tells the holder to close its connections and waits for it to exit.
func (h *holder) release(t *testing.T) {
	t.Helper()
	_ = h.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- h.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("holder process: %v", err)
		}
	case <-time.After(guard):
		_ = h.cmd.Process.Kill()
		<-done
		t.Errorf("holder process did not exit within %s", guard)
	}
}

// TestHelperHoldConnections is not a test: TestHTTPAbuse runs the test binary again with this
// test selected and the environment set, to hold connections from another process.
func TestHelperHoldConnections(t *testing.T) {
	addr := os.Getenv(holdEnvAddr)
	if addr == "" {
		t.Skip("helper process of TestHTTPAbuse")
	}
	n, err := strconv.Atoi(os.Getenv(holdEnvConns))
	must(t, err)
	raiseFileLimit(t)
	auth := os.Getenv(holdEnvAuth)
	req := []byte("GET /v1/credentials HTTP/1.1\r\nHost: " + addr + "\r\nAuthorization: " + auth + "\r\n\r\n")

	conns := make([]net.Conn, n)
	var failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	next := atomic.Int64{}
	const dialers = 64
	for range dialers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				c, err := openAndAsk(addr, req)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		fmt.Printf("HOLD FAILED %d of %d: %v\n", f, n, firstErr.Load())
	} else {
		fmt.Printf("HOLDING %d\n", n)
	}
	// Hold until the parent closes stdin.
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		if c != nil {
			_ = c.Close()
		}
	}
}

// openAndAsk opens a connection, gets one 200 on it and leaves it open for keep-alive.
func openAndAsk(addr string, req []byte) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, guard)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			_ = c.Close()
		}
	}()
	if err := c.SetDeadline(time.Now().Add(guard)); err != nil {
		return nil, err
	}
	if _, err := c.Write(req); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		return nil, err
	}
	ok = true
	return c, nil
}
