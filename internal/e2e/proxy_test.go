package e2e

import (
	"bytes"
	"crypto/sha256"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
)

// stsRecord is one AssumeRoleWithWebIdentity call that passed the proxy.
type stsRecord struct {
	// tokenSHA256 is the hash of the WebIdentityToken form value; the token itself is a secret.
	tokenSHA256 [sha256.Size]byte
	// status is SeaweedFS's HTTP status, or 502 when it could not be reached.
	status int
}

// recordingProxy sits between the sidecar and SeaweedFS's STS. It is not a fake: every request
// goes to the real SeaweedFS and every answer comes back unchanged. It only notes, for each
// AssumeRoleWithWebIdentity call, which token was sent and what status came back, so a test
// can tell which token the sidecar exchanged.
type recordingProxy struct {
	srv     *httptest.Server
	rp      *httputil.ReverseProxy
	records chan stsRecord // every record, as it completes
	dropped atomic.Int64   // records the channel had no room for

	mu  sync.Mutex
	all []stsRecord
}

func startRecordingProxy(t *testing.T, target string) *recordingProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatalf("proxy target: %v", err)
	}
	p := &recordingProxy{records: make(chan stsRecord, 64)}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(u) },
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			t.Logf("recording proxy: %v", err)
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	p.srv = httptest.NewServer(p) // 127.0.0.1
	t.Cleanup(p.srv.Close)
	return p
}

// URL is the STS endpoint the sidecar is given.
func (p *recordingProxy) URL() string { return p.srv.URL }

func (p *recordingProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// STS query-protocol calls are small form posts; the body is read to find the action and
	// the token, then handed on as it was.
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		http.Error(w, "recording proxy: read request body", http.StatusRequestEntityTooLarge)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	form, err := url.ParseQuery(string(body))
	if err != nil || form.Get("Action") != "AssumeRoleWithWebIdentity" {
		p.rp.ServeHTTP(w, r)
		return
	}
	sw := &statusWriter{ResponseWriter: w}
	p.rp.ServeHTTP(sw, r)
	rec := stsRecord{tokenSHA256: sha256.Sum256([]byte(form.Get("WebIdentityToken"))), status: sw.code()}
	p.mu.Lock()
	p.all = append(p.all, rec)
	p.mu.Unlock()
	select {
	case p.records <- rec:
	default:
		p.dropped.Add(1)
	}
}

// list returns every record so far.
func (p *recordingProxy) list() []stsRecord {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]stsRecord(nil), p.all...)
}

// statusWriter remembers the status the proxied answer carried.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 { // 1xx answers precede the real one
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the real writer, which ReverseProxy flushes.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}
