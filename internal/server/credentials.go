package server

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/credsidecar/credsidecar/internal/clock"
	"github.com/credsidecar/credsidecar/internal/creds"
)

// CredentialsPath is where the credentials endpoint answers.
const CredentialsPath = "/v1/credentials"

// DefaultColdStartWait is how long a request waits for the first credentials before the
// endpoint answers 503: under the 1 s client timeout of the Java v2 and JavaScript SDKs, so
// they get an answer they retry rather than a timeout.
const DefaultColdStartWait = 800 * time.Millisecond

// Option configures the handlers built here.
type Option func(*options)

type options struct {
	log          *slog.Logger
	observer     Observer
	clock        clock.Clock
	coldWait     time.Duration
	loopbackOnly bool
}

func buildOptions(opts []Option) *options {
	o := &options{log: slog.New(slog.DiscardHandler), clock: clock.Real(), coldWait: DefaultColdStartWait}
	for _, opt := range opts {
		opt(o)
	}
	return o
}

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithObserver sets where request counts go.
func WithObserver(obs Observer) Option { return func(o *options) { o.observer = obs } }

// WithClock sets the clock used to refuse expired credentials.
func WithClock(c clock.Clock) Option { return func(o *options) { o.clock = c } }

// WithLoopbackOnly refuses, with a JSON 403, every request whose peer is not loopback or whose
// Host header does not name loopback (DNS rebinding): for the credentials and IMDS listeners,
// never for the metrics and probes, which the kubelet and Prometheus reach on the pod's IP.
func WithLoopbackOnly() Option { return func(o *options) { o.loopbackOnly = true } }

// WithColdStartWait sets how long a request waits for the first credentials.
func WithColdStartWait(d time.Duration) Option { return func(o *options) { o.coldWait = d } }

// credentialsHandler answers GET /v1/credentials.
type credentialsHandler struct {
	src      Source
	auth     Authorizer
	clock    clock.Clock
	coldWait time.Duration
	errs     errorAnswers

	// cache holds the answer for the credentials last served; mu makes sure that concurrent
	// requests seeing new credentials encode them once.
	cache   atomic.Pointer[encoded]
	mu      sync.Mutex
	encodes atomic.Int64 // for tests

	// dates holds the Date header of the current second (see date).
	dates atomic.Pointer[dateHeader]
}

// dateHeader is the Date header value shared by the answers of one second.
type dateHeader struct {
	unix  int64
	value []string
}

// encoded is the complete answer for one credentials value.
type encoded struct {
	creds *creds.Credentials
	body  []byte
	// length is the Content-Length header's value, built once like the body.
	length []string
}

// Header values of every answer, shared by all requests: net/http only reads a response's
// header values, and building them per request was half of the handler's allocations. Nothing
// here may write into them; Header().Add appends to a full slice, so it copies.
var (
	headerJSON    = []string{"application/json"}
	headerNoStore = []string{"no-store"}
	headerAllow   = []string{http.MethodGet}
)

// Role is one role's credentials source; Name "" is the unnamed role, served at
// /v1/credentials, and any other name at /v1/credentials/<Name>.
type Role struct {
	Name   string
	Source Source
}

// NewCredentials returns the credentials endpoint for one unnamed role: GET /v1/credentials and
// a JSON 404 for every other path, routed as by its own ServeMux.
func NewCredentials(src Source, auth Authorizer, opts ...Option) http.Handler {
	return NewCredentialsRoles([]Role{{Source: src}}, auth, opts...)
}

// NewCredentialsRoles is the credentials endpoint for several roles, each with its own cached
// answer, all behind the one auth token: the unnamed role at /v1/credentials, role NAME at
// /v1/credentials/NAME, and an authorized request for a role there is not gets a JSON 404
// naming it and the roles there are.
func NewCredentialsRoles(roles []Role, auth Authorizer, opts ...Option) http.Handler {
	routes, _ := newCredentialsRoles(roles, auth, opts...)
	return routes
}

// newCredentials also returns the unnamed role's handler itself, for tests to inspect.
func newCredentials(src Source, auth Authorizer, opts ...Option) (http.Handler, *credentialsHandler) {
	routes, handlers := newCredentialsRoles([]Role{{Source: src}}, auth, opts...)
	return routes, handlers[""]
}

func newCredentialsRoles(roles []Role, auth Authorizer, opts ...Option) (http.Handler, map[string]*credentialsHandler) {
	o := buildOptions(opts)
	errs := newErrorAnswers()
	rt := &credentialsRoutes{named: map[string]http.Handler{}}
	handlers := map[string]*credentialsHandler{}
	var names []string
	for _, r := range roles {
		h := &credentialsHandler{src: r.Source, auth: auth, clock: o.clock, coldWait: o.coldWait, errs: errs}
		handlers[r.Name] = h
		if r.Name == "" {
			rt.credentials = wrap(EndpointCredentials, h, o)
			continue
		}
		rt.named[r.Name] = wrap(EndpointCredentials, h, o)
		names = append(names, r.Name)
	}
	slices.Sort(names)
	if rt.credentials == nil {
		rt.credentials = wrap(EndpointCredentials, &unknownRole{auth: auth, errs: errs,
			answer: newAPIError(http.StatusNotFound, "NotFound", "this sidecar has no unnamed role (--role-arn); its roles are "+
				strings.Join(names, ", ")+": ask for "+CredentialsPath+"/NAME")}, o)
	}
	rt.unknown = wrap(EndpointCredentials, &unknownRole{auth: auth, errs: errs, names: names}, o)
	rt.mux = http.NewServeMux()
	rt.mux.Handle(CredentialsPath, rt.credentials)
	rt.mux.Handle(CredentialsPath+"/", http.HandlerFunc(rt.serveRole))
	rt.other = wrap(EndpointOther, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, errs.notFound)
	}), o)
	rt.mux.Handle("/", rt.other)
	return rt, handlers
}

// credentialsRoutes sends a request for exactly /v1/credentials straight to its handler, and
// every other one through the ServeMux. The ServeMux's matching was a fifth of the endpoint's
// handler cost (profile in issue 11) to find the one path SDKs ask for; a path it would clean,
// redirect or unescape, and CONNECT, still go through it, so every answer stays the ServeMux's.
type credentialsRoutes struct {
	credentials http.Handler            // the unnamed role, or unknownRole when there is none
	named       map[string]http.Handler // by role name
	unknown     http.Handler            // a role name not in named
	other       http.Handler            // every other path: 404
	mux         *http.ServeMux
}

func (rt *credentialsRoutes) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == CredentialsPath && r.URL.RawPath == "" && r.Method != http.MethodConnect {
		r.Pattern = CredentialsPath // as the ServeMux would set it
		rt.credentials.ServeHTTP(w, r)
		return
	}
	rt.mux.ServeHTTP(w, r)
}

// serveRole answers /v1/credentials/NAME, after the ServeMux cleaned the path.
func (rt *credentialsRoutes) serveRole(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, CredentialsPath+"/")
	if h, ok := rt.named[name]; ok {
		h.ServeHTTP(w, r)
		return
	}
	if name == "" || strings.Contains(name, "/") { // not a role's path at all
		rt.other.ServeHTTP(w, r)
		return
	}
	rt.unknown.ServeHTTP(w, r)
}

// unknownRole answers an authorized request for a role the sidecar does not serve with a JSON
// 404 naming it; the auth check comes first, so that only the pod learns the role names.
type unknownRole struct {
	auth   Authorizer
	errs   errorAnswers
	names  []string
	answer *apiError // fixed answer; nil builds one naming the role asked for
}

func (u *unknownRole) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !authorized(w, r, u.auth, &u.errs) {
		return
	}
	if u.answer != nil {
		writeError(w, u.answer)
		return
	}
	name := strings.TrimPrefix(r.URL.Path, CredentialsPath+"/")
	roles := "it serves no named roles"
	if len(u.names) > 0 {
		roles = "its roles are " + strings.Join(u.names, ", ")
	}
	writeError(w, newAPIError(http.StatusNotFound, "NotFound", fmt.Sprintf("no role %q in this sidecar: %s", quoteName(name), roles)))
}

// quoteName bounds and cleans a role name taken from a request path before it is echoed.
func quoteName(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

// authorized answers a request that is not a GET with exactly the right Authorization header,
// and reports whether it may go on. HEAD is refused too: no SDK sends it, and the protocol gives
// it no meaning. Exactly one Authorization header: with two, which one a proxy or the SDK meant
// is unclear.
func authorized(w http.ResponseWriter, r *http.Request, auth Authorizer, errs *errorAnswers) bool {
	if r.Method != http.MethodGet {
		w.Header()["Allow"] = headerAllow
		writeError(w, errs.method)
		return false
	}
	got := r.Header["Authorization"]
	switch {
	case len(got) == 0 || got[0] == "":
		writeError(w, errs.missingAuth)
		return false
	case len(got) > 1 || !auth.Matches(got[0]):
		writeError(w, errs.badAuth)
		return false
	}
	return true
}

func (h *credentialsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !authorized(w, r, h.auth, &h.errs) {
		return
	}
	now := h.clock.Now()
	c := fresh(h.src.Servable(), now)
	hdr := w.Header()
	if c != nil {
		hdr["Date"] = h.date(now)
	}
	if c == nil && h.cache.Load() == nil {
		// Only before anything was ever served: a first fetch is then in flight. Once served
		// credentials have run out (an STS outage past the floor), waiting would only slow
		// every SDK's retry loop down.
		c = h.waitFirst(r.Context())
	}
	if c == nil {
		h.unavailable(w)
		return
	}
	e := h.encode(c)
	hdr["Content-Type"] = headerJSON
	hdr["Content-Length"] = e.length
	hdr["Cache-Control"] = headerNoStore
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(e.body)
}

// explainer is a Source that can say why it has no credentials; *creds.Manager is one. Its
// errors carry no secrets, and the pod's own containers are the only callers who get this far.
type explainer interface {
	LastError() error
}

// maxReasonLen keeps a 503's message short whatever the error says.
const maxReasonLen = 1024

// unavailable answers 503, with the source's last error when it has one, so that the SDK's
// error in the application's log says why (for instance a trust-policy mismatch).
func (h *credentialsHandler) unavailable(w http.ResponseWriter) {
	ex, ok := h.src.(explainer)
	if !ok {
		writeError(w, h.errs.unavailable)
		return
	}
	err := ex.LastError()
	if err == nil {
		writeError(w, h.errs.unavailable)
		return
	}
	reason := err.Error()
	if len(reason) > maxReasonLen {
		reason = reason[:maxReasonLen] + "..."
	}
	writeError(w, newAPIError(http.StatusServiceUnavailable, unavailableCode,
		unavailableMessage+". Last STS error: "+reason))
}

// date returns the Date header for an answer made at now, from the clock reading the expiry
// check took. Without it net/http reads the clock again and formats the date for every answer:
// in the profile of issue 11 that was as much CPU as the auth check. Answers of the same second
// share one value; a waited-for answer (cold start) gets net/http's own.
func (h *credentialsHandler) date(now time.Time) []string {
	sec := now.Unix()
	if d := h.dates.Load(); d != nil && d.unix == sec {
		return d.value
	}
	d := &dateHeader{unix: sec, value: []string{now.UTC().Format(http.TimeFormat)}}
	h.dates.Store(d)
	return d.value
}

// waitFirst waits, briefly, for credentials a fetch in flight is about to publish.
func (h *credentialsHandler) waitFirst(ctx context.Context) *creds.Credentials {
	ctx, cancel := context.WithTimeout(ctx, h.coldWait)
	defer cancel()
	return fresh(h.src.Wait(ctx), h.clock.Now())
}

// fresh is the endpoint's own guard against serving expired credentials, whatever the source
// says: several SDKs keep using credentials that look expired.
func fresh(c *creds.Credentials, now time.Time) *creds.Credentials {
	if c == nil || !c.Expiration.After(now) {
		return nil
	}
	return c
}

// encode returns the answer for c, encoding it only the first time c is seen.
func (h *credentialsHandler) encode(c *creds.Credentials) *encoded {
	if e := h.cache.Load(); e != nil && e.creds == c {
		return e
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if e := h.cache.Load(); e != nil && e.creds == c {
		return e
	}
	body, err := json.Marshal(credentialsJSON{
		AccessKeyID:     c.AccessKeyID,
		SecretAccessKey: c.SecretAccessKey,
		Token:           c.SessionToken,
		Expiration:      FormatExpiration(c.Expiration),
		AccountID:       c.AccountID,
		RoleARN:         c.RoleARN,
	})
	if err != nil {
		panic("server: encode credentials: " + err.Error()) // plain strings always encode
	}
	e := &encoded{creds: c, body: body, length: []string{strconv.Itoa(len(body))}}
	h.encodes.Add(1)
	h.cache.Store(e)
	return e
}

// credentialsJSON is the answer's shape; the key names are what every SDK reads.
type credentialsJSON struct {
	AccessKeyID     string `json:"AccessKeyId"`
	SecretAccessKey string `json:"SecretAccessKey"`
	Token           string `json:"Token"`
	Expiration      string `json:"Expiration"`
	AccountID       string `json:"AccountId,omitempty"`
	RoleARN         string `json:"RoleArn,omitempty"`
}

// FormatExpiration writes t as the SDKs parse it: RFC 3339 in UTC, whole seconds, with "Z".
// Fractions are dropped, never rounded up, so the stated expiry is never later than the real one.
func FormatExpiration(t time.Time) string {
	return t.UTC().Truncate(time.Second).Format(time.RFC3339)
}
