package diagnose

import (
	"context"
	"errors"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/aws/smithy-go"

	"github.com/credsidecar/credsidecar/internal/creds"
	"github.com/credsidecar/credsidecar/internal/findings"
)

// Options are the settings of one check: serve's own (role, token, region, endpoint, session
// name, duration) and the S3 probe's.
type Options struct {
	// Role names the sidecar's role checked, for the report ("" for the unnamed one).
	Role string
	// RoleARN is the role to assume.
	RoleARN string
	// TokenFile is the projected token's path.
	TokenFile string
	// TokenFileSource says how TokenFile was given ("--token-file" or the variable's name), for
	// messages; AWS_WEB_IDENTITY_TOKEN_FILE when empty.
	TokenFileSource string
	// Region selects the regional STS endpoint and signs the probes.
	Region string
	// STSEndpoint overrides the STS URL.
	STSEndpoint string
	// SessionName is the STS RoleSessionName; derived from the token's claims when empty.
	SessionName string
	// Duration is the session length asked for; creds.DefaultDuration when 0.
	Duration time.Duration
	// ProbeBucket, when set, is probed with ListObjectsV2, PutObject and DeleteObject.
	ProbeBucket string
	// S3Endpoint overrides the S3 URL of the probe.
	S3Endpoint string
	// S3PathStyle addresses the bucket in the URL path, as S3-compatible stores need.
	S3PathStyle bool
	// Timeout bounds each network call; creds.DefaultCallTimeout when 0.
	Timeout time.Duration
	// Now is the clock that judges the token's expiry; time.Now when nil.
	Now func() time.Time
	// KnownTokenPaths are searched for a token when TokenFile is missing;
	// DefaultKnownTokenPaths() when nil.
	KnownTokenPaths []string
}

// fallbackRegion signs calls when only an endpoint was given; S3-compatible stores and
// endpoint-only setups accept any region.
const fallbackRegion = "us-east-1"

func (o Options) withDefaults() (Options, tokenInput) {
	if o.Duration == 0 {
		o.Duration = creds.DefaultDuration
	}
	if o.Timeout <= 0 {
		o.Timeout = creds.DefaultCallTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.TokenFileSource == "" {
		o.TokenFileSource = "AWS_WEB_IDENTITY_TOKEN_FILE"
	}
	ti := tokenInput{path: o.TokenFile, source: o.TokenFileSource, known: o.KnownTokenPaths}
	if o.KnownTokenPaths == nil {
		ti.known, ti.defaultSA = DefaultKnownTokenPaths(), defaultSATokenPath
	}
	return o, ti
}

// Report is the outcome of a check: the --output json document.
type Report struct {
	// OK is true when no finding is an error.
	OK bool `json:"ok"`
	// Errors and Warnings count the findings by severity.
	Errors   int `json:"errors"`
	Warnings int `json:"warnings"`
	// CheckedAt is when the check ran.
	CheckedAt time.Time `json:"checked_at"`
	// TokenFile is the token's path and TokenFileSource how it was given.
	TokenFile       string `json:"token_file"`
	TokenFileSource string `json:"token_file_source"`
	// Token summarises the token's claims; nil when the file is unusable. It never holds the token.
	Token *TokenSummary `json:"token"`
	// Role names the sidecar's role checked ("" for the unnamed one, --role-arn).
	Role string `json:"role,omitempty"`
	// RoleARN is the role asked for.
	RoleARN string `json:"role_arn"`
	// Region is the configured region, if any.
	Region string `json:"region,omitempty"`
	// STSEndpoint is the STS URL called.
	STSEndpoint string `json:"sts_endpoint"`
	// SessionName is the RoleSessionName sent.
	SessionName string `json:"session_name,omitempty"`
	// DurationSeconds is the session length asked for.
	DurationSeconds int64 `json:"duration_seconds"`
	// STS is STS's answer.
	STS STSResult `json:"sts"`
	// S3 is the probe's result, when a bucket was given and credentials were issued.
	S3 *S3Result `json:"s3,omitempty"`
	// Findings are the problems found, in the order they were found.
	Findings []findings.Finding `json:"findings"`
}

// TokenSummary is the non-secret part of the token.
type TokenSummary struct {
	Issuer           string     `json:"iss"`
	Subject          string     `json:"sub"`
	Audience         []string   `json:"aud"`
	IssuedAt         *time.Time `json:"iat,omitempty"`
	ExpiresAt        *time.Time `json:"exp,omitempty"`
	LifetimeSeconds  int64      `json:"lifetime_seconds,omitempty"`
	RemainingSeconds int64      `json:"remaining_seconds"`
	Namespace        string     `json:"namespace,omitempty"`
	ServiceAccount   string     `json:"service_account,omitempty"`
	Pod              string     `json:"pod,omitempty"`
}

// STSResult is what STS answered to AssumeRoleWithWebIdentity and to GetCallerIdentity.
type STSResult struct {
	// Called is false when the check stopped before STS (no usable token).
	Called bool `json:"called"`
	// OK is true when credentials were issued.
	OK bool `json:"ok"`
	// Code and Message are STS's error, or NoAnswer when none came back.
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
	// AssumedRoleARN is the session's ARN.
	AssumedRoleARN string `json:"assumed_role_arn,omitempty"`
	// AccessKeyID is masked to its last 4 characters.
	AccessKeyID string `json:"access_key_id,omitempty"`
	// Expiration is when the issued credentials expire.
	Expiration *time.Time `json:"expiration,omitempty"`
	// CallerARN and CallerAccount are GetCallerIdentity's answer; CallerError its failure.
	CallerARN     string `json:"caller_arn,omitempty"`
	CallerAccount string `json:"caller_account,omitempty"`
	CallerError   string `json:"caller_error,omitempty"`
}

// Check runs every check and returns the report; problems are findings, never errors. Each
// step runs only when the one before it produced what it needs: the token, then credentials.
func Check(ctx context.Context, opts Options) *Report {
	opts, ti := opts.withDefaults()
	now := opts.Now()
	r := newReport(ctx, opts, now)
	defer r.tally()

	raw, claims, ok := r.readToken(ti, now)
	if !ok {
		return r
	}
	r.checkIssuer(ctx, opts, raw, claims)
	provider, ok := r.exchange(ctx, opts, raw, claims, now)
	if !ok {
		return r
	}
	r.callerIdentity(ctx, opts, provider)
	if opts.ProbeBucket != "" {
		r.probeS3(ctx, opts, provider, now)
	}
	return r
}

// newReport is the report before any check ran: what the check is about to use.
func newReport(ctx context.Context, opts Options, now time.Time) *Report {
	return &Report{
		CheckedAt:       now.UTC(),
		TokenFile:       opts.TokenFile,
		TokenFileSource: opts.TokenFileSource,
		Role:            opts.Role,
		RoleARN:         opts.RoleARN,
		Region:          opts.Region,
		STSEndpoint:     resolveSTSEndpoint(ctx, opts.Region, opts.STSEndpoint),
		SessionName:     opts.SessionName,
		DurationSeconds: int64(opts.Duration / time.Second),
	}
}

// readToken reads the token and records its summary and the problems its claims show; ok is
// false when there is no usable token, and the finding says why.
func (r *Report) readToken(ti tokenInput, now time.Time) (raw []byte, claims *creds.TokenClaims, ok bool) {
	raw, claims, problem := readTokenFile(ti)
	if problem != nil {
		r.Findings = append(r.Findings, *problem)
		return nil, nil, false
	}
	r.Token = summarize(claims, now)
	r.Findings = append(r.Findings, findings.TokenWarnings(claims, now)...)
	if r.SessionName == "" {
		r.SessionName = creds.SessionName(claims.Namespace, claims.PodName)
	}
	return raw, claims, true
}

// exchange calls AssumeRoleWithWebIdentity as serve would and records the answer; ok is false
// when STS issued no credentials, and the finding explains its answer.
func (r *Report) exchange(ctx context.Context, opts Options, raw []byte, claims *creds.TokenClaims, now time.Time) (aws.CredentialsProvider, bool) {
	out, err := assume(ctx, opts, raw, r.SessionName)
	r.STS.Called = true
	if err != nil || out.Credentials == nil {
		if opts.ProbeBucket != "" {
			r.S3 = &S3Result{Bucket: opts.ProbeBucket, PathStyle: opts.S3PathStyle, Actions: []S3Action{}, Skipped: "no credentials from STS"}
		}
	}
	if err == nil && out.Credentials == nil {
		r.STS.Code = "NoCredentials"
		r.Findings = append(r.Findings, findings.Finding{
			ID:       findings.IDSTSError,
			Severity: findings.SeverityError,
			What:     "STS answered AssumeRoleWithWebIdentity without credentials",
			Why:      "there is nothing to serve",
			Fix:      "check that " + stsEndpointFlags + " points at STS, not at another service",
		})
		return nil, false
	}
	if err != nil {
		r.STS.Code, r.STS.Message = errorCode(err, raw)
		tc := trustContext{
			claims: claims, token: raw, roleARN: opts.RoleARN, endpoint: r.STSEndpoint,
			region: opts.Region, duration: opts.Duration, timeout: opts.Timeout, now: now,
		}
		f := stsFinding(err, tc)
		switch f.ID {
		case findings.IDSTSInvalidToken, findings.IDSTSAccessDenied:
			// STS said no, so what the token itself shows is no longer a mere warning.
			r.raise(findings.IDTokenMultipleAudiences, findings.IDTokenNoAudience, findings.IDAudienceTrailingSlash, findings.IDIssuerNotHTTPS)
		}
		if !(f.ID == findings.IDSTSExpiredToken && r.has(findings.IDTokenExpired)) {
			r.Findings = append(r.Findings, f)
		}
		return nil, false
	}
	r.STS.OK = true
	c := out.Credentials
	r.STS.AccessKeyID = creds.MaskKeyID(aws.ToString(c.AccessKeyId))
	if c.Expiration != nil {
		exp := c.Expiration.UTC()
		r.STS.Expiration = &exp
	}
	if out.AssumedRoleUser != nil {
		r.STS.AssumedRoleARN = aws.ToString(out.AssumedRoleUser.Arn)
	}
	return sessionProvider(c), true
}

// sessionProvider hands the issued credentials to the follow-up clients as they are, so the
// checks use exactly what STS issued.
func sessionProvider(c *ststypes.Credentials) aws.CredentialsProvider {
	session := aws.Credentials{
		AccessKeyID:     aws.ToString(c.AccessKeyId),
		SecretAccessKey: aws.ToString(c.SecretAccessKey),
		SessionToken:    aws.ToString(c.SessionToken),
		Source:          "sidecar check",
	}
	if c.Expiration != nil {
		session.CanExpire, session.Expires = true, *c.Expiration
	}
	return aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return session, nil })
}

// probeS3 tries the bucket with the issued credentials and records what each action answered.
func (r *Report) probeS3(ctx context.Context, opts Options, provider aws.CredentialsProvider, now time.Time) {
	region := valueOr(opts.Region, fallbackRegion)
	client := s3.New(s3.Options{
		Region:                     region,
		Credentials:                provider,
		UsePathStyle:               opts.S3PathStyle,
		Retryer:                    aws.NopRetryer{},
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	}, func(o *s3.Options) {
		if opts.S3Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.S3Endpoint)
		}
	})
	res := &S3Result{
		Bucket:    opts.ProbeBucket,
		Endpoint:  resolveS3Endpoint(ctx, region, opts.S3Endpoint, opts.ProbeBucket, opts.S3PathStyle),
		PathStyle: opts.S3PathStyle,
		Key:       probeKey(now),
	}
	var errs []error
	res.Actions, errs = s3Probe(ctx, client, res.Bucket, res.Key, opts.Timeout)
	r.S3 = res
	r.Findings = append(r.Findings, s3Findings(res, errs, opts.RoleARN, opts.Region, opts.Timeout)...)
}

// assume makes the one AssumeRoleWithWebIdentity call, through the client serve uses.
func assume(ctx context.Context, opts Options, token []byte, session string) (*sts.AssumeRoleWithWebIdentityOutput, error) {
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	return creds.NewSTSClient(opts.Region, opts.STSEndpoint).AssumeRoleWithWebIdentity(ctx, &sts.AssumeRoleWithWebIdentityInput{
		RoleArn:          aws.String(opts.RoleARN),
		RoleSessionName:  aws.String(session),
		WebIdentityToken: aws.String(string(token)),
		DurationSeconds:  aws.Int32(int32(opts.Duration / time.Second)),
	})
}

// callerIdentity asks STS who the issued credentials are; a failure is a warning, since the
// credentials were issued and may still work elsewhere.
func (r *Report) callerIdentity(ctx context.Context, opts Options, provider aws.CredentialsProvider) {
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	client := sts.New(sts.Options{
		Region:      valueOr(opts.Region, fallbackRegion),
		Credentials: provider,
		Retryer:     aws.NopRetryer{},
	}, func(o *sts.Options) {
		if opts.STSEndpoint != "" {
			o.BaseEndpoint = aws.String(opts.STSEndpoint)
		}
	})
	out, err := client.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		code, msg := errorCode(err, nil)
		r.STS.CallerError = code + ": " + msg
		r.Findings = append(r.Findings, findings.Finding{
			ID:       findings.IDCallerIdentityFailed,
			Severity: findings.SeverityWarning,
			What:     "the credentials STS issued failed GetCallerIdentity (" + r.STS.CallerError + ")",
			Why:      "AWS services may refuse them the same way, although STS issued them",
			Fix:      "run the check again; if it persists, make " + regionFlags + " and " + stsEndpointFlags + " name the partition and region the role lives in",
		})
		return
	}
	r.STS.CallerARN = aws.ToString(out.Arn)
	r.STS.CallerAccount = aws.ToString(out.Account)
}

// errorCode is the code and scrubbed message of err, or NoAnswer and the cause when no server
// answered.
func errorCode(err error, token []byte) (code, msg string) {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode(), scrub(apiErr.ErrorMessage(), token)
	}
	kind, _ := describeNetError(err, "", 0)
	return "NoAnswer", scrub(kind, token)
}

func summarize(c *creds.TokenClaims, now time.Time) *TokenSummary {
	s := &TokenSummary{
		Issuer:         c.Issuer,
		Subject:        c.Subject,
		Audience:       append([]string{}, c.Audience...),
		Namespace:      c.Namespace,
		ServiceAccount: c.ServiceAccount,
		Pod:            c.PodName,
	}
	if !c.IssuedAt.IsZero() {
		t := c.IssuedAt.UTC()
		s.IssuedAt = &t
	}
	if !c.Expiry.IsZero() {
		t := c.Expiry.UTC()
		s.ExpiresAt = &t
		s.RemainingSeconds = int64(c.Expiry.Sub(now) / time.Second)
		if !c.IssuedAt.IsZero() {
			s.LifetimeSeconds = int64(c.Expiry.Sub(c.IssuedAt) / time.Second)
		}
	}
	return s
}

// raise turns the warnings with the given ids into errors.
func (r *Report) raise(ids ...string) {
	for i := range r.Findings {
		for _, id := range ids {
			if r.Findings[i].ID == id {
				r.Findings[i].Severity = findings.SeverityError
			}
		}
	}
}

func (r *Report) has(id string) bool {
	for _, f := range r.Findings {
		if f.ID == id {
			return true
		}
	}
	return false
}

func (r *Report) tally() {
	r.Errors, r.Warnings = 0, 0
	for _, f := range r.Findings {
		if f.Severity == findings.SeverityError {
			r.Errors++
		} else {
			r.Warnings++
		}
	}
	r.OK = r.Errors == 0
	if r.Findings == nil {
		r.Findings = []findings.Finding{}
	}
}

// resolveSTSEndpoint is the URL the STS client will call: the override, or the SDK's regional
// endpoint for region.
func resolveSTSEndpoint(ctx context.Context, region, override string) string {
	if override != "" {
		return override
	}
	ep, err := sts.NewDefaultEndpointResolverV2().ResolveEndpoint(ctx, sts.EndpointParameters{Region: aws.String(region)})
	if err != nil {
		return "(no endpoint for region " + region + ")"
	}
	return ep.URI.String()
}

func resolveS3Endpoint(ctx context.Context, region, override, bucket string, pathStyle bool) string {
	if override != "" {
		return override
	}
	ep, err := s3.NewDefaultEndpointResolverV2().ResolveEndpoint(ctx, s3.EndpointParameters{
		Region: aws.String(region), Bucket: aws.String(bucket), ForcePathStyle: aws.Bool(pathStyle),
	})
	if err != nil {
		return "(no endpoint for region " + region + ")"
	}
	return ep.URI.String()
}
