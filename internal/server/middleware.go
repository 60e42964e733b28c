package server

import (
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"
)

// middleware wraps a handler; routes get theirs from one ordered list (see wrap).
type middleware func(http.Handler) http.Handler

// Wrap gives a handler built elsewhere (the IMDS emulation) the middleware every route here
// has, counting its requests under endpoint, so that all listeners share one list.
func Wrap(endpoint string, h http.Handler, opts ...Option) http.Handler {
	return wrap(endpoint, h, buildOptions(opts))
}

// wrap applies, outermost first: the observer, so it sees the status the others write, the
// loopback check when asked for, so nothing else runs for a refused request, then panic recovery
// around the handler.
func wrap(endpoint string, h http.Handler, o *options) http.Handler {
	list := []middleware{observe(endpoint, o.observer, o.log)}
	if o.loopbackOnly {
		list = append(list, loopbackOnly)
	}
	list = append(list, recoverPanics(endpoint, o.log))
	for i := len(list) - 1; i >= 0; i-- {
		h = list[i](h)
	}
	return h
}

// statusWriter remembers the status code for the observer and whether headers went out.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// observe counts each request, and logs it at debug level only: requests are traffic, and
// counts belong to metrics. The Authorization header is never logged.
func observe(endpoint string, obs Observer, log *slog.Logger) middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			sw := &statusWriter{ResponseWriter: w}
			next.ServeHTTP(sw, r)
			took := time.Since(start)
			if sw.code == 0 {
				sw.code = http.StatusOK
			}
			if obs != nil {
				obs.ObserveHTTP(endpoint, sw.code, took)
			}
			if log.Enabled(r.Context(), slog.LevelDebug) {
				log.LogAttrs(r.Context(), slog.LevelDebug, "http request",
					slog.String("endpoint", endpoint), slog.String("method", r.Method),
					slog.String("path", r.URL.Path), slog.Int("status", sw.code),
					slog.Duration("took", took), slog.String("remote", r.RemoteAddr))
			}
		})
	}
}

// recoverPanics turns a handler panic into a 500 and an error log, instead of net/http's
// plain-text log line and a dropped connection.
func recoverPanics(endpoint string, log *slog.Logger) middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				v := recover()
				if v == nil {
					return
				}
				if v == http.ErrAbortHandler { // net/http's signal to abort the response silently
					panic(v)
				}
				log.Error("panic serving request", "endpoint", endpoint, "panic", fmt.Sprint(v),
					"stack", string(debug.Stack()))
				if sw, ok := w.(*statusWriter); !ok || sw.code == 0 {
					writeError(w, internalError())
				}
			}()
			next.ServeHTTP(w, r)
		})
	}
}
