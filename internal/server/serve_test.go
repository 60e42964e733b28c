package server

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credsidecar/credsidecar/internal/creds"
	"github.com/credsidecar/credsidecar/internal/testkit/await"
)

func TestListen(t *testing.T) {
	ln, err := Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := Listen(context.Background(), ln.Addr().String()); err == nil || !strings.Contains(err.Error(), "listen on 127.0.0.1:") {
		t.Fatalf("second Listen on a bound port: %v", err)
	}
}

// TestServeShutsDownGracefully cancels Serve's context while a request waits for the first
// credentials: the request still completes with 200, new connections are refused, and Serve
// returns nil.
func TestServeShutsDownGracefully(t *testing.T) {
	src := newColdSource(testCreds(testStart.Add(time.Hour)), 1)
	h := NewCredentials(src, loadToken(t), WithClock(fakeClock()), WithColdStartWait(time.Minute))
	ln, err := Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, NewHTTPServer(h, nil), ln, 30*time.Second) }()

	got := make(chan string, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+CredentialsPath, nil)
		req.Header.Set("Authorization", authToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			got <- err.Error()
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(body)
	}()
	await.Receive(t, 30*time.Second, src.arrived, "the request in flight")
	cancel()
	// Shutdown closes the listener first; wait until new connections are refused.
	for refuseBy := time.Now().Add(30 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		if time.Now().After(refuseBy) {
			t.Fatal("the listener still accepted connections 30 s after the shutdown began")
		}
		c.Close()
		select {
		case err := <-served:
			t.Fatalf("Serve returned %v with a request in flight", err)
		default:
		}
	}
	close(src.release)
	if body := await.Receive(t, 30*time.Second, got, "the in-flight request's answer"); body != okBody {
		t.Fatalf("in-flight request got %s", body)
	}
	if err := await.Receive(t, 30*time.Second, served, "Serve's return"); err != nil {
		t.Fatalf("Serve = %v, want nil", err)
	}
}

// TestServeShutdownDeadline leaves a request hanging: Serve must give up after its timeout,
// close the connection and say so.
func TestServeShutdownDeadline(t *testing.T) {
	src := newColdSource(testCreds(testStart.Add(time.Hour)), 1)
	h := NewCredentials(src, loadToken(t), WithColdStartWait(time.Minute))
	ln, err := Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, NewHTTPServer(h, nil), ln, 20*time.Millisecond) }()
	reqDone := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, "http://"+ln.Addr().String()+CredentialsPath, nil)
		req.Header.Set("Authorization", authToken)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		reqDone <- err
	}()
	await.Receive(t, 30*time.Second, src.arrived, "the request in flight")
	cancel()
	err = await.Receive(t, 30*time.Second, served, "Serve's return after its shutdown deadline")
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "shut down 127.0.0.1:") {
		t.Fatalf("Serve = %v, want a shutdown deadline error", err)
	}
	if err := await.Receive(t, 30*time.Second, reqDone, "the hanging request's end"); err == nil {
		t.Fatal("hanging request completed; want its connection closed")
	}
	close(src.release)
}

func TestServeFailsOnClosedListener(t *testing.T) {
	ln, err := Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	err = Serve(context.Background(), NewHTTPServer(http.NotFoundHandler(), nil), ln, time.Second)
	if err == nil || !strings.Contains(err.Error(), "serve 127.0.0.1:") {
		t.Fatalf("Serve = %v, want a serve error", err)
	}
}

// TestSecretsNeverLogged drives every path of both endpoints with debug logging and checks that
// neither the auth token nor any part of the credentials reaches the log.
func TestSecretsNeverLogged(t *testing.T) {
	log, logs := debugLogger()
	valid := testCreds(testStart.Add(time.Hour))
	var cur atomic.Pointer[creds.Credentials]
	src := funcSource{servable: cur.Load}
	credsSrv := startServer(t, NewCredentials(src, loadToken(t), WithLogger(log), WithClock(fakeClock()),
		WithColdStartWait(time.Millisecond)), log)
	requests := []struct {
		method, path, auth string
	}{
		{http.MethodGet, CredentialsPath, authToken},
		{http.MethodGet, CredentialsPath, authToken + "x"},
		{http.MethodGet, CredentialsPath, ""},
		{http.MethodPost, CredentialsPath, authToken},
		{http.MethodGet, "/other?token=" + authToken, authToken},
	}
	for _, c := range []*creds.Credentials{nil, valid} {
		cur.Store(c)
		for _, r := range requests {
			req, _ := http.NewRequest(r.method, credsSrv.URL+r.path, nil)
			if r.auth != "" {
				req.Header.Set("Authorization", r.auth)
			}
			resp, err := credsSrv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	out := logs.String()
	if !strings.Contains(out, `"msg":"http request"`) {
		t.Fatalf("debug request logs missing, so the check below proves nothing:\n%s", out)
	}
	for _, secret := range []string{authToken, secretKey, sessionToken, valid.AccessKeyID} {
		if strings.Contains(out, secret) {
			t.Fatalf("log reveals a secret %q:\n%s", secret[:6], out)
		}
	}
}

func TestNoRequestLogAtInfo(t *testing.T) {
	logs := &logBuffer{}
	infoLog := newInfoLogger(logs)
	ts := startServer(t, NewCredentials(fixedSource(testCreds(testStart.Add(time.Hour))), loadToken(t),
		WithLogger(infoLog), WithClock(fakeClock())), infoLog)
	req, _ := http.NewRequest(http.MethodGet, ts.URL+CredentialsPath, nil)
	req.Header.Set("Authorization", authToken)
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if out := logs.String(); out != "" {
		t.Fatalf("a successful request logged at info level:\n%s", out)
	}
}
