// Package config owns the sidecar's `serve` command line: every setting is a flag with an
// environment-variable fallback (AWS names where the SDKs already define one), the flag wins,
// and Validate names the flag, the variable and the value given for every problem it finds, so
// a pod that will not start says exactly which line of its manifest to fix.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/credsidecar/credsidecar/internal/awsarn"
	"github.com/credsidecar/credsidecar/internal/credfile"
	"github.com/credsidecar/credsidecar/internal/creds"
	"github.com/credsidecar/credsidecar/internal/imds"
	"github.com/credsidecar/credsidecar/internal/server"
)

// ErrVersion is returned by Parse when --version was given: the caller prints the version.
var ErrVersion = errors.New("version requested")

// Config is the sidecar's configuration. Build one with Parse, or start from Defaults and set
// the required fields, then call Validate.
type Config struct {
	// RoleARN is the unnamed role, served at /v1/credentials (and by IMDS); it may be empty when
	// Roles has named ones.
	RoleARN string
	// Roles are the named roles (--role NAME=ARN), each served at /v1/credentials/NAME.
	Roles []Role
	// TokenFile is the kubelet-projected service-account token.
	TokenFile string
	// Region selects the regional STS endpoint; it may be empty when STSEndpoint is set.
	Region string
	// STSEndpoint overrides the STS URL, e.g. for a VPC endpoint or a test server.
	STSEndpoint string
	// SessionName is the STS RoleSessionName; empty lets creds derive it from the token's claims.
	SessionName string
	// ChainRoleARNs are roles assumed in turn with AssumeRole after RoleARN; the last one's
	// credentials are served. Empty: no chaining.
	ChainRoleARNs []string
	// ChainExternalIDs are the chained roles' external IDs, one per ChainRoleARNs entry in the same
	// order ("" for a role that needs none), or empty when no role needs one.
	ChainExternalIDs []string
	// SessionPolicy is an inline session policy (JSON) for the web-identity call; empty sends none.
	SessionPolicy string
	// SessionPolicyARNs are managed session policies for the web-identity call.
	SessionPolicyARNs []string
	// Duration is the STS session length asked for.
	Duration time.Duration
	// RefreshWindow is how much lifetime may be left before the credentials are refreshed.
	RefreshWindow time.Duration
	// MinRemaining is the least lifetime served credentials may have; below it the endpoint says 503.
	MinRemaining time.Duration
	// TokenPollInterval is how often the token file is re-read besides file-change notifications.
	TokenPollInterval time.Duration
	// ShutdownTimeout bounds the graceful shutdown after SIGTERM.
	ShutdownTimeout time.Duration
	// Listen is the credentials endpoint's address.
	Listen string
	// AllowNonLoopback permits a Listen address other than a loopback IP.
	AllowNonLoopback bool
	// AllowInsecureSTSEndpoint permits a plain-http STSEndpoint to a host other than loopback.
	AllowInsecureSTSEndpoint bool
	// PodIP and HostIP are the downward API's status.podIP and status.hostIP: equal, they say the
	// pod shares the node's network (hostNetwork), and with it its loopback.
	PodIP, HostIP string
	// AuthTokenFile holds the token callers must send in the Authorization header.
	AuthTokenFile string
	// MetricsListen is the address of /metrics, /healthz and /readyz.
	MetricsListen string
	// IMDSListen is the address of the EC2 instance metadata (IMDSv2) emulation; empty turns it off.
	IMDSListen string
	// CredentialsFile is an AWS shared credentials file the sidecar keeps current; empty turns it off.
	CredentialsFile string
	// CredentialsProfile is the profile CredentialsFile holds.
	CredentialsProfile string
	// LogFormat is "json" or "text".
	LogFormat string
	// LogLevel is the least severe level logged.
	LogLevel slog.Level

	// given records, per flag name, the text a value was parsed from and the variable it came from,
	// so that errors quote what the user wrote ("15m", not "15m0s").
	given map[string]origin
}

// setting is one command-line setting: its flag, the environment variables read when the flag
// is absent (first non-empty wins), and how its text becomes a Config field.
type setting struct {
	flag    string
	envs    []string
	def     string // applied when neither flag nor environment gives a value
	defHelp string // shown in --help instead of def, for computed defaults
	kind    string // the value's type as shown in --help
	usage   string
	isBool  bool
	set     func(c *Config, v string) error
	// setList, instead of set, takes a repeatable flag's values, or the variable's value split at
	// commas.
	setList func(c *Config, vs []string) error
}

func settings() []setting {
	str := func(f func(c *Config) *string) func(*Config, string) error {
		return func(c *Config, v string) error { *f(c) = v; return nil }
	}
	list := func(f func(c *Config) *[]string) func(*Config, []string) error {
		return func(c *Config, vs []string) error { *f(c) = vs; return nil }
	}
	dur := func(f func(c *Config) *time.Duration) func(*Config, string) error {
		return func(c *Config, v string) error {
			d, err := parseDuration(v)
			*f(c) = d
			return err
		}
	}
	table := []setting{
		{flag: "role-arn", envs: []string{"AWS_ROLE_ARN"}, kind: "arn", defHelp: "required unless --role",
			usage: "IAM role to assume, served at /v1/credentials", set: str(func(c *Config) *string { return &c.RoleARN })},
		{flag: "token-file", envs: []string{"AWS_WEB_IDENTITY_TOKEN_FILE"}, kind: "path", defHelp: "required",
			usage: "projected service-account token", set: str(func(c *Config) *string { return &c.TokenFile })},
		{flag: "region", envs: []string{"AWS_REGION", "AWS_DEFAULT_REGION"}, kind: "string",
			defHelp: "required unless --sts-endpoint", usage: "AWS region whose STS endpoint is called",
			set: str(func(c *Config) *string { return &c.Region })},
		{flag: "sts-endpoint", envs: []string{"AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL"}, kind: "url",
			defHelp: "the region's STS endpoint", usage: "STS URL, for a VPC endpoint or another STS",
			set: str(func(c *Config) *string { return &c.STSEndpoint })},
		{flag: "session-name", envs: []string{"AWS_ROLE_SESSION_NAME"}, kind: "string",
			defHelp: "$POD_NAMESPACE.$POD_NAME, else from the token's claims",
			usage:   "STS role session name, shown in CloudTrail",
			set:     str(func(c *Config) *string { return &c.SessionName })},
		{flag: "chain-role-arn", envs: []string{"CREDSIDECAR_CHAIN_ROLE_ARNS"}, kind: "arn", defHelp: "none",
			usage: "role to assume next with the previous role's session (role chaining, sessions capped at 1h); " +
				"repeat for more hops; the variable takes a comma-separated list",
			setList: list(func(c *Config) *[]string { return &c.ChainRoleARNs })},
		{flag: "chain-external-id", envs: []string{"CREDSIDECAR_CHAIN_EXTERNAL_IDS"}, kind: "string", defHelp: "none",
			usage: "external ID for the chained role in the same position; give one per --chain-role-arn, empty for " +
				"a role that needs none; the variable takes a comma-separated list",
			setList: list(func(c *Config) *[]string { return &c.ChainExternalIDs })},
		{flag: "session-policy", envs: []string{"CREDSIDECAR_SESSION_POLICY"}, kind: "json", defHelp: "none",
			usage: "inline session policy for the web-identity call, at most 2048 characters",
			set:   str(func(c *Config) *string { return &c.SessionPolicy })},
		{flag: "session-policy-arn", envs: []string{"CREDSIDECAR_SESSION_POLICY_ARNS"}, kind: "arn", defHelp: "none",
			usage: "managed session policy for the web-identity call; repeat for more, at most 10; the variable " +
				"takes a comma-separated list",
			setList: list(func(c *Config) *[]string { return &c.SessionPolicyARNs })},
		{flag: "duration", envs: []string{"CREDSIDECAR_DURATION"}, kind: "duration", def: "1h",
			usage: "STS session length, 1h to 12h", set: dur(func(c *Config) *time.Duration { return &c.Duration })},
		{flag: "refresh-window", envs: []string{"CREDSIDECAR_REFRESH_WINDOW"}, kind: "duration", def: "40m",
			usage: "refresh when less than this lifetime remains (jittered up to 10% later)",
			set:   dur(func(c *Config) *time.Duration { return &c.RefreshWindow })},
		{flag: "min-remaining", envs: []string{"CREDSIDECAR_MIN_REMAINING"}, kind: "duration", def: "5m",
			usage: "never serve credentials with less lifetime left; answer 503 instead",
			set:   dur(func(c *Config) *time.Duration { return &c.MinRemaining })},
		{flag: "token-poll-interval", envs: []string{"CREDSIDECAR_TOKEN_POLL_INTERVAL"}, kind: "duration", def: "30s",
			usage: "re-read token files this often, besides file-change notifications",
			set:   dur(func(c *Config) *time.Duration { return &c.TokenPollInterval })},
		{flag: "shutdown-timeout", envs: []string{"CREDSIDECAR_SHUTDOWN_TIMEOUT"}, kind: "duration", def: "5s",
			usage: "time allowed for in-flight requests after SIGTERM; keep below terminationGracePeriodSeconds",
			set:   dur(func(c *Config) *time.Duration { return &c.ShutdownTimeout })},
		{flag: "listen", envs: []string{"CREDSIDECAR_LISTEN"}, kind: "address", def: "127.0.0.1:9910",
			usage: "credentials endpoint address (AWS_CONTAINER_CREDENTIALS_FULL_URI=http://<this>/v1/credentials)",
			set:   str(func(c *Config) *string { return &c.Listen })},
		{flag: "allow-non-loopback", envs: []string{"CREDSIDECAR_ALLOW_NON_LOOPBACK"}, isBool: true, def: "false",
			usage: "allow --listen on an address other than loopback",
			set:   func(c *Config, v string) error { return SetBool(&c.AllowNonLoopback)(v) }},
		{flag: "allow-insecure-sts-endpoint", envs: []string{"CREDSIDECAR_ALLOW_INSECURE_STS_ENDPOINT"}, isBool: true, def: "false",
			usage: "allow a plain-http --sts-endpoint to a host other than loopback (the service-account token then crosses the network in clear text)",
			set:   func(c *Config, v string) error { return SetBool(&c.AllowInsecureSTSEndpoint)(v) }},
		{flag: "pod-ip", envs: []string{"POD_IP"}, kind: "ip", defHelp: "unset; set it from the downward API's status.podIP",
			usage: "the pod's IP; equal to --host-ip it reveals hostNetwork, where IMDS is refused",
			set:   str(func(c *Config) *string { return &c.PodIP })},
		{flag: "host-ip", envs: []string{"HOST_IP"}, kind: "ip", defHelp: "unset; set it from the downward API's status.hostIP",
			usage: "the node's IP, to compare with --pod-ip",
			set:   str(func(c *Config) *string { return &c.HostIP })},
		{flag: "auth-token-file", envs: []string{"CREDSIDECAR_AUTH_TOKEN_FILE"}, kind: "path",
			def: "/var/run/credsidecar/auth-token", usage: "Authorization token for the credentials endpoint; generated if absent " +
				"(AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=<this>)",
			set: str(func(c *Config) *string { return &c.AuthTokenFile })},
		{flag: "metrics-listen", envs: []string{"CREDSIDECAR_METRICS_LISTEN"}, kind: "address", def: ":9912",
			usage: "address of /metrics, /healthz and /readyz",
			set:   str(func(c *Config) *string { return &c.MetricsListen })},
		{flag: "imds-listen", envs: []string{"CREDSIDECAR_IMDS_LISTEN"}, kind: "address", defHelp: "off",
			usage: "also serve the credentials as EC2 instance metadata (IMDSv2) on this loopback address " +
				"(AWS_EC2_METADATA_SERVICE_ENDPOINT=http://<this>)",
			set: str(func(c *Config) *string { return &c.IMDSListen })},
		{flag: "credentials-file", envs: []string{"CREDSIDECAR_CREDENTIALS_FILE"}, kind: "path", defHelp: "off",
			usage: "also keep this AWS shared credentials file current (AWS_SHARED_CREDENTIALS_FILE=<this>); " +
				"SDKs read it once, so it suits short-lived processes",
			set: str(func(c *Config) *string { return &c.CredentialsFile })},
		{flag: "credentials-profile", envs: []string{"CREDSIDECAR_CREDENTIALS_PROFILE"}, kind: "name", def: credfile.DefaultProfile,
			usage: "profile written to --credentials-file",
			set:   str(func(c *Config) *string { return &c.CredentialsProfile })},
		{flag: "log-format", envs: []string{"CREDSIDECAR_LOG_FORMAT"}, kind: "json|text", def: "json",
			usage: "log format", set: str(func(c *Config) *string { return &c.LogFormat })},
		{flag: "log-level", envs: []string{"CREDSIDECAR_LOG_LEVEL"}, kind: "level", def: "info",
			usage: "least severe level logged: debug, info, warn or error",
			set: func(c *Config, v string) error {
				if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
					return errors.New("must be debug, info, warn or error")
				}
				return nil
			}},
	}
	// The named roles' settings come after the unnamed role's chain and policies.
	at := slices.IndexFunc(table, func(s setting) bool { return s.flag == "session-policy-arn" }) + 1
	return slices.Insert(table, at, roleSettings()...)
}

// parseDuration accepts Go durations ("1h30m") and, since STS counts in seconds, bare seconds.
func parseDuration(v string) (time.Duration, error) {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n > int64(1<<63-1)/int64(time.Second) || n < -int64(1<<63-1)/int64(time.Second) {
			return 0, errors.New("out of range")
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, errors.New("must be a duration such as 90s, 40m or 1h, or a number of seconds")
	}
	return d, nil
}

// Default is the serve setting flagName's default value, "" when it has none: other commands
// that talk to a running sidecar (credential-process) derive theirs from it.
func Default(flagName string) string {
	for _, s := range settings() {
		if s.flag == flagName {
			return s.def
		}
	}
	return ""
}

// Defaults returns the configuration with every default applied and the required fields empty.
func Defaults() Config {
	var c Config
	for _, s := range settings() {
		if s.def != "" && s.set != nil {
			_ = s.set(&c, s.def) // the defaults are constants; TestParse checks every one
		}
	}
	return c
}

// bind is the Setting that applies s to c.
func (s setting) bind(c *Config) Setting {
	out := Setting{Flag: s.flag, Envs: s.envs, Default: s.def, DefaultHelp: s.defHelp, Kind: s.kind,
		Usage: s.usage, Bool: s.isBool}
	if s.set != nil {
		out.Set = func(v string) error { return s.set(c, v) }
	}
	if s.setList != nil {
		out.SetList = func(vs []string) error { return s.setList(c, vs) }
	}
	if s.flag == "session-name" {
		out.DefaultFrom = defaultSessionName
	}
	return out
}

// Serve is the serve settings registered on a Binder: serve, check and credential-process
// read the same table, with the same defaults.
type Serve struct {
	b *Binder
	c Config
}

// RegisterServe adds every serve setting to b. After the FlagSet is parsed and b resolved,
// Config returns the validated configuration.
func RegisterServe(b *Binder) *Serve {
	s := &Serve{b: b}
	for _, st := range settings() {
		b.Add(st.bind(&s.c))
	}
	return s
}

// Config returns the resolved configuration, validated: an *Error names the flag, the variable
// and the value of every problem.
func (s *Serve) Config() (Config, error) {
	c := s.c
	c.given = s.b.given
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Parse reads the serve command's arguments, falling back to getenv for every flag not given,
// and validates the result. It returns flag.ErrHelp for -h/--help and ErrVersion for --version;
// every other error is one line naming the flag, the variable and the value.
func Parse(args []string, getenv func(string) string) (Config, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned, not printed
	fs.Usage = func() {}
	b := NewBinder(fs)
	serve := RegisterServe(b)
	version := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return Config{}, err
		}
		return Config{}, fmt.Errorf("parse arguments: %w", err)
	}
	if *version {
		return Config{}, ErrVersion
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("parse arguments: unexpected argument %q: serve takes flags only", fs.Arg(0))
	}
	if problems := b.Resolve(getenv); len(problems) > 0 {
		return Config{}, &Error{Problems: problems}
	}
	return serve.Config()
}

// defaultSessionName names the session after the pod when the downward API provides both
// names; otherwise it stays empty and creds derives it from the token, which carries them too.
func defaultSessionName(getenv func(string) string) string {
	ns, pod := getenv("POD_NAMESPACE"), getenv("POD_NAME")
	if ns == "" || pod == "" {
		return ""
	}
	return creds.SessionName(ns, pod)
}

// Usage writes the serve command's help, each flag with its variable and default.
func Usage(w io.Writer, program string) {
	fmt.Fprintf(w, "Usage: %s [serve] [flags]\n\n", program)
	fmt.Fprintf(w, "Serves temporary AWS credentials for the pod's service account on a container-credentials endpoint.\n")
	fmt.Fprintf(w, "Each flag falls back to the environment variable shown; a flag given on the command line wins.\n\n")
	writeUsage(w, serveSettings(), nil, "  --version\tprint the version and exit")
}

// UsageOf writes the help lines of the serve settings keep accepts.
func UsageOf(w io.Writer, keep func(Setting) bool) { writeUsage(w, serveSettings(), keep) }

// serveSettings are the serve settings, bound to a throwaway Config: for their help.
func serveSettings() []Setting {
	var c Config
	var list []Setting
	for _, s := range settings() {
		list = append(list, s.bind(&c))
	}
	return list
}

// FieldError is one configuration problem.
type FieldError struct {
	// Flag is the flag's name without dashes.
	Flag string
	// Env is the variable that gave the value, or every variable the flag reads if none did.
	Env string
	// Value is the value as given.
	Value string
	// Problem says what is wrong and why.
	Problem string
}

// Error reads `--flag (VARIABLE) = "value": problem`.
func (e *FieldError) Error() string {
	return fmt.Sprintf("--%s (%s) = %q: %s", e.Flag, e.Env, e.Value, e.Problem)
}

// Error lists every problem Validate or Parse found; its message is one line.
type Error struct {
	// Problems holds at least one problem, in the order of the flags.
	Problems []*FieldError
}

// Error joins the problems with "; " after "invalid configuration: ".
func (e *Error) Error() string {
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msgs[i] = p.Error()
	}
	return "invalid configuration: " + strings.Join(msgs, "; ")
}

// problem builds a FieldError for flag, quoting the value as given when Parse saw it and
// formatted otherwise.
func (c *Config) problem(flagName, formatted, problem string) *FieldError {
	var envs []string
	for _, s := range settings() {
		if s.flag == flagName {
			envs = s.envs
		}
	}
	return problemFor(c.given, envs, flagName, formatted, problem)
}

// Limits on STS sessions and on what the SDKs do with them (see PROTOCOL.md).
const (
	// minWindow keeps the credentials served in normal operation above 15 min, where botocore
	// and the Java v1 SDK start re-fetching on every call: refreshes are jittered up to 10% later
	// than the window, so 0.9 x 16m40s = 15m.
	minWindow = 16*time.Minute + 40*time.Second
	// imdsMinWindow keeps instance-metadata credentials beyond botocore's expiry rewrite, 30 min
	// (PROTOCOL.md §2), through the same jitter: 0.9 x 33m20s = 30m.
	imdsMinWindow   = 33*time.Minute + 20*time.Second
	minMinRemaining = time.Minute
	minPollInterval = time.Second
	maxPollInterval = 5 * time.Minute
)

// Validate checks every setting and every combination, and returns an *Error listing all the
// problems found, or nil.
func (c Config) Validate() error {
	var errs []*FieldError
	add := func(flagName, formatted, problem string) {
		errs = append(errs, c.problem(flagName, formatted, problem))
	}
	switch {
	case c.RoleARN == "" && len(c.Roles) == 0:
		add("role-arn", "", "required unless --role names a role: the IAM role to assume, arn:aws:iam::<account-id>:role/<name>")
	case c.RoleARN == "":
	case awsarn.CheckRole(c.RoleARN) != nil:
		add("role-arn", c.RoleARN, awsarn.CheckRole(c.RoleARN).Error())
	}
	if c.TokenFile == "" {
		add("token-file", "", "required: the path of the projected service-account token, as mounted in the pod")
	}
	switch {
	case c.Region == "" && c.STSEndpoint == "":
		add("region", "", "required unless --sts-endpoint is set: the AWS SDK calls the regional STS endpoint")
	case c.Region == "" && c.chained():
		add("region", "", "required with --chain-role-arn or --role-chain-role-arn: AssumeRole calls are signed for a region")
	case c.Region == "" && c.IMDSListen != "":
		add("region", "", "required with --imds-listen: instance metadata reports the region, and SDKs use it")
	case c.Region != "" && !creds.ValidRegion(c.Region):
		add("region", c.Region, "not a region name such as eu-west-1")
	}
	if c.STSEndpoint != "" {
		problem := checkEndpoint(c.STSEndpoint)
		if problem == "" && c.InsecureSTSEndpoint() && !c.AllowInsecureSTSEndpoint {
			problem = "plain http to a host other than loopback: the service-account token would cross the network " +
				"in clear text; use https, or set --allow-insecure-sts-endpoint"
		}
		if problem != "" {
			add("sts-endpoint", c.STSEndpoint, problem)
		}
	}
	// A valid name is its own fitted form; anything the fitting would change is refused, because
	// CloudTrail would otherwise show a name the user never wrote.
	if c.SessionName != "" && creds.SessionName(c.SessionName, "") != c.SessionName {
		add("session-name", c.SessionName, "must be 2-64 characters from letters, digits and _+=,.@-")
	}
	checkChain(chainSpec{arns: c.ChainRoleARNs, ids: c.ChainExternalIDs, policy: c.SessionPolicy,
		policyARNs: c.SessionPolicyARNs, arnFlag: "chain-role-arn", idFlag: "chain-external-id",
		policyFlag: "session-policy", policyARNFlag: "session-policy-arn"}, add)
	c.validateRoles(add)
	c.validateTimes(add)
	c.validateListen(add)
	switch {
	case c.AuthTokenFile == "":
		add("auth-token-file", "", "required: where the endpoint's Authorization token is read or written")
	case c.TokenFile != "" && filepath.Clean(c.AuthTokenFile) == filepath.Clean(c.TokenFile):
		add("auth-token-file", c.AuthTokenFile, "must not be the --token-file: the service-account token would "+
			"then be accepted as the endpoint's Authorization token")
	}
	if c.IMDSListen != "" && c.RoleARN == "" && len(c.Roles) > 0 {
		add("imds-listen", c.IMDSListen, "needs --role-arn: instance metadata serves the unnamed role only, since an "+
			"instance has one role; the named roles are served at /v1/credentials/NAME")
	}
	if c.IMDSListen != "" && c.HostNetwork() {
		add("imds-listen", c.IMDSListen, fmt.Sprintf("refused: the pod uses hostNetwork (POD_IP = HOST_IP = %s), so its "+
			"loopback is the node's and every process on the node could read the credentials from IMDS, which has no "+
			"token; serve IMDS only from pods without hostNetwork", c.PodIP))
	}
	c.validateModes(add)
	if c.LogFormat != "json" && c.LogFormat != "text" {
		add("log-format", c.LogFormat, "must be json or text")
	}
	if len(errs) > 0 {
		return &Error{Problems: errs}
	}
	return nil
}

// chainSpec is one role's chain and session policies, and the flags that set them.
type chainSpec struct {
	arns, ids, policyARNs                      []string
	policy                                     string
	arnFlag, idFlag, policyFlag, policyARNFlag string
	what                                       string // "role \"name\": " for a named role
}

// checkChain checks a role's chain and session policies: the one rule for the unnamed role and
// every named one.
func checkChain(s chainSpec, add func(flagName, formatted, problem string)) {
	joined := func(vs []string) string { return strings.Join(vs, ",") }
	if n := len(s.arns); n > creds.MaxChainHops {
		add(s.arnFlag, joined(s.arns), fmt.Sprintf("%s%d roles, at most %d: every hop is one more STS call per refresh",
			s.what, n, creds.MaxChainHops))
	}
	for i, arn := range s.arns {
		if err := awsarn.CheckRole(arn); err != nil {
			add(s.arnFlag, joined(s.arns), fmt.Sprintf("%shop %d %q is %v", s.what, i+2, arn, err))
		}
	}
	switch ids := s.ids; {
	case len(ids) > 0 && len(ids) != len(s.arns):
		add(s.idFlag, joined(ids), fmt.Sprintf("%s%d external IDs for %d chained roles: give one per "+
			"--%s, in the same order, empty for a role that needs none", s.what, len(ids), len(s.arns), s.arnFlag))
	default:
		for i, id := range ids {
			if id != "" && creds.CheckExternalID(id) != nil {
				add(s.idFlag, joined(ids), fmt.Sprintf("%sthe external ID for hop %d: %v", s.what, i+2, creds.CheckExternalID(id)))
			}
		}
	}
	if err := creds.CheckSessionPolicy(s.policy); err != nil {
		add(s.policyFlag, s.policy, s.what+err.Error())
	}
	if n := len(s.policyARNs); n > creds.MaxSessionPolicyARNs {
		add(s.policyARNFlag, joined(s.policyARNs), fmt.Sprintf("%s%d policies, STS accepts at most %d",
			s.what, n, creds.MaxSessionPolicyARNs))
	}
	for _, arn := range s.policyARNs {
		if err := awsarn.CheckPolicy(arn); err != nil {
			add(s.policyARNFlag, joined(s.policyARNs), fmt.Sprintf("%s%q is %v", s.what, arn, err))
		}
	}
}

func (c Config) validateTimes(add func(flagName, formatted, problem string)) {
	switch {
	case c.Duration < creds.MinDuration:
		add("duration", c.Duration.String(), "must be at least 1h: SDKs refresh container credentials 5-15 min "+
			"before expiry, shorter sessions make them call the endpoint on every request")
	case c.Duration > creds.MaxDuration:
		add("duration", c.Duration.String(), "must be at most 12h: STS refuses longer sessions")
	case c.Duration%time.Second != 0:
		add("duration", c.Duration.String(), "must be whole seconds: STS takes DurationSeconds")
	}
	durationOK := c.Duration >= creds.MinDuration && c.Duration <= creds.MaxDuration
	windowOK := true
	// The served credentials' lifetime: a chained role's session lasts at most an hour.
	lifetime, lifetimeFrom := c.Duration, fmt.Sprintf("--duration %v", c.Duration)
	if c.chained() && c.Duration > creds.MaxChainedDuration {
		lifetime, lifetimeFrom = creds.MaxChainedDuration, fmt.Sprintf("the %v a chained role's session lasts", creds.MaxChainedDuration)
	}
	switch {
	case c.RefreshWindow < minWindow:
		windowOK = false
		add("refresh-window", c.RefreshWindow.String(), "must be at least 16m40s: the refresh may start as late as "+
			"90% of the window, and below 15 min left botocore and the Java v1 SDK call the endpoint on every AWS request")
	case c.IMDSListen != "" && c.RefreshWindow < imdsMinWindow:
		windowOK = false
		add("refresh-window", c.RefreshWindow.String(), "must be at least 33m20s with --imds-listen: the refresh may "+
			"start as late as 90% of the window, and botocore rewrites an instance-metadata expiry less than 30 min away "+
			"and then fetches credentials far more often than they change")
	case durationOK && c.RefreshWindow >= lifetime:
		windowOK = false
		add("refresh-window", c.RefreshWindow.String(), fmt.Sprintf("must be less than %v (%s): fresh credentials "+
			"would already be due for refresh and the sidecar would call STS without pause", lifetime, lifetimeFrom))
	}
	switch {
	case c.MinRemaining < minMinRemaining:
		add("min-remaining", c.MinRemaining.String(), "must be at least 1m: credentials closer to expiry "+
			"may expire before the SDK has used them")
	case windowOK && c.MinRemaining >= c.RefreshWindow:
		add("min-remaining", c.MinRemaining.String(), fmt.Sprintf("must be less than --refresh-window (%v): "+
			"credentials must be refreshed before they become unservable", c.RefreshWindow))
	}
	if c.TokenPollInterval < minPollInterval || c.TokenPollInterval > maxPollInterval {
		add("token-poll-interval", c.TokenPollInterval.String(), "must be between 1s and 5m: the kubelet "+
			"rotates tokens as often as every 8 minutes")
	}
	if c.ShutdownTimeout <= 0 {
		add("shutdown-timeout", c.ShutdownTimeout.String(), "must be positive")
	}
}

func (c Config) validateListen(add func(flagName, formatted, problem string)) {
	credHost, credPort, _ := checkAddress(c.Listen)
	if err := server.CheckCredentialsListen(c.Listen, c.AllowNonLoopback); err != nil {
		add("listen", c.Listen, err.Error())
	}
	metricsHost, metricsPort, problem := checkAddress(c.MetricsListen)
	if _, err := netip.ParseAddr(metricsHost); problem == "" && metricsHost != "" && err != nil {
		problem = "host must be an IP address, or empty for every interface"
	}
	if problem == "" && credPort == metricsPort && credPort != "0" && overlap(credHost, metricsHost) {
		problem = "uses the port of --listen (" + strconv.Quote(c.Listen) + "): the two endpoints need their own listeners"
	}
	if problem != "" {
		add("metrics-listen", c.MetricsListen, problem)
	}
}

// validateModes checks the optional ways of serving the credentials besides the endpoint.
func (c Config) validateModes(add func(flagName, formatted, problem string)) {
	if c.IMDSListen != "" {
		host, port, problem := checkAddress(c.IMDSListen)
		switch {
		case problem != "":
		case imds.CheckLoopback(c.IMDSListen) != nil:
			problem = "must be a loopback IP address such as 127.0.0.1: anything that reaches it gets the " +
				"credentials without a token (--allow-non-loopback does not apply to it)"
		case port != "0" && (sameListener(host, port, c.Listen) || sameListener(host, port, c.MetricsListen)):
			problem = "uses the port of --listen or --metrics-listen: instance metadata needs a listener of its own " +
				"(the Go SDK replaces the URL's path)"
		}
		if problem != "" {
			add("imds-listen", c.IMDSListen, problem)
		}
	}
	if p := c.CredentialsFile; p != "" {
		switch err := credfile.CheckPath(p); {
		case err != nil:
			add("credentials-file", p, err.Error())
		case filepath.Clean(p) == filepath.Clean(c.AuthTokenFile) || filepath.Clean(p) == filepath.Clean(c.TokenFile):
			add("credentials-file", p, "must not be the --auth-token-file or the --token-file")
		}
	}
	if err := credfile.CheckProfile(c.CredentialsProfile); err != nil {
		add("credentials-profile", c.CredentialsProfile, "must be 1 to 64 letters, digits and _.+=,@/-")
	}
}

// sameListener reports whether host:port and addr could claim the same port.
func sameListener(host, port, addr string) bool {
	h, p, err := net.SplitHostPort(addr)
	return err == nil && p == port && overlap(host, h)
}

// checkAddress splits host:port and checks the port; the host is the caller's concern.
func checkAddress(addr string) (host, port, problem string) {
	host, port, err := server.SplitAddr(addr)
	if err != nil {
		return "", "", err.Error()
	}
	return host, port, ""
}

// overlap reports whether two listen hosts could claim the same port.
func overlap(a, b string) bool {
	wild := func(h string) bool {
		ip, err := netip.ParseAddr(h)
		return h == "" || (err == nil && ip.IsUnspecified())
	}
	return a == b || wild(a) || wild(b)
}

// InsecureSTSEndpoint reports whether STSEndpoint is plain http to a host other than loopback.
func (c Config) InsecureSTSEndpoint() bool {
	u, err := url.Parse(c.STSEndpoint)
	if err != nil || u.Scheme != "http" {
		return false
	}
	if u.Hostname() == "localhost" {
		return false
	}
	ip, err := netip.ParseAddr(u.Hostname())
	return err != nil || !ip.Unmap().IsLoopback()
}

// HostNetwork reports whether the downward API says the pod shares the node's network.
func (c Config) HostNetwork() bool { return c.PodIP != "" && c.PodIP == c.HostIP }

func checkEndpoint(raw string) string {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return "not a URL"
	case u.Scheme != "https" && u.Scheme != "http":
		return "must be an http or https URL, such as https://sts.eu-west-1.amazonaws.com"
	case u.Host == "":
		return "has no host"
	case u.User != nil:
		return "must not carry credentials"
	case u.RawQuery != "" || u.Fragment != "":
		return "must not have a query or fragment"
	}
	return ""
}
