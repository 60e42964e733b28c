package creds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/credsidecar/credsidecar/internal/awsarn"
	"github.com/credsidecar/credsidecar/internal/clock"
)

// Backoff after failed fetches.
const (
	// retryBase is the first nominal delay after a transient failure; it doubles per failure.
	retryBase = time.Second
	// retryMax caps the nominal delay after transient failures.
	retryMax = time.Minute
	// terminalBackoff is the wait after an answer that retrying cannot fix; a token rotation cuts it short.
	terminalBackoff = time.Minute
	// minRefreshDelay keeps credentials that live shorter than the refresh window from
	// turning the loop into a stream of STS calls.
	minRefreshDelay = time.Minute
	// minKickInterval bounds how often token changes alone can cause STS calls.
	minKickInterval = time.Second
)

// Option changes a Manager's collaborators, mostly for tests.
type Option func(*Manager)

// WithClock sets the clock that times refreshes, backoff and token polling.
func WithClock(c clock.Clock) Option { return func(m *Manager) { m.clock = c } }

// WithLogger sets the logger for events (fetches, rotations, failures).
func WithLogger(l *slog.Logger) Option { return func(m *Manager) { m.log = l } }

// WithObserver adds a receiver of the events that metrics count; every observer added gets
// every event, in the order they were added. It is for counting: a part that must act on new
// credentials subscribes to Updated instead.
func WithObserver(o Observer) Option {
	return func(m *Manager) {
		if o != nil {
			m.obs = append(m.obs, o)
		}
	}
}

// Explain names the likely cause of a failed fetch: the id of the finding `sidecar check` would
// report, and the cause and fix in the token's terms ("" when there is nothing to add).
type Explain func(err error, code string, claims *TokenClaims) (id, cause string)

// WithExplain sets how failed fetches are explained in the logs; package findings owns the
// explanations (app wires findings.ExplainSTS), so that the serve logs and check agree.
func WithExplain(f Explain) Option { return func(m *Manager) { m.explain = f } }

// WithRand sets the source of jitter; it must return values in [0, 1).
func WithRand(f func() float64) Option { return func(m *Manager) { m.rand = f } }

// Manager keeps one set of credentials for one role fresh: it owns the token watch, the STS
// exchange, the cache and the refresh loop. Readers call Servable, which never blocks and
// never calls STS.
type Manager struct {
	cfg   Config
	api   STSAPI
	clock clock.Clock
	log   *slog.Logger
	obs   observers
	rand  func() float64
	// explain names the cause of a failed fetch in its log line; nil logs none.
	explain Explain
	check   tokenChecker // WithTokenCheck; used by the refresh loop only
	ext     extensions   // from cfg.Chain and the session policies

	cur     atomic.Pointer[Credentials]
	lastErr atomic.Pointer[errBox]
	// token is the token as the watcher last read it; kick tells the refresh loop it changed.
	token atomic.Pointer[tokenState]
	kick  chan struct{}

	// peers are the other managers of this one's Group: its token watcher hands every token
	// version to them too. inGroup marks every member, which only the Group may run.
	peers   []*Manager
	inGroup bool

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every publish; see Updated
	running bool
	closed  bool
	quit    chan struct{}
	wg      sync.WaitGroup
}

type errBox struct{ err error }

// NewManager checks cfg, fills its defaults and returns a Manager that does nothing until Run.
func NewManager(cfg Config, api STSAPI, opts ...Option) (*Manager, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if api == nil {
		return nil, errors.New("new credentials manager: no STS client")
	}
	m := &Manager{
		cfg:     cfg,
		api:     api,
		clock:   clock.Real(),
		log:     slog.New(slog.DiscardHandler),
		rand:    rand.Float64,
		kick:    make(chan struct{}, 1),
		changed: make(chan struct{}),
		quit:    make(chan struct{}),
	}
	for _, o := range opts {
		o(m)
	}
	m.ext = extensions{chain: append([]ChainHop(nil), m.cfg.Chain...), policy: m.cfg.SessionPolicy,
		policyARNs: append([]string(nil), m.cfg.SessionPolicyARNs...)}
	if err := m.checkExtensions(); err != nil {
		return nil, err
	}
	return m, nil
}

// Run fetches credentials, keeps them fresh and watches the token until ctx is done or Close
// is called; it then returns nil. It returns an error only when called twice. Managers of a
// Group are run by the Group's Run instead.
func (m *Manager) Run(ctx context.Context) error {
	if m.inGroup {
		return errors.New("run credentials manager: it belongs to a group; run the group")
	}
	if !m.begin() {
		return m.errRunning()
	}
	// Read before either goroutine starts: the first fetch uses it, the watcher starts from it.
	return m.run(ctx, m.loadToken())
}

// begin marks m running, unless it already was (then false). A closed manager still counts as
// begun: run then returns at once.
func (m *Manager) begin() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.running {
		return false
	}
	m.running = true
	m.wg.Add(1) // run's own; Close waits for it
	return true
}

func (m *Manager) errRunning() error { return errors.New("run credentials manager: already running") }

// run runs the refresh loop and, when w is not nil, the token watcher that feeds it (and the
// group's other managers), until ctx is done or Close is called.
func (m *Manager) run(ctx context.Context, w *tokenWatch) error {
	defer m.wg.Done()
	select {
	case <-m.quit: // closed before it ran
		return nil
	default:
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var loops sync.WaitGroup
	loops.Add(1)
	go func() {
		defer loops.Done()
		m.refreshLoop(ctx)
	}()
	if w != nil {
		loops.Add(1)
		go func() {
			defer loops.Done()
			m.watchToken(ctx, w)
		}()
	}
	select {
	case <-ctx.Done():
	case <-m.quit:
	}
	cancel()
	loops.Wait()
	return nil
}

// Close stops Run and waits for its goroutines. It may be called more than once.
func (m *Manager) Close() error {
	m.mu.Lock()
	if !m.closed {
		m.closed = true
		close(m.quit)
	}
	m.mu.Unlock()
	m.wg.Wait()
	return nil
}

// Role names a Manager in a Group; "" is the unnamed role.
type Role struct {
	Name    string
	Manager *Manager
}

// Group runs the managers of several roles on one projected token: the first one's watcher
// reads each version of the file once and hands it to every manager's refresh loop, and each
// manager keeps its own credentials, backoff and cache, so a role whose trust policy rejects
// the token does not stop the others.
type Group struct {
	roles []Role
}

// NewGroup groups managers built with NewManager for the same token file and poll interval;
// names must be distinct. The first manager's observers see the token's events (rotations,
// reloads), every manager's its own STS calls and credentials.
func NewGroup(roles ...Role) (*Group, error) {
	if len(roles) == 0 {
		return nil, errors.New("new credentials group: no roles")
	}
	seen := map[string]bool{}
	lead := roles[0].Manager
	for _, r := range roles {
		m := r.Manager
		switch {
		case m == nil:
			return nil, fmt.Errorf("new credentials group: role %q has no manager", r.Name)
		case seen[r.Name]:
			return nil, fmt.Errorf("new credentials group: role %q given twice", r.Name)
		case m.inGroup:
			return nil, fmt.Errorf("new credentials group: role %q's manager is in a group already", r.Name)
		case m.cfg.TokenFile != lead.cfg.TokenFile || m.cfg.PollInterval != lead.cfg.PollInterval:
			return nil, fmt.Errorf("new credentials group: role %q reads %s every %s, the first role %s every %s: "+
				"a group shares one token watch", r.Name, m.cfg.TokenFile, m.cfg.PollInterval, lead.cfg.TokenFile, lead.cfg.PollInterval)
		}
		seen[r.Name] = true
	}
	g := &Group{roles: slices.Clone(roles)}
	for i, r := range g.roles {
		r.Manager.inGroup = true
		if i > 0 {
			lead.peers = append(lead.peers, r.Manager)
		}
	}
	return g, nil
}

// Roles returns the group's roles, in the order given.
func (g *Group) Roles() []Role { return slices.Clone(g.roles) }

// Manager returns the manager of the named role, or nil.
func (g *Group) Manager(name string) *Manager {
	for _, r := range g.roles {
		if r.Name == name {
			return r.Manager
		}
	}
	return nil
}

// Run reads the token once, then runs every manager's refresh loop and the one token watcher
// until ctx is done or Close is called; it returns nil then. It returns an error only when
// called twice.
func (g *Group) Run(ctx context.Context) error {
	for i, r := range g.roles {
		if !r.Manager.begin() {
			for _, started := range g.roles[:i] {
				started.Manager.wg.Done()
			}
			return r.Manager.errRunning()
		}
	}
	lead := g.roles[0].Manager
	w := lead.loadToken() // hands the first version to every manager before any fetches
	var all sync.WaitGroup
	for i, r := range g.roles {
		all.Add(1)
		go func() {
			defer all.Done()
			if i == 0 {
				_ = r.Manager.run(ctx, w)
			} else {
				_ = r.Manager.run(ctx, nil)
			}
		}()
	}
	all.Wait()
	return nil
}

// Close stops Run and waits for every manager. It may be called more than once.
func (g *Group) Close() error {
	for _, r := range g.roles {
		_ = r.Manager.Close()
	}
	return nil
}

// Servable returns the cached credentials, or nil when there are none or fewer than
// MinRemaining of their lifetime is left. It is meant for the request path: one atomic load
// and one time comparison.
func (m *Manager) Servable() *Credentials {
	c := m.cur.Load()
	if c == nil || c.Expiration.Sub(m.clock.Now()) < m.cfg.MinRemaining {
		return nil
	}
	return c
}

// Wait blocks until Servable would return credentials, and returns them; it returns nil when
// ctx is done or the Manager is closed first.
func (m *Manager) Wait(ctx context.Context) *Credentials {
	for {
		if c := m.Servable(); c != nil {
			return c
		}
		ch := m.Updated()
		// A publish between the first check and taking ch would otherwise be missed.
		if c := m.Servable(); c != nil {
			return c
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil
		case <-m.quit:
			return nil
		}
	}
}

// Updated returns a channel that is closed when new credentials are next published (as
// go-spiffe's sources signal updates): a subscriber takes the channel, then reads Servable,
// then waits for the close and starts over, so a publish between the two is never missed. Any
// number of goroutines may wait on it; nothing is sent, so a slow subscriber delays nobody and
// sees only the latest credentials.
func (m *Manager) Updated() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.changed
}

// LastError returns why the latest fetch failed, or nil when it succeeded (or none ran yet).
// It carries no secret, so it may explain a 503.
func (m *Manager) LastError() error {
	if b := m.lastErr.Load(); b != nil {
		return b.err
	}
	return nil
}

func (m *Manager) publish(c *Credentials) {
	m.cur.Store(c)
	m.mu.Lock()
	close(m.changed)
	m.changed = make(chan struct{})
	m.mu.Unlock()
	m.obs.CredentialsUpdated(c.Expiration)
}

// loopState belongs to the refresh loop goroutine alone.
type loopState struct {
	sessionName  string
	refreshAt    time.Time // zero until the first success
	lastAttempt  time.Time
	failures     int // consecutive
	failingSince time.Time
}

// due reports whether a fetch is wanted now: nothing fetched yet, last fetch failed, or the
// refresh time has come.
func (s *loopState) due(now time.Time) bool {
	return s.failures > 0 || s.refreshAt.IsZero() || !now.Before(s.refreshAt)
}

// refreshLoop is the only caller of STS, so concurrent needs cannot turn into concurrent calls.
func (m *Manager) refreshLoop(ctx context.Context) {
	var st loopState
	t := m.clock.NewTimer(m.attempt(ctx, &st))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		case <-m.kick:
			now := m.clock.Now()
			m.rotated(now)
			if !st.due(now) {
				m.log.Debug("token changed; credentials still fresh", "refresh_at", st.refreshAt)
				continue
			}
			if next := st.lastAttempt.Add(minKickInterval); now.Before(next) {
				t.Reset(next.Sub(now))
				continue
			}
			// So that a tick arriving during this fetch does not trigger another one.
			t.Stop()
		}
		if ctx.Err() != nil {
			return
		}
		t.Reset(m.attempt(ctx, &st))
	}
}

// attempt runs one fetch and returns the delay until the next one.
func (m *Manager) attempt(ctx context.Context, st *loopState) time.Duration {
	st.lastAttempt = m.clock.Now()
	c, tok, err := m.fetch(ctx, st)
	if ctx.Err() != nil {
		return 0 // shutting down: not a failure worth reporting
	}
	if err != nil {
		return m.failed(err, tok, st)
	}
	return m.succeeded(c, st)
}

// fetch exchanges the token the watcher last handed over; it does not read the file again.
func (m *Manager) fetch(ctx context.Context, st *loopState) (*Credentials, *tokenFile, error) {
	tok, err := m.currentToken(m.clock.Now())
	if err != nil {
		return nil, nil, err
	}
	m.check.token(tok)
	if st.sessionName == "" {
		st.sessionName = m.cfg.SessionName
		if st.sessionName == "" {
			st.sessionName = SessionName(tok.claims.Namespace, tok.claims.PodName)
		}
	}
	in := &sts.AssumeRoleWithWebIdentityInput{
		RoleArn:          aws.String(m.cfg.RoleARN),
		RoleSessionName:  aws.String(st.sessionName),
		WebIdentityToken: aws.String(string(tok.raw)),
		DurationSeconds:  aws.Int32(int32(m.cfg.Duration / time.Second)),
	}
	m.ext.applySessionPolicy(in)
	callCtx, cancel := context.WithTimeout(ctx, m.cfg.CallTimeout)
	defer cancel()
	start := m.clock.Now()
	out, err := m.api.AssumeRoleWithWebIdentity(callCtx, in)
	took := m.clock.Now().Sub(start)
	err = withDeadline(err, callCtx)
	if err == nil {
		var c *Credentials
		if c, err = m.credentialsFrom(out); err == nil {
			m.obs.STSCall("success", "", took)
			if len(m.ext.chain) > 0 {
				if c, err = m.assumeChain(ctx, c, st.sessionName); err != nil {
					return nil, tok, err
				}
			}
			return c, tok, nil
		}
	}
	err = redact(fmt.Errorf("assume role with web identity: %w", err), string(tok.raw))
	if ctx.Err() == nil {
		m.obs.STSCall("error", ErrorCode(err), took)
	}
	return nil, tok, err
}

func (m *Manager) credentialsFrom(out *sts.AssumeRoleWithWebIdentityOutput) (*Credentials, error) {
	if out == nil || out.Credentials == nil {
		return nil, errors.New("response has no credentials")
	}
	sc := out.Credentials
	if aws.ToString(sc.AccessKeyId) == "" || aws.ToString(sc.SecretAccessKey) == "" ||
		aws.ToString(sc.SessionToken) == "" || sc.Expiration == nil {
		return nil, errors.New("response has incomplete credentials")
	}
	account := ""
	if out.AssumedRoleUser != nil {
		account = accountFromARN(aws.ToString(out.AssumedRoleUser.Arn))
	}
	if account == "" {
		account = accountFromARN(m.cfg.RoleARN)
	}
	return &Credentials{
		AccessKeyID:     aws.ToString(sc.AccessKeyId),
		SecretAccessKey: aws.ToString(sc.SecretAccessKey),
		SessionToken:    aws.ToString(sc.SessionToken),
		Expiration:      sc.Expiration.UTC(),
		AccountID:       account,
		RoleARN:         m.cfg.RoleARN,
	}, nil
}

// accountFromARN returns the 12-digit account id of arn, or "".
func accountFromARN(arn string) string {
	a, err := awsarn.Parse(arn)
	if err != nil {
		return ""
	}
	return a.AccountID()
}

func (m *Manager) succeeded(c *Credentials, st *loopState) time.Duration {
	now := m.clock.Now()
	if st.failures > 0 {
		m.log.Info("sts recovered", "failures", st.failures, "failing_for", now.Sub(st.failingSince).String())
	}
	st.failures = 0
	m.lastErr.Store(nil)
	m.publish(c)

	// The jitter goes later, never earlier: a refresh at R in (0.9 W, W] keeps the steady rate at
	// or below Duration/(Duration-W) calls per session (three an hour at the defaults), and the
	// served credentials still keep at least 0.9 W, above every SDK's refresh floor.
	lead := m.cfg.RefreshWindow - time.Duration(m.jitter()*float64(m.cfg.RefreshWindow/10))
	lifetime := c.Expiration.Sub(now)
	delay := lifetime - lead
	if delay < minRefreshDelay {
		m.log.Warn("credentials live shorter than the refresh window; refreshing sooner",
			"lifetime", lifetime.String(), "refresh_window", m.cfg.RefreshWindow.String(), "refresh_in", minRefreshDelay.String())
		delay = minRefreshDelay
	}
	if lifetime < m.cfg.MinRemaining {
		m.log.Warn("sts returned credentials too close to expiry to serve", "lifetime", lifetime.String(), "min_remaining", m.cfg.MinRemaining.String())
	}
	st.refreshAt = now.Add(delay)
	m.log.Info("fetched credentials", "credentials", c, "session_name", st.sessionName, "refresh_at", st.refreshAt)
	return delay
}

func (m *Manager) failed(err error, tok *tokenFile, st *loopState) time.Duration {
	now := m.clock.Now()
	if st.failures == 0 {
		st.failingSince = now
	}
	st.failures++
	m.lastErr.Store(&errBox{err})

	class, code := Classify(err), ErrorCode(err)
	delay := m.backoff(class, st.failures)
	level := slog.LevelWarn
	if class == Terminal {
		level = slog.LevelError
	}
	attrs := []any{"class", class.String(), "code", code, "error", err.Error(), "failures", st.failures,
		"retry_in", delay.String(), "retry_at", now.Add(delay)}
	if c := m.Servable(); c != nil {
		attrs = append(attrs, "serving_until", c.Expiration.Add(-m.cfg.MinRemaining))
	} else {
		attrs = append(attrs, "serving", false)
	}
	if tok != nil {
		var id, cause string
		if m.explain != nil {
			id, cause = m.explain(err, code, tok.claims)
		}
		if cause != "" || class == Terminal {
			attrs = append(attrs, "finding", id, "cause", cause, "token_iss", tok.claims.Issuer, "token_sub", tok.claims.Subject,
				"token_aud", tok.claims.Audience)
		}
	}
	m.log.Log(context.Background(), level, "fetch credentials failed", attrs...)
	return delay
}

// backoff is the wait after the n-th consecutive failure. Transient failures wait uniformly
// in [d/2, d) with d = 1 s * 2^(n-1) capped at 1 min; terminal ones wait 1 min plus up to 10%,
// so many sidecars failing together do not call in step.
func (m *Manager) backoff(class Class, n int) time.Duration {
	r := m.jitter()
	if class == Terminal {
		return terminalBackoff + time.Duration(r*float64(terminalBackoff/10))
	}
	d := retryMax
	if n <= 6 { // 1 s << 6 already exceeds the cap
		d = min(retryBase<<(n-1), retryMax)
	}
	return d/2 + time.Duration(r*float64(d/2))
}

func (m *Manager) jitter() float64 {
	r := m.rand()
	if r < 0 || r >= 1 || r != r {
		return 0
	}
	return r
}

// observers passes each event to every Observer in turn; none means events are dropped.
type observers []Observer

var _ Observer = observers(nil)

func (all observers) STSCall(result, code string, took time.Duration) {
	for _, o := range all {
		o.STSCall(result, code, took)
	}
}

func (all observers) CredentialsUpdated(expiry time.Time) {
	for _, o := range all {
		o.CredentialsUpdated(expiry)
	}
}

func (all observers) TokenReloaded(expiry time.Time) {
	for _, o := range all {
		o.TokenReloaded(expiry)
	}
}
