package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/credsidecar/credsidecar/internal/creds"
)

// Source gives the credentials to serve; *creds.Manager implements it.
type Source interface {
	// Servable returns credentials fit to serve, or nil; it must not block.
	Servable() *creds.Credentials
	// Wait blocks until Servable would return credentials, or ctx is done (then nil).
	Wait(ctx context.Context) *creds.Credentials
}

// Authorizer checks the Authorization header; *authtoken.Token implements it.
type Authorizer interface {
	// Matches reports, in constant time, whether got is the expected token.
	Matches(got string) bool
}

// Observer counts requests; *metrics.Metrics implements it.
type Observer interface {
	// ObserveHTTP records one answered request.
	ObserveHTTP(endpoint string, code int, took time.Duration)
}

// Endpoint names passed to Observer; the metrics package accepts exactly these.
const (
	EndpointCredentials = "credentials"
	EndpointHealthz     = "healthz"
	EndpointReadyz      = "readyz"
	EndpointMetrics     = "metrics"
	EndpointIMDS        = "imds"
	EndpointOther       = "other"
)

// Limits of every server built here. Clients are SDKs on loopback (or the kubelet and Prometheus
// for the ops port) that send a few hundred bytes of headers at once, so anything slow or large
// is broken or hostile.
const (
	// ReadHeaderTimeout bounds a slow client's headers (slowloris).
	ReadHeaderTimeout = 2 * time.Second
	// ReadTimeout bounds the whole request; none of the endpoints takes a body.
	ReadTimeout = 5 * time.Second
	// WriteTimeout covers a cold-start wait (DefaultColdStartWait) and a /metrics scrape.
	WriteTimeout = 10 * time.Second
	// IdleTimeout lets SDKs keep a connection between fetches without holding it forever.
	IdleTimeout = 60 * time.Second
	// MaxHeaderBytes is far above any real request: the auth token is at most 4 KiB.
	MaxHeaderBytes = 16 << 10
)

// NewHTTPServer returns an http.Server for h with the timeouts and limits above. net/http's own
// complaints (bad requests, write errors) go to log at debug level: they are traffic, not events.
func NewHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}

// Listen binds a TCP listener on addr. It is separate from Serve so that callers can bind
// port 0 and learn the address before serving.
func Listen(ctx context.Context, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, nil
}

// SplitAddr splits a listen address, host:port, and checks the port: the one rule for the
// address of every listener (credentials, metrics, IMDS). The host is the caller's concern.
func SplitAddr(addr string) (host, port string, err error) {
	host, port, err = net.SplitHostPort(addr)
	if err != nil {
		return "", "", errors.New("must be host:port, such as 127.0.0.1:9910")
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || strconv.FormatUint(n, 10) != port {
		return "", "", errors.New("port must be a number from 0 to 65535")
	}
	return host, port, nil
}

// CheckCredentialsListen says why addr may not carry the credentials endpoint, or returns nil:
// a loopback IP literal, unless allowNonLoopback, since anyone who reaches it and has the auth
// token gets the credentials, and a host name, since the SDKs accept only 127.0.0.1 (or ::1)
// for a plain-http endpoint.
func CheckCredentialsListen(addr string, allowNonLoopback bool) error {
	host, _, err := SplitAddr(addr)
	if err != nil {
		return err
	}
	ip, perr := netip.ParseAddr(host)
	switch {
	case host == "" && !allowNonLoopback:
		return errors.New("listens on every interface: give a loopback address such as 127.0.0.1, " +
			"or set --allow-non-loopback")
	case host != "" && perr != nil:
		return errors.New("host must be an IP address: SDKs accept only 127.0.0.1 (or ::1) for a plain-http endpoint")
	case perr == nil && !ip.IsLoopback() && !allowNonLoopback:
		return errors.New("not a loopback address: anyone who can reach it could fetch the credentials " +
			"with the token; use 127.0.0.1, or set --allow-non-loopback")
	}
	return nil
}

// Serve serves srv on ln, with coarse deadlines (see coarseListener), until ctx is done, then
// stops accepting connections and lets requests in flight finish for up to timeout before
// closing the rest. It returns nil after a clean shutdown, and an error if serving failed or the
// deadline cut requests off. It closes ln.
func Serve(ctx context.Context, srv *http.Server, ln net.Listener, timeout time.Duration) error {
	return serve(ctx, srv, withCoarseDeadlines(ln), timeout)
}

// ServeTLS is Serve over TLS with srv.TLSConfig: the coarse deadlines sit under TLS, so that
// net/http still sees a *tls.Conn (r.TLS, HTTP/2 by ALPN) and a stalled handshake is cut too.
// Like http.Server.ServeTLS, it adds h2 and http/1.1 to srv.TLSConfig.NextProtos.
func ServeTLS(ctx context.Context, srv *http.Server, ln net.Listener, timeout time.Duration) error {
	if srv.TLSConfig == nil {
		return errors.New("serve tls: the server has no TLSConfig")
	}
	if !slices.Contains(srv.TLSConfig.NextProtos, "h2") {
		srv.TLSConfig.NextProtos = append(srv.TLSConfig.NextProtos, "h2", "http/1.1")
	}
	return serve(ctx, srv, tls.NewListener(withCoarseDeadlines(ln), srv.TLSConfig), timeout)
}

func serve(ctx context.Context, srv *http.Server, ln net.Listener, timeout time.Duration) error {
	addr := ln.Addr().String()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("serve %s: %w", addr, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	var err error
	if serr := srv.Shutdown(sctx); serr != nil {
		_ = srv.Close() // the deadline passed: cut the remaining connections
		err = fmt.Errorf("shut down %s: %w", addr, serr)
	}
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = fmt.Errorf("serve %s: %w", addr, serr)
	}
	return err
}
