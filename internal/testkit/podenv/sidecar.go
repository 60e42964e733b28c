package podenv

import (
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/credsidecar/credsidecar/internal/app"
	"github.com/credsidecar/credsidecar/internal/clock"
	"github.com/credsidecar/credsidecar/internal/config"
	"github.com/credsidecar/credsidecar/internal/creds"
	"github.com/credsidecar/credsidecar/internal/testkit/await"
	"github.com/credsidecar/credsidecar/internal/testkit/observe"
	"github.com/credsidecar/credsidecar/internal/testkit/sidecartest"
	"github.com/credsidecar/credsidecar/internal/testkit/testbed"
	"github.com/credsidecar/credsidecar/internal/testkit/testlog"
)

// The sidecars' recording observer is the manager's observer too.
var _ creds.Observer = (*observe.Recorder)(nil)

// SidecarOptions vary a sidecar from the plain one: the default role at the World's SeaweedFS,
// loopback listeners on free ports, a generated auth token, JSON logs at debug level.
type SidecarOptions struct {
	// Token is what the projector mints; the default service account's token when zero.
	Token testbed.TokenRequest
	// Clock runs the sidecar; nil is a fake clock at the wall time, so the test decides when it
	// refreshes. The projector keeps wall time either way, as SeaweedFS checks tokens by it.
	Clock clock.Clock
	// STSEndpoint replaces the World's SeaweedFS as STS, e.g. with a recording proxy before it.
	STSEndpoint string
	// AuthTokenFile is the endpoint's token file, e.g. a mounted Secret; a file of a new
	// temporary directory, which the sidecar generates, when empty.
	AuthTokenFile string
	// IMDS turns the instance-metadata endpoint on, on a free loopback port.
	IMDS bool
	// CredentialsFile is the shared credentials file to keep current; none when empty.
	CredentialsFile string
	// Duration, RefreshWindow, MinRemaining and TokenPollInterval replace the defaults when not
	// zero.
	Duration, RefreshWindow, MinRemaining, TokenPollInterval time.Duration
	// SessionName is --session-name; the sidecar's default when empty.
	SessionName string
	// TokenLink, when set, is where StartSidecar makes a symlink to the projector's token file
	// (in another directory, say) and the path the sidecar is given; the projector's path when
	// empty.
	TokenLink string
	// STS wraps the STS client the sidecar would build, to record or fail its calls (a fault a
	// real STS cannot produce on demand); nil uses it as it is.
	STS func(creds.STSAPI) creds.STSAPI
	// ChainRoleARNs are roles to chain to after the default one.
	ChainRoleARNs []string
	// Creds are extra options of every role's credentials manager (e.g. creds.WithRand).
	Creds []creds.Option
	// Roles are named roles (--role) besides the default, unnamed one.
	Roles []config.Role
	// NoUnnamedRole leaves --role-arn empty, so that only Roles are served.
	NoUnnamedRole bool
	// ColdStart returns from StartSidecar as soon as the sidecar runs, before it has fetched
	// anything, for tests of what clients arriving at a cold cache get.
	ColdStart bool
}

// Sidecar is one whole sidecar (package app, as cmd/sidecar runs it) in-process, with its
// projected token, its logs and its manager's events.
type Sidecar struct {
	// App is the running sidecar.
	App *app.App
	// Addrs are its listeners' addresses.
	Addrs app.Addrs
	// URL is the value for AWS_CONTAINER_CREDENTIALS_FULL_URI.
	URL string
	// Auth is the endpoint's auth token when the sidecar became ready; AuthToken reads it afresh.
	Auth string
	// AuthTokenFile is the file AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE names.
	AuthTokenFile string
	// Clock is the sidecar's clock; Fake is the same clock when it is fake, else nil.
	Clock clock.Clock
	Fake  *clock.Fake
	// Proj projects the sidecar's service-account token.
	Proj *testbed.Projector
	// Logs is everything the sidecar logged, as JSON at debug level.
	Logs *testlog.Buffer
	// Events is the credentials manager's observer, next to the metrics one the sidecar installs.
	Events *observe.Recorder
	// HTTP is a client for the sidecar's endpoints.
	HTTP *http.Client

	guard time.Duration
	// timers is how many fake-clock timers the sidecar arms when idle (see Settle).
	timers int
}

// sidecarConfig is the one place the sidecar's configuration is built: every field a suite sets
// is set here, from o, so a change of the configuration API is adapted here alone.
func sidecarConfig(w *World, o SidecarOptions, tokenFile, authTokenFile string) config.Config {
	cfg := config.Defaults()
	cfg.RoleARN, cfg.TokenFile = w.Weed.RoleARN(), tokenFile
	cfg.Region, cfg.STSEndpoint = testbed.Region, w.Weed.Endpoint()
	if o.STSEndpoint != "" {
		cfg.STSEndpoint = o.STSEndpoint
	}
	cfg.Listen, cfg.MetricsListen = "127.0.0.1:0", "127.0.0.1:0"
	if o.IMDS {
		cfg.IMDSListen = "127.0.0.1:0"
	}
	cfg.AuthTokenFile = authTokenFile
	cfg.CredentialsFile = o.CredentialsFile
	if o.Duration != 0 {
		cfg.Duration = o.Duration
	}
	if o.RefreshWindow != 0 {
		cfg.RefreshWindow = o.RefreshWindow
	}
	if o.MinRemaining != 0 {
		cfg.MinRemaining = o.MinRemaining
	}
	if o.TokenPollInterval != 0 {
		cfg.TokenPollInterval = o.TokenPollInterval
	}
	if o.SessionName != "" {
		cfg.SessionName = o.SessionName
	}
	cfg.ChainRoleARNs = o.ChainRoleARNs
	cfg.Roles = o.Roles
	if o.NoUnnamedRole {
		cfg.RoleARN = ""
	}
	// Debug: the logs are what tests wait on and search for secrets.
	cfg.LogFormat, cfg.LogLevel = "json", slog.LevelDebug
	return cfg
}

// StartSidecar projects a token, starts a sidecar that runs until t ends, and returns once it
// serves credentials (its first credentials update). A start failure fails t.
func (w *World) StartSidecar(t testing.TB, o SidecarOptions) *Sidecar {
	t.Helper()
	s := &Sidecar{
		Clock:  o.Clock,
		Logs:   &testlog.Buffer{},
		Events: observe.NewRecorder(),
		HTTP:   &http.Client{Timeout: w.Guard},
		guard:  w.Guard,
	}
	if s.Clock == nil {
		s.Clock = clock.NewFake(time.Now())
	}
	s.Fake, _ = s.Clock.(*clock.Fake)
	s.Proj = testbed.NewProjectorForTest(t, testbed.ProjectorOptions{Minter: w.Issuer.Minter(o.Token)})
	s.AuthTokenFile = o.AuthTokenFile
	if s.AuthTokenFile == "" {
		s.AuthTokenFile = filepath.Join(t.TempDir(), "auth", "token")
	}
	tokenFile := s.Proj.Path()
	if o.TokenLink != "" {
		if err := os.Symlink(tokenFile, o.TokenLink); err != nil {
			t.Fatalf("link the token: %v", err)
		}
		tokenFile = o.TokenLink
	}
	cfg := sidecarConfig(w, o, tokenFile, s.AuthTokenFile)
	var api creds.STSAPI
	if o.STS != nil {
		api = o.STS(creds.NewSTSClient(cfg.Region, cfg.STSEndpoint))
	}
	// Idle, the sidecar waits on the refresh loop's and the token poll's timers and the auth
	// token's poll. The credentials file has no timer: it waits on the manager's Updated, and
	// arms one only to retry a failed write.
	// One refresh loop per role.
	s.timers = 2 + len(cfg.Roles)
	if cfg.RoleARN != "" {
		s.timers++
	}

	// Registered before the sidecar starts, so it runs after the sidecar has stopped.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sidecar logs (last 200 lines):\n%s", s.Logs.Tail(200))
		}
	})
	// Waiting for the first role only: a role STS refuses must not keep the others from a test.
	wait := sidecartest.RoleReady(firstRole(cfg))
	if o.ColdStart {
		wait = nil
	}
	s.App = sidecartest.Start(t, cfg, app.Options{
		Logger:       app.NewLogger(s.Logs, cfg.LogFormat, cfg.LogLevel),
		Version:      "podenv",
		Clock:        s.Clock,
		STS:          api,
		CredsOptions: append([]creds.Option{creds.WithObserver(s.Events)}, o.Creds...),
	}, w.Guard, wait)
	s.Addrs = s.App.Addrs()
	s.URL = s.Addrs.CredentialsURL()
	if !o.ColdStart {
		s.Events.WaitUpdates(t, w.Guard, 1)
	}
	s.Auth = s.AuthToken(t)
	return s
}

// firstRole is the role a sidecar built from cfg fetches first: the unnamed one, else the first
// named one.
func firstRole(cfg config.Config) string {
	if cfg.RoleARN != "" || len(cfg.Roles) == 0 {
		return ""
	}
	return cfg.Roles[0].Name
}

// AuthToken is the endpoint's Authorization token, read from its file as the SDKs read it.
func (s *Sidecar) AuthToken(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(s.AuthTokenFile)
	if err != nil {
		t.Fatalf("read auth token: %v", err)
	}
	return string(b)
}

// Get asks the credentials endpoint once with auth, as an SDK does; a transport error fails t.
func (s *Sidecar) Get(t testing.TB, auth string) *Answer {
	t.Helper()
	a, err := Get(s.HTTP, s.URL, auth)
	if err != nil {
		t.Fatalf("GET %s: %v", s.URL, err)
	}
	return a
}

// Served asks the endpoint, with the current auth token, what it serves right now; anything but
// 200 with complete credentials fails t.
func (s *Sidecar) Served(t testing.TB) Creds {
	t.Helper()
	a := s.Get(t, s.AuthToken(t))
	if a.Status != http.StatusOK {
		t.Fatalf("GET credentials = %d (code %q), want 200", a.Status, a.Code)
	}
	c := a.Creds
	if c.AccessKeyID == "" || c.SecretAccessKey == "" || c.Token == "" || c.Expiration.IsZero() {
		t.Fatalf("credentials incomplete: key id set %v, secret set %v, token set %v, expiration %v",
			c.AccessKeyID != "", c.SecretAccessKey != "", c.Token != "", c.Expiration)
	}
	return c
}

// Do sends one request to any of the sidecar's endpoints and returns the status and the body.
func (s *Sidecar) Do(t testing.TB, method, url string, header map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := s.HTTP.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp.StatusCode, string(b)
}

// Metrics scrapes /metrics.
func (s *Sidecar) Metrics(t testing.TB) string {
	t.Helper()
	status, body := s.Do(t, http.MethodGet, s.Addrs.MetricsURL()+"/metrics", nil)
	if status != http.StatusOK {
		t.Fatalf("GET /metrics = %d", status)
	}
	return body
}

// fake returns the sidecar's fake clock, failing t if it runs on another.
func (s *Sidecar) fake(t testing.TB) *clock.Fake {
	t.Helper()
	if s.Fake == nil {
		t.Fatal("the sidecar runs on the wall clock; this needs a fake one")
	}
	return s.Fake
}

// Settle waits until every goroutine of the sidecar that the last clock move woke has re-armed
// its timer: a fired timer is off the fake clock's list until its owner is done and resets it.
func (s *Sidecar) Settle(t testing.TB) {
	t.Helper()
	await.Timers(t, s.guard, s.fake(t), s.timers)
}

// Step moves the fake clock to the next timer and waits until the sidecar has reacted.
func (s *Sidecar) Step(t testing.TB) {
	t.Helper()
	s.Settle(t)
	s.fake(t).AdvanceToNext()
	s.Settle(t)
}

// AdvanceUntilUpdated moves the fake clock a minute at a time, letting the sidecar react after
// each step, until it publishes new credentials; it returns their expiry.
func (s *Sidecar) AdvanceUntilUpdated(t testing.TB) time.Time {
	t.Helper()
	clk := s.fake(t)
	before := len(s.Events.Updates())
	s.Settle(t)
	for range 24 * 60 {
		clk.Advance(time.Minute)
		s.Settle(t)
		if u := s.Events.Updates(); len(u) > before {
			return u[before]
		}
	}
	t.Fatalf("no refresh within a day of fake time; last log lines:\n%s", s.Logs.Tail(60))
	return time.Time{}
}
