package imds

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/credsidecar/credsidecar/internal/clock"
	"github.com/credsidecar/credsidecar/internal/creds"
	"github.com/credsidecar/credsidecar/internal/server"
)

// Source is where the served credentials come from; *creds.Manager is one.
type Source interface {
	// Servable returns the credentials fit to serve now, or nil when there are none. It must be
	// cheap: it runs on every request.
	Servable() *creds.Credentials
	// Wait blocks until Servable would return credentials, or until ctx is done (nil then).
	Wait(ctx context.Context) *creds.Credentials
}

const (
	// DefaultStartupWait is how long a request waits for credentials that are not there yet
	// before it gets a 503: long enough to cover a sidecar that is finishing its first STS call,
	// short of the Go SDK v2's 500 ms response-header timeout for IMDS.
	DefaultStartupWait = 300 * time.Millisecond
)

// Server is the IMDSv2 emulation. It is safe for concurrent use. It has no listener of its
// own: its Handler is served through internal/server like the sidecar's other endpoints, so it
// gets the same limits, request metrics and panic recovery.
type Server struct {
	src          Source
	region, zone string
	maxTokens    int
	startupWait  time.Duration
	clock        clock.Clock
	log          *slog.Logger
	rand         io.Reader

	tokens  *tokenStore
	booted  time.Time
	docs    atomic.Pointer[documents]
	warned  atomic.Bool // the token store has been full once; said so
	handler http.Handler
}

// Option configures a Server.
type Option func(*Server)

// WithAvailabilityZone sets the zone reported; it must be the region followed by one letter,
// because botocore derives the region by cutting the zone's last character. Default region+"a".
func WithAvailabilityZone(zone string) Option { return func(s *Server) { s.zone = zone } }

// WithMaxTokens bounds the live session tokens; default DefaultMaxTokens.
func WithMaxTokens(n int) Option { return func(s *Server) { s.maxTokens = n } }

// WithStartupWait sets how long a request waits for credentials before a 503; 0 answers at once.
func WithStartupWait(d time.Duration) Option { return func(s *Server) { s.startupWait = d } }

// WithClock sets the clock that expires session tokens; default the wall clock.
func WithClock(c clock.Clock) Option { return func(s *Server) { s.clock = c } }

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// WithRand sets the randomness that session tokens are drawn from; default crypto/rand.
func WithRand(r io.Reader) Option { return func(s *Server) { s.rand = r } }

// regionPattern accepts every AWS region name ("us-east-1", "us-gov-west-1", "cn-north-1",
// "us-isob-east-1") and test regions, and nothing that would need escaping anywhere.
var regionPattern = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// New returns a Server that serves src's credentials as an instance in region.
func New(src Source, region string, opts ...Option) (*Server, error) {
	if src == nil {
		return nil, errors.New("new imds server: no credentials source")
	}
	if len(region) > 64 || !regionPattern.MatchString(region) {
		return nil, fmt.Errorf("new imds server: region %q is not a region name such as us-east-1", region)
	}
	s := &Server{
		src:         src,
		region:      region,
		zone:        region + "a",
		maxTokens:   DefaultMaxTokens,
		startupWait: DefaultStartupWait,
		clock:       clock.Real(),
		log:         slog.New(slog.DiscardHandler),
		rand:        rand.Reader,
	}
	for _, o := range opts {
		o(s)
	}
	if len(s.zone) != len(region)+1 || s.zone[:len(region)] != region || s.zone[len(region)] < 'a' || s.zone[len(region)] > 'z' {
		return nil, fmt.Errorf("new imds server: availability zone %q is not region %q and one letter", s.zone, region)
	}
	if s.maxTokens < 1 {
		return nil, fmt.Errorf("new imds server: max tokens %d is below 1", s.maxTokens)
	}
	if s.startupWait < 0 {
		return nil, errors.New("new imds server: negative startup wait")
	}
	s.tokens = newTokenStore(s.maxTokens, s.rand)
	s.booted = s.clock.Now().UTC().Truncate(time.Second)
	s.handler = s.routes()
	return s, nil
}

// Handler returns the endpoint's handler with IMDS's own rules (session tokens, refusal of
// forwarded requests); the sidecar wraps it with server.Wrap and serves it with server.Serve.
func (s *Server) Handler() http.Handler { return s.handler }

// CheckLoopback reports whether addr ("host:port") names a loopback IP, the only place the
// endpoint may listen: anything that can reach it gets the pod's credentials. Host names are
// refused because what they resolve to can change.
func CheckLoopback(addr string) error {
	host, _, err := server.SplitAddr(addr)
	if err != nil {
		return fmt.Errorf("check imds address %q: %w", addr, err)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.Unmap().IsLoopback() {
		return fmt.Errorf("check imds address %q: host must be a loopback IP such as 127.0.0.1 or ::1", addr)
	}
	return nil
}

// Listen opens the endpoint's listener on addr after CheckLoopback approves it.
func Listen(addr string) (net.Listener, error) {
	if err := CheckLoopback(addr); err != nil {
		return nil, fmt.Errorf("listen imds: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen imds on %s: %w", addr, err)
	}
	return ln, nil
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /latest/api/token", s.putToken)
	// Leaves are also served with a trailing slash: botocore asks for
	// ".../placement/availability-zone/", and real IMDS answers both.
	leaf := func(path string, h http.HandlerFunc) {
		mux.Handle("GET "+path, s.authed(h))
		mux.Handle("GET "+path+"/{$}", s.authed(h))
	}
	leaf("/latest/meta-data/iam/security-credentials", s.roleName)
	leaf("/latest/meta-data/iam/security-credentials/{role}", s.credentials)
	leaf("/latest/meta-data/iam/info", s.iamInfo)
	leaf("/latest/meta-data/placement/region", s.text(s.region))
	leaf("/latest/meta-data/placement/availability-zone", s.text(s.zone))
	leaf("/latest/dynamic/instance-identity/document", s.identity)

	// Applied first to last, outermost first.
	middleware := []func(http.Handler) http.Handler{
		s.rejectForwarded,
	}
	var h http.Handler = mux
	for i := len(middleware) - 1; i >= 0; i-- {
		h = middleware[i](h)
	}
	return h
}

// proxyHeaders are the headers a proxy adds to a request it passes on: X-Forwarded-For and
// RFC 7239's Forwarded (which EC2's IMDS refuses), Via (RFC 9110, every conforming proxy), and
// the client-address headers of nginx and Envoy.
var proxyHeaders = []string{"X-Forwarded-For", "Forwarded", "Via", "X-Real-Ip", "X-Envoy-External-Address"}

// rejectForwarded refuses requests that came through a proxy, as IMDS does: a request forgery
// that makes some web-facing process fetch URLs for an attacker must not reach credentials.
func (s *Server) rejectForwarded(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, h := range proxyHeaders {
			if len(r.Header.Values(h)) > 0 {
				s.refuse(w, r, http.StatusForbidden, "forwarded requests are refused ("+h+")")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// authed lets a request through only with a live session token: IMDSv2 only.
func (s *Server) authed(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := r.Header.Values(TokenHeader)
		switch {
		case len(tok) == 0:
			s.refuse(w, r, http.StatusUnauthorized, "no session token: only IMDSv2 is served, PUT /latest/api/token first")
		case len(tok) != 1 || !s.tokens.valid(s.clock.Now(), tok[0]):
			s.refuse(w, r, http.StatusUnauthorized, "session token invalid or expired")
		default:
			h(w, r)
		}
	})
}

func (s *Server) putToken(w http.ResponseWriter, r *http.Request) {
	v := r.Header.Values(TTLHeader)
	if len(v) != 1 {
		s.refuse(w, r, http.StatusBadRequest, "give exactly one X-aws-ec2-metadata-token-ttl-seconds header, 1 to 21600")
		return
	}
	ttl, err := ParseTTL(v[0])
	if err != nil {
		s.refuse(w, r, http.StatusBadRequest, "X-aws-ec2-metadata-token-ttl-seconds must be 1 to 21600")
		return
	}
	tok, evicted, err := s.tokens.issue(s.clock.Now(), ttl)
	if err != nil {
		s.log.Error("imds session token not issued", "error", err)
		http.Error(w, "500 - Internal Server Error", http.StatusInternalServerError)
		return
	}
	if evicted && s.warned.CompareAndSwap(false, true) {
		s.log.Warn("imds session token store full: dropping the tokens nearest expiry; "+
			"their holders get 401 and fetch new ones (said once)", "max_tokens", s.maxTokens)
	}
	w.Header().Set(TTLHeader, strconv.Itoa(int(ttl/time.Second)))
	write(w, "text/plain", []byte(tok))
}

func (s *Server) roleName(w http.ResponseWriter, r *http.Request) {
	if d := s.known(r.Context()); d != nil {
		write(w, "text/plain", []byte(d.role))
		return
	}
	s.unavailable(w, r)
}

func (s *Server) credentials(w http.ResponseWriter, r *http.Request) {
	d := s.servable(r.Context())
	if d == nil {
		s.unavailable(w, r)
		return
	}
	if r.PathValue("role") != d.role {
		s.refuse(w, r, http.StatusNotFound, "no such role")
		return
	}
	write(w, "text/plain", d.credentials)
}

func (s *Server) iamInfo(w http.ResponseWriter, r *http.Request) {
	if d := s.known(r.Context()); d != nil {
		write(w, "text/plain", d.info)
		return
	}
	s.unavailable(w, r)
}

func (s *Server) identity(w http.ResponseWriter, r *http.Request) {
	if d := s.known(r.Context()); d != nil {
		write(w, "text/plain", d.identity)
		return
	}
	s.unavailable(w, r)
}

func (s *Server) text(v string) http.HandlerFunc {
	b := []byte(v)
	return func(w http.ResponseWriter, _ *http.Request) { write(w, "text/plain", b) }
}

// servable returns the documents for the credentials fit to serve now, waiting up to the
// startup wait for the first ones; nil when there are none.
func (s *Server) servable(ctx context.Context) *documents {
	c := s.src.Servable()
	if c == nil && s.startupWait > 0 {
		wctx, cancel := context.WithTimeout(ctx, s.startupWait)
		c = s.src.Wait(wctx)
		cancel()
	}
	if c == nil {
		return nil
	}
	return s.documentsFor(c)
}

// known is servable, except that the role, account and instance profile do not expire: while
// the cache is below the serving floor they are still answered from the last credentials.
func (s *Server) known(ctx context.Context) *documents {
	if c := s.src.Servable(); c != nil {
		return s.documentsFor(c)
	}
	if d := s.docs.Load(); d != nil {
		return d
	}
	return s.servable(ctx)
}

func (s *Server) unavailable(w http.ResponseWriter, r *http.Request) {
	s.refuse(w, r, http.StatusServiceUnavailable, "no credentials to serve yet, try again")
}

// refuse answers with an error. Refusals are logged at debug level only: a client retrying
// in a loop must not fill the log, and counts belong to metrics.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, code int, reason string) {
	path := r.URL.Path
	if len(path) > 200 {
		path = path[:200]
	}
	s.log.Debug("imds request refused", "method", r.Method, "path", path, "status", code, "reason", reason)
	http.Error(w, strconv.Itoa(code)+" - "+http.StatusText(code)+": "+reason, code)
}

func write(w http.ResponseWriter, contentType string, body []byte) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	_, _ = w.Write(body)
}
