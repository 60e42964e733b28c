// Package server owns the sidecar's two HTTP endpoints, and the server constructor, lifecycle
// and middleware every listener of the sidecar goes through (the IMDS emulation's handler is
// served with Wrap, NewHTTPServer and Serve too).
//
// The credentials endpoint speaks the container-credentials protocol the AWS SDKs use with
// AWS_CONTAINER_CREDENTIALS_FULL_URI: GET /v1/credentials with the token in the Authorization
// header. It always answers from memory: the JSON for each credentials value is encoded once,
// and a request costs a token check and a write. Only at cold start, before the first STS call
// has returned, does a request wait, and then for less than the SDKs' 1 s client timeout.
//
// The ops endpoint, on its own listener, serves /healthz, /readyz and /metrics.
//
// Typical wiring:
//
//	ln, err := server.Listen(ctx, "127.0.0.1:9910")
//	h := server.NewCredentials(manager, token, server.WithObserver(m), server.WithLogger(log))
//	srv := server.NewHTTPServer(h, log)
//	err = server.Serve(ctx, srv, ln, 5*time.Second) // returns after a graceful shutdown
package server
