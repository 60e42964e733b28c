package server

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/credsidecar/credsidecar/internal/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// discardWriter is a ResponseWriter that keeps only the status, so that a benchmark measures
// the handler rather than a recorder.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(code int)        { w.status = code }

// BenchmarkCredentialsHandler is one GET /v1/credentials through the endpoint's whole handler
// (routing, metrics, panic recovery, auth check, cached answer) without the network: the part of
// a request's cost this package decides.
func BenchmarkCredentialsHandler(b *testing.B) {
	m := metrics.New(prometheus.NewRegistry(), "bench")
	h := NewCredentials(fixedSource(testCreds(time.Now().Add(time.Hour))), loadToken(b), WithObserver(m))
	req, err := http.NewRequest(http.MethodGet, "http://127.0.0.1"+CredentialsPath, nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Authorization", authToken)
	w := &discardWriter{}
	b.ReportAllocs()
	for b.Loop() {
		w.h = http.Header{} // net/http gives every request a fresh map
		h.ServeHTTP(w, req)
	}
	if w.status != http.StatusOK {
		b.Fatalf("status %d, want 200", w.status)
	}
}

// BenchmarkCredentialsLoopback is the same request over a keep-alive loopback connection, through
// the production http.Server (NewHTTPServer: timeouts and header limit) or a bare one, so that
// the cost of each layer shows: "bare" is net/http with no limits, "limits" the production
// server, "read-timeout-as-header" the production server with ReadTimeout equal to
// ReadHeaderTimeout (one read deadline per request fewer).
func BenchmarkCredentialsLoopback(b *testing.B) {
	m := metrics.New(prometheus.NewRegistry(), "bench")
	h := NewCredentials(fixedSource(testCreds(time.Now().Add(time.Hour))), loadToken(b), WithObserver(m))
	servers := []struct {
		name string
		srv  func() *http.Server
	}{
		{"bare", func() *http.Server { return &http.Server{Handler: h} }},
		{"limits", func() *http.Server { return NewHTTPServer(h, nil) }},
		{"read-timeout-as-header", func() *http.Server {
			s := NewHTTPServer(h, nil)
			s.ReadTimeout = s.ReadHeaderTimeout
			return s
		}},
	}
	for _, sv := range servers {
		b.Run(sv.name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			srv := sv.srv()
			go func() { _ = srv.Serve(ln) }()
			b.Cleanup(func() { _ = srv.Close() })
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			if err := c.SetDeadline(time.Now().Add(time.Minute)); err != nil {
				b.Fatal(err)
			}
			req := []byte("GET " + CredentialsPath + " HTTP/1.1\r\nHost: " + ln.Addr().String() +
				"\r\nAuthorization: " + authToken + "\r\nAccept: application/json\r\n\r\n")
			br := bufio.NewReader(c)
			want := []byte("Content-Length: " + strconv.Itoa(len(okBodyFor(b, h))) + "\r\n")
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Write(req); err != nil {
					b.Fatal(err)
				}
				if err := readAnswer(br, want); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// okBodyFor is the endpoint's answer, fetched once outside the timed loop.
func okBodyFor(tb testing.TB, h http.Handler) []byte {
	tb.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://127.0.0.1"+CredentialsPath, nil)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", authToken)
	rec := &bodyRecorder{h: http.Header{}}
	h.ServeHTTP(rec, req)
	if rec.status != http.StatusOK {
		tb.Fatalf("status %d, want 200", rec.status)
	}
	return rec.body.Bytes()
}

type bodyRecorder struct {
	h      http.Header
	status int
	body   bytes.Buffer
}

func (w *bodyRecorder) Header() http.Header         { return w.h }
func (w *bodyRecorder) Write(b []byte) (int, error) { return w.body.Write(b) }
func (w *bodyRecorder) WriteHeader(code int)        { w.status = code }

// readAnswer reads one 200 answer whose headers include wantLength, and its body.
func readAnswer(br *bufio.Reader, wantLength []byte) error {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(line, []byte("HTTP/1.1 200 ")) {
		return &answerError{line: string(line)}
	}
	n := -1
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			break
		}
		if bytes.Equal(line, wantLength) {
			n, _ = strconv.Atoi(string(bytes.TrimSpace(line[len("Content-Length:"):])))
		}
	}
	if n < 0 {
		return &answerError{line: "no or unexpected Content-Length"}
	}
	_, err = br.Discard(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

type answerError struct{ line string }

func (e *answerError) Error() string { return "unexpected answer: " + e.line }
