package creds

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/credsidecar/credsidecar/internal/awsarn"
)

// Defaults for the zero values of Config, chosen from the SDKs' refresh windows (PROTOCOL.md §2).
const (
	// DefaultDuration is the requested session lifetime: the SDKs' windows need at least an hour.
	DefaultDuration = time.Hour
	// DefaultRefreshWindow starts refreshing with 40 min left, so the served credentials keep the
	// >= 20 min the SDKs need through 20 min of STS trouble.
	DefaultRefreshWindow = 40 * time.Minute
	// DefaultMinRemaining is the serving floor: below it SDKs would refetch on every call.
	DefaultMinRemaining = 5 * time.Minute
	// DefaultPollInterval bounds how long a missed filesystem event delays noticing a rotation.
	DefaultPollInterval = 30 * time.Second
	// DefaultCallTimeout bounds one STS call, so a hung connection cannot stall refreshes.
	DefaultCallTimeout = 10 * time.Second
)

// Limits on the requested session duration: the SDKs' refresh windows need an hour
// (PROTOCOL.md §2; shorter sessions make them call the endpoint on every request), and STS
// refuses more than twelve.
const (
	MinDuration = time.Hour
	MaxDuration = 12 * time.Hour
)

// region is the rule for a region name: lowercase letters and digits in dash-separated parts,
// at least two (eu-west-1, us-gov-west-1, or a test server's look-alike such as local-1).
var region = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)+$`)

// ValidRegion reports whether r is shaped like a region name: the one rule for the sidecar's
// STS region and the uploader's S3 region.
func ValidRegion(r string) bool { return len(r) <= 64 && region.MatchString(r) }

// Config says which role to assume with which token and how far ahead to refresh.
// Zero durations take the Default* values.
type Config struct {
	// RoleARN is the role to assume.
	RoleARN string
	// TokenFile is the projected service-account token, typically <dir>/token.
	TokenFile string
	// SessionName is the STS RoleSessionName; empty derives it from the token's namespace and pod.
	SessionName string
	// Duration is the requested session lifetime (STS DurationSeconds).
	Duration time.Duration
	// RefreshWindow starts a refresh when less than this lifetime remains (jittered up to 10% later).
	RefreshWindow time.Duration
	// MinRemaining is the floor below which credentials are no longer served.
	MinRemaining time.Duration
	// PollInterval re-checks the token file in case a filesystem event is missed.
	PollInterval time.Duration
	// CallTimeout bounds one STS call.
	CallTimeout time.Duration
	// Chain are roles to assume one after the other with AssumeRole after the web-identity call;
	// the last one's credentials are published, for ChainedDuration(Duration). With a chain, the
	// STS client given to NewManager must implement AssumeRoleAPI.
	Chain []ChainHop
	// SessionPolicy is an inline JSON session policy for the web-identity call (empty for none),
	// SessionPolicyARNs managed ones. With a Chain they limit only the first hop's session, which
	// must still be allowed sts:AssumeRole on the next role; the published credentials carry the
	// last role's permissions.
	SessionPolicy     string
	SessionPolicyARNs []string
}

// withDefaults fills zero values and checks the combination, naming the field and the value.
func (c Config) withDefaults() (Config, error) {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.Duration, DefaultDuration)
	def(&c.RefreshWindow, DefaultRefreshWindow)
	def(&c.MinRemaining, DefaultMinRemaining)
	def(&c.PollInterval, DefaultPollInterval)
	def(&c.CallTimeout, DefaultCallTimeout)

	var errs []error
	if err := awsarn.CheckRole(c.RoleARN); err != nil {
		errs = append(errs, fmt.Errorf("RoleARN %q: %w", c.RoleARN, err))
	}
	if c.TokenFile == "" {
		errs = append(errs, errors.New("TokenFile is empty: want the path of the projected service-account token"))
	}
	if c.SessionName != "" && !validSessionName(c.SessionName) {
		errs = append(errs, fmt.Errorf("SessionName %q: want 2-64 characters of [A-Za-z0-9_+=,.@-]", c.SessionName))
	}
	if c.Duration < MinDuration || c.Duration > MaxDuration || c.Duration%time.Second != 0 {
		errs = append(errs, fmt.Errorf("duration %s: want whole seconds between %s and %s", c.Duration, MinDuration, MaxDuration))
	}
	if c.MinRemaining < 0 {
		errs = append(errs, fmt.Errorf("MinRemaining %s: want a positive duration", c.MinRemaining))
	}
	if c.RefreshWindow <= c.MinRemaining {
		errs = append(errs, fmt.Errorf("RefreshWindow %s: want it longer than MinRemaining %s, or credentials stop being served before a refresh starts", c.RefreshWindow, c.MinRemaining))
	}
	if c.RefreshWindow >= c.Duration {
		errs = append(errs, fmt.Errorf("RefreshWindow %s: want it shorter than Duration %s, or every fetch is due for refresh at once", c.RefreshWindow, c.Duration))
	}
	if c.PollInterval < 0 {
		errs = append(errs, fmt.Errorf("PollInterval %s: want a positive duration", c.PollInterval))
	}
	if c.CallTimeout < 0 {
		errs = append(errs, fmt.Errorf("CallTimeout %s: want a positive duration", c.CallTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return c, fmt.Errorf("credentials config: %w", err)
	}
	return c, nil
}
