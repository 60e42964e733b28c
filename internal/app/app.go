// Package app builds the sidecar from a validated configuration and runs it: the credentials
// manager, the auth token, the metrics and the two HTTP servers, and when configured the
// instance-metadata (IMDSv2) server and the shared credentials file, each goroutine owned by Run
// and stopped with its context. It also logs, once per projected token, the problems
// findings.TokenWarnings sees in the token's claims. cmd/sidecar is a thin shell around it, and
// tests run the whole sidecar in-process through it:
//
//	cfg := config.Defaults()
//	cfg.RoleARN, cfg.TokenFile, cfg.STSEndpoint = roleARN, tokenPath, stsURL
//	cfg.Listen, cfg.MetricsListen = "127.0.0.1:0", "127.0.0.1:0"
//	cfg.AuthTokenFile = filepath.Join(dir, "auth-token")
//	a, err := app.New(ctx, cfg, app.Options{Logger: log})
//	// a.Addrs().CredentialsURL() is AWS_CONTAINER_CREDENTIALS_FULL_URI,
//	// cfg.AuthTokenFile is AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE.
//	err = a.Run(ctx) // returns nil once ctx is cancelled and the servers have shut down
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/credsidecar/credsidecar/internal/authtoken"
	"github.com/credsidecar/credsidecar/internal/clock"
	"github.com/credsidecar/credsidecar/internal/config"
	"github.com/credsidecar/credsidecar/internal/credfile"
	"github.com/credsidecar/credsidecar/internal/creds"
	"github.com/credsidecar/credsidecar/internal/findings"
	"github.com/credsidecar/credsidecar/internal/imds"
	"github.com/credsidecar/credsidecar/internal/metrics"
	"github.com/credsidecar/credsidecar/internal/server"
)

var (
	_ server.Source     = (*creds.Manager)(nil)
	_ server.Authorizer = (*authtoken.Token)(nil)
	_ server.Observer   = (*metrics.Metrics)(nil)
	_ imds.Source       = (*creds.Manager)(nil)
	_ credfile.Source   = (*creds.Manager)(nil)
)

// Options are the parts a caller may supply instead of the defaults.
type Options struct {
	// Logger receives every part's logs; nil discards them.
	Logger *slog.Logger
	// Version is reported by credsidecar_build_info and the start-up log.
	Version string
	// Registry collects the metrics served on /metrics; nil makes a fresh one with the Go and
	// process collectors. One registry serves one App: New registers the sidecar's metrics on it.
	Registry *prometheus.Registry
	// STS replaces the client built from cfg.Region and cfg.STSEndpoint, for fault injection.
	STS creds.STSAPI
	// Clock drives refreshes, backoff and file polling; nil is the wall clock.
	Clock clock.Clock
	// CredsOptions are appended to the credentials manager's options (e.g. creds.WithRand).
	CredsOptions []creds.Option
	// Listening, if set, is called by Run with the bound addresses before serving starts.
	Listening func(Addrs)
}

// Addrs are the addresses the sidecar's listeners are bound to.
type Addrs struct {
	// Credentials is the credentials endpoint's address.
	Credentials net.Addr
	// Metrics is the address of /metrics, /healthz and /readyz.
	Metrics net.Addr
	// IMDS is the instance-metadata endpoint's address; nil when --imds-listen is off.
	IMDS net.Addr
}

// CredentialsURL is the value for AWS_CONTAINER_CREDENTIALS_FULL_URI.
func (a Addrs) CredentialsURL() string {
	return "http://" + a.Credentials.String() + server.CredentialsPath
}

// MetricsURL is the base URL of the ops endpoint, without a trailing slash.
func (a Addrs) MetricsURL() string { return "http://" + a.Metrics.String() }

// IMDSURL is the value for AWS_EC2_METADATA_SERVICE_ENDPOINT, or "" when IMDS is off. It ends
// in a slash: old botocore appends the path without adding one ("Invalid endpoint").
func (a Addrs) IMDSURL() string {
	if a.IMDS == nil {
		return ""
	}
	return "http://" + a.IMDS.String() + "/"
}

// App is a built sidecar whose listeners are bound but not yet serving.
type App struct {
	cfg      config.Config
	log      *slog.Logger
	opts     Options
	group    *creds.Group
	roles    []server.Role  // the group's, for the endpoint and the probes
	manager  *creds.Manager // the unnamed role's; nil when there are only named roles
	token    *authtoken.Token
	credsSrv *http.Server
	opsSrv   *http.Server
	credsLn  net.Listener
	opsLn    net.Listener
	imdsSrv  *http.Server     // nil when --imds-listen is off
	imdsLn   net.Listener     // nil when --imds-listen is off
	credFile *credfile.Writer // nil when --credentials-file is off
	addrs    Addrs
	used     atomic.Bool // set by the first Run or Close
}

// New validates cfg, loads (or generates) the auth token, builds the credentials manager and
// the servers, and binds the listeners, so that a bad address, a taken port or an unwritable
// token or credentials-file directory fails here rather than after start-up. Call Run, or Close
// to release the listeners.
func New(ctx context.Context, cfg config.Config, opts Options) (_ *App, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, opts: opts, log: opts.Logger}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	clk := opts.Clock
	if clk == nil {
		clk = clock.Real()
	}
	reg := opts.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	m := metrics.New(reg, opts.Version)

	a.token, err = authtoken.Load(cfg.AuthTokenFile, authtoken.WithLogger(a.log), authtoken.WithClock(clk),
		authtoken.WithPollInterval(cfg.TokenPollInterval))
	if err != nil {
		return nil, fmt.Errorf("start sidecar: %w", err)
	}
	if cfg.CredentialsFile != "" {
		// 0640 like the auth token: the app containers share the pod's fsGroup, not the sidecar's
		// uid, and whoever can read the auth token can fetch these credentials anyway.
		a.credFile, err = credfile.New(cfg.CredentialsFile, cfg.CredentialsProfile, credfile.WithLogger(a.log),
			credfile.WithClock(clk), credfile.WithMode(0o640))
		if err != nil {
			return nil, fmt.Errorf("start sidecar: %w", err)
		}
	}
	if err := a.newGroup(m, clk); err != nil {
		return nil, fmt.Errorf("start sidecar: %w", err)
	}
	names := make([]string, len(a.roles))
	for i, r := range a.roles {
		names[i] = r.Name
	}
	m.SetReady(names, func(role string) bool { return a.group.Manager(role).Servable() != nil })
	if err := a.listen(ctx); err != nil {
		return nil, err
	}
	if err := a.buildServers(m, reg, clk); err != nil {
		_ = a.closeListeners()
		return nil, err
	}
	return a, nil
}

// newGroup builds a credentials manager per role, the unnamed one first, grouped on the one
// token watch.
func (a *App) newGroup(m *metrics.Metrics, clk clock.Clock) error {
	cfg := a.cfg
	api := a.opts.STS
	if api == nil {
		api = creds.NewSTSClient(cfg.Region, cfg.STSEndpoint)
	}
	specs := make([]config.Role, 0, len(cfg.Roles)+1)
	if cfg.RoleARN != "" {
		specs = append(specs, config.Role{ARN: cfg.RoleARN, ChainRoleARNs: cfg.ChainRoleARNs,
			ChainExternalIDs: cfg.ChainExternalIDs, SessionPolicy: cfg.SessionPolicy, SessionPolicyARNs: cfg.SessionPolicyARNs})
	}
	specs = append(specs, cfg.Roles...)
	var roles []creds.Role
	for i, spec := range specs {
		log, obs := a.log, creds.Observer(m)
		if spec.Name != "" {
			log, obs = a.log.With("role", spec.Name), m.ForRole(spec.Name)
		}
		opts := []creds.Option{creds.WithLogger(log), creds.WithObserver(obs), creds.WithClock(clk),
			creds.WithExplain(findings.ExplainSTS)}
		if i == 0 { // the token's problems are logged once, by the manager whose watcher reads it
			opts = append(opts, creds.WithTokenCheck(tokenWarnings(a.log, clk)))
		}
		mgr, err := newManager(cfg, spec, api, append(opts, a.opts.CredsOptions...))
		if err != nil {
			if spec.Name != "" {
				return fmt.Errorf("role %s: %w", spec.Name, err)
			}
			return err
		}
		roles = append(roles, creds.Role{Name: spec.Name, Manager: mgr})
		a.roles = append(a.roles, server.Role{Name: spec.Name, Source: mgr})
	}
	g, err := creds.NewGroup(roles...)
	if err != nil {
		return err
	}
	a.group, a.manager = g, g.Manager("")
	return nil
}

// newManager builds one role's credentials manager from the configuration and the role's spec.
func newManager(cfg config.Config, spec config.Role, api creds.STSAPI, opts []creds.Option) (*creds.Manager, error) {
	chain := make([]creds.ChainHop, len(spec.ChainRoleARNs))
	for i, arn := range spec.ChainRoleARNs {
		chain[i].RoleARN = arn
		if i < len(spec.ChainExternalIDs) {
			chain[i].ExternalID = spec.ChainExternalIDs[i]
		}
	}
	return creds.NewManager(creds.Config{
		RoleARN:           spec.ARN,
		TokenFile:         cfg.TokenFile,
		SessionName:       cfg.SessionName,
		Duration:          cfg.Duration,
		RefreshWindow:     cfg.RefreshWindow,
		MinRemaining:      cfg.MinRemaining,
		PollInterval:      cfg.TokenPollInterval,
		Chain:             chain,
		SessionPolicy:     spec.SessionPolicy,
		SessionPolicyARNs: spec.SessionPolicyARNs,
	}, api, opts...)
}

// listen binds the credentials, metrics and (when configured) IMDS listeners; on a failure it
// releases those it had bound.
func (a *App) listen(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			_ = a.closeListeners()
		}
	}()
	if a.credsLn, err = server.Listen(ctx, a.cfg.Listen); err != nil {
		return fmt.Errorf("start sidecar: credentials endpoint: %w", err)
	}
	if a.opsLn, err = server.Listen(ctx, a.cfg.MetricsListen); err != nil {
		return fmt.Errorf("start sidecar: metrics endpoint: %w", err)
	}
	a.addrs = Addrs{Credentials: a.credsLn.Addr(), Metrics: a.opsLn.Addr()}
	if a.cfg.IMDSListen != "" {
		if a.imdsLn, err = imds.Listen(a.cfg.IMDSListen); err != nil {
			return fmt.Errorf("start sidecar: instance metadata endpoint: %w", err)
		}
		a.addrs.IMDS = a.imdsLn.Addr()
	}
	return nil
}

// closeListeners closes every listener bound so far.
func (a *App) closeListeners() error {
	var errs []error
	for _, ln := range []net.Listener{a.credsLn, a.opsLn, a.imdsLn} {
		if ln != nil {
			errs = append(errs, ln.Close())
		}
	}
	return errors.Join(errs...)
}

// buildServers makes the http.Servers of the bound listeners, each through internal/server's
// constructor and middleware list.
func (a *App) buildServers(m *metrics.Metrics, reg *prometheus.Registry, clk clock.Clock) error {
	serverOpts := []server.Option{server.WithLogger(a.log), server.WithObserver(m), server.WithClock(clk)}
	if a.imdsLn != nil {
		h, err := imds.New(a.manager, a.cfg.Region, imds.WithLogger(a.log), imds.WithClock(clk))
		if err != nil {
			return fmt.Errorf("start sidecar: %w", err)
		}
		// IMDS has no other authentication: loopback only, whatever --allow-non-loopback says.
		imdsOpts := append(slices.Clone(serverOpts), server.WithLoopbackOnly())
		a.imdsSrv = server.NewHTTPServer(server.Wrap(server.EndpointIMDS, h.Handler(), imdsOpts...), a.log)
	}
	credsOpts := serverOpts
	if !a.cfg.AllowNonLoopback {
		credsOpts = append(slices.Clone(serverOpts), server.WithLoopbackOnly())
	}
	a.credsSrv = server.NewHTTPServer(server.NewCredentialsRoles(a.roles, a.token, credsOpts...), a.log)
	a.opsSrv = server.NewHTTPServer(server.NewOps(a.roles, reg, serverOpts...), a.log)
	return nil
}

// Addrs returns the bound addresses.
func (a *App) Addrs() Addrs { return a.addrs }

// WaitReady blocks until every role's credentials can be served, and reports whether they can;
// it returns false when ctx is done first. /readyz answers 200 from then on, as long as they
// stay fresh.
func (a *App) WaitReady(ctx context.Context) bool {
	for _, r := range a.group.Roles() {
		if r.Manager.Wait(ctx) == nil {
			return false
		}
	}
	return true
}

// Manager returns the named role's credentials manager ("" for the unnamed role), or nil.
func (a *App) Manager(role string) *creds.Manager { return a.group.Manager(role) }

// Run serves until ctx is done, then shuts the servers down within cfg.ShutdownTimeout and
// stops the credentials manager. It returns nil after a clean shutdown, or the first error of
// any part, which also stops the others. Run may be called once.
func (a *App) Run(ctx context.Context) error {
	if !a.used.CompareAndSwap(false, true) {
		return errors.New("run sidecar: already run or closed")
	}
	defer a.group.Close()
	a.log.Info("credsidecar starting", "version", a.opts.Version, "go", runtime.Version(),
		"role_arn", a.cfg.RoleARN, "token_file", a.cfg.TokenFile, "region", a.cfg.Region,
		"sts_endpoint", a.cfg.STSEndpoint, "duration", a.cfg.Duration.String(),
		"refresh_window", a.cfg.RefreshWindow.String(), "min_remaining", a.cfg.MinRemaining.String(),
		"credentials_url", a.addrs.CredentialsURL(), "metrics_addr", a.addrs.Metrics.String(),
		"auth_token_file", a.cfg.AuthTokenFile, "auth_token_generated", a.token.Generated(),
		"imds_url", a.addrs.IMDSURL(), "credentials_file", a.cfg.CredentialsFile,
		"chain_role_arns", a.cfg.ChainRoleARNs, "session_policy_chars", len(a.cfg.SessionPolicy),
		"session_policy_arns", a.cfg.SessionPolicyARNs, "roles", a.roleSummary())
	a.warnExposure()
	if a.opts.Listening != nil {
		a.opts.Listening(a.addrs)
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.group.Run(gctx) })
	g.Go(func() error { return a.token.Watch(gctx) })
	g.Go(func() error { return server.Serve(gctx, a.credsSrv, a.credsLn, a.cfg.ShutdownTimeout) })
	g.Go(func() error { return server.Serve(gctx, a.opsSrv, a.opsLn, a.cfg.ShutdownTimeout) })
	if a.imdsSrv != nil {
		g.Go(func() error { return server.Serve(gctx, a.imdsSrv, a.imdsLn, a.cfg.ShutdownTimeout) })
	}
	if a.credFile != nil {
		g.Go(func() error { return a.credFile.RunProfiles(gctx, a.profiles()) })
	}
	g.Go(func() error {
		<-gctx.Done()
		if ctx.Err() != nil {
			a.log.Info("shutting down", "timeout", a.cfg.ShutdownTimeout.String())
		}
		return nil
	})
	err := g.Wait()
	if err != nil {
		return fmt.Errorf("run sidecar: %w", err)
	}
	a.log.Info("credsidecar stopped")
	return nil
}

// warnExposure logs, at start, each setting that lets the credentials or the token reach more
// than the pod's own loopback: the operator chose it, and the log says what it costs.
func (a *App) warnExposure() {
	if tcp, ok := a.addrs.Credentials.(*net.TCPAddr); ok && !tcp.IP.IsLoopback() {
		a.log.Warn("the credentials endpoint listens off loopback (--allow-non-loopback): anything that can reach "+
			"this address and has the auth token gets the credentials", "listen", a.addrs.Credentials.String())
	}
	if a.cfg.InsecureSTSEndpoint() {
		a.log.Warn("STS is called over plain http off loopback (--allow-insecure-sts-endpoint): the service-account "+
			"token crosses the network in clear text", "sts_endpoint", a.cfg.STSEndpoint)
	}
	if a.cfg.HostNetwork() {
		a.log.Warn("the pod uses hostNetwork (POD_IP = HOST_IP): its loopback is the node's, so every process on the "+
			"node that can read the auth token can fetch the credentials", "pod_ip", a.cfg.PodIP)
	}
}

// Close releases the listeners of an App that was never run; after Run it does nothing.
func (a *App) Close() error {
	if !a.used.CompareAndSwap(false, true) {
		return nil
	}
	_ = a.group.Close()
	return a.closeListeners()
}

// roleSummary lists the named roles for the start-up log: name=ARN, chained hops after ">".
func (a *App) roleSummary() []string {
	out := make([]string, len(a.cfg.Roles))
	for i, r := range a.cfg.Roles {
		out[i] = r.Name + "=" + strings.Join(append([]string{r.ARN}, r.ChainRoleARNs...), ">")
	}
	return out
}

// profiles are the credentials file's profiles: the unnamed role's under --credentials-profile,
// each named role's under its name.
func (a *App) profiles() []credfile.Profile {
	var out []credfile.Profile
	for _, r := range a.group.Roles() {
		name := r.Name
		if name == "" {
			name = a.cfg.CredentialsProfile
		}
		out = append(out, credfile.Profile{Name: name, Source: r.Manager})
	}
	return out
}

// Run builds the sidecar with New and runs it until ctx is done.
func Run(ctx context.Context, cfg config.Config, opts Options) error {
	a, err := New(ctx, cfg, opts)
	if err != nil {
		return err
	}
	return a.Run(ctx)
}

// tokenWarnings logs each problem diagnose sees in a new token's claims, as a warning naming
// what is wrong, why it matters and the fix. The manager calls it once per token, so a token
// projected without an explicit audience warns at start and after each rotation, not at every
// refresh.
func tokenWarnings(log *slog.Logger, clk clock.Clock) func(*creds.TokenClaims) {
	return func(claims *creds.TokenClaims) {
		for _, f := range findings.TokenWarnings(claims, clk.Now()) {
			log.Warn("token problem", "id", f.ID, "severity", string(f.Severity), "what", f.What, "why", f.Why, "fix", f.Fix)
		}
	}
}

// NewLogger returns the sidecar's logger: JSON or text on w, at level and above.
func NewLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
	o := &slog.HandlerOptions{Level: level}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, o))
	}
	return slog.New(slog.NewJSONHandler(w, o))
}
