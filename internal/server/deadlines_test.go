package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/credsidecar/credsidecar/internal/testkit/await"
	"github.com/credsidecar/credsidecar/internal/testkit/testbed"
)

// coarsePair is a connection accepted through a coarse listener sweeping every tick, and the
// client's end of it.
func coarsePair(t *testing.T, tick time.Duration) (l *coarseListener, server net.Conn, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l = newCoarseListener(ln, tick)
	t.Cleanup(func() { _ = l.Close() })
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	server, err = l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = server.Close() })
	return l, server, client
}

// within runs f in a goroutine and returns its error, failing t when it takes longer than d.
func within(t *testing.T, d time.Duration, what string, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		t.Fatalf("%s: still blocked after %s", what, d)
		return nil
	}
}

// TestCoarseReadDeadline: a read blocked past its recorded deadline fails with the timeout
// error, never before the deadline; once a new deadline is recorded the connection reads again.
func TestCoarseReadDeadline(t *testing.T) {
	_, srv, client := coarsePair(t, 10*time.Millisecond)
	deadline := time.Now().Add(50 * time.Millisecond)
	if err := srv.SetReadDeadline(deadline); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	err := within(t, 10*time.Second, "read past its deadline", func() error { _, err := srv.Read(buf); return err })
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline returned %v, want os.ErrDeadlineExceeded", err)
	}
	if now := time.Now(); now.Before(deadline) {
		t.Fatalf("the read timed out %s before its deadline", deadline.Sub(now))
	}
	if err := srv.SetReadDeadline(time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	err = within(t, 10*time.Second, "read after a new deadline", func() error { _, err := io.ReadFull(srv, buf[:4]); return err })
	if err != nil || string(buf[:4]) != "ping" {
		t.Fatalf("read after a new deadline: %v %q, want ping", err, buf[:4])
	}
}

// TestCoarsePastDeadlineAtOnce: a deadline already past applies at once, whatever the tick, as
// net/http's abortPendingRead needs after every request; clearing it lets reads go on.
func TestCoarsePastDeadlineAtOnce(t *testing.T) {
	_, srv, client := coarsePair(t, time.Hour)
	buf := make([]byte, 16)
	errc := make(chan error, 1)
	go func() { _, err := srv.Read(buf); errc <- err }()
	if err := srv.SetReadDeadline(time.Unix(1, 0)); err != nil {
		t.Fatal(err)
	}
	err := within(t, 10*time.Second, "read aborted by a past deadline", func() error { return <-errc })
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("aborted read returned %v, want os.ErrDeadlineExceeded", err)
	}
	if err := srv.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	if err := within(t, 10*time.Second, "read after clearing", func() error { _, err := io.ReadFull(srv, buf[:4]); return err }); err != nil || string(buf[:4]) != "pong" {
		t.Fatalf("read after clearing the deadline: %v %q", err, buf[:4])
	}
}

// TestCoarseWriteDeadline: a write blocked on a client that does not read fails once its
// deadline passes, as with WriteTimeout on a bare connection.
func TestCoarseWriteDeadline(t *testing.T) {
	_, srv, _ := coarsePair(t, 10*time.Millisecond)
	if err := srv.SetWriteDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	err := within(t, 10*time.Second, "write to a client that never reads", func() error {
		for {
			if _, err := srv.Write(chunk); err != nil {
				return err
			}
		}
	})
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("blocked write returned %v, want os.ErrDeadlineExceeded", err)
	}
}

// TestCoarseSweeperStops: the sweeper outlives the listener while a connection it accepted is
// open (a graceful shutdown), and stops once that closes too.
func TestCoarseSweeperStops(t *testing.T) {
	l, srv, _ := coarsePair(t, 10*time.Millisecond)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.stopped:
		t.Fatal("the sweeper stopped while a connection was still open")
	default:
	}
	if err := srv.SetReadDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	err := within(t, 10*time.Second, "read on a connection of a closed listener", func() error { _, err := srv.Read(make([]byte, 1)); return err })
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read returned %v, want os.ErrDeadlineExceeded after the listener closed", err)
	}
	_ = srv.Close()
	if err := within(t, 10*time.Second, "sweeper stop", func() error { <-l.stopped; return nil }); err != nil {
		t.Fatal(err)
	}
}

// TestServeTLS: over ServeTLS, net/http still sees TLS (r.TLS, HTTP/2 by ALPN), and a client that
// opens a connection and never starts the handshake is cut by the read-header timeout.
func TestServeTLS(t *testing.T) {
	cert, err := testbed.NewServingCert(t.TempDir(), "serve-tls")
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan string, 1)
	srv := NewHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- fmt.Sprintf("%s tls=%v", r.Proto, r.TLS != nil)
	}), nil)
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert.TLS}, MinVersion: tls.VersionTLS12}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeTLS(ctx, srv, ln, time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := await.Receive(t, 10*time.Second, done, "ServeTLS's return"); err != nil {
			t.Error(err)
		}
	})
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: cert.Pool}, ForceAttemptHTTP2: true}}
	defer client.CloseIdleConnections() // before the clean-up's shutdown, which waits for them
	resp, err := client.Get("https://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := await.Receive(t, 10*time.Second, seen, "the request"); got != "HTTP/2.0 tls=true" {
		t.Fatalf("the handler saw %s, want HTTP/2.0 over TLS", got)
	}
	idle, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	start := time.Now()
	err = within(t, 10*time.Second, "a connection that never starts its handshake", func() error {
		_, err := idle.Read(make([]byte, 1))
		return err
	})
	if err == nil || time.Since(start) < ReadHeaderTimeout {
		t.Fatalf("stalled handshake: read returned %v after %s, want the connection closed after %s", err, time.Since(start), ReadHeaderTimeout)
	}
}
