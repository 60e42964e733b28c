package creds

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/aws-sdk-go-v2/service/sts/types"

	"github.com/credsidecar/credsidecar/internal/awsarn"
)

// Role chaining: after the web-identity call, each role given to WithChain is assumed with
// sts:AssumeRole, signed with the previous hop's credentials, and the last hop's credentials are
// the ones published. The whole chain is one fetch: the cache holds only the last hop's
// credentials, and every refresh runs the chain again from a fresh web-identity call, so no
// intermediate credentials outlive the fetch that made them.

// Limits of role chaining and of the session policies STS accepts (PROTOCOL.md §4).
const (
	// MaxChainedDuration is the longest session AWS grants to a role assumed with credentials
	// of another role; asking for more fails. It still leaves the default 40 min refresh window
	// 16 to 20 minutes after each fetch and the SDKs their 20 minutes of headroom.
	MaxChainedDuration = time.Hour
	// MaxChainHops bounds the chained roles: every hop is one more STS call per refresh.
	MaxChainHops = 5
	// MaxSessionPolicySize is the longest inline session policy STS accepts, in characters.
	MaxSessionPolicySize = 2048
	// MaxSessionPolicyARNs is how many managed session policies STS accepts.
	MaxSessionPolicyARNs = 10
)

// ChainHop is one role assumed after the web-identity call.
type ChainHop struct {
	// RoleARN is the role to assume.
	RoleARN string
	// ExternalID is sent as sts:ExternalId when the role's trust policy requires one; empty sends none.
	ExternalID string
}

// AssumeRoleAPI is the STS call that role chaining adds. It is separate from STSAPI because only
// a Manager with Config.Chain needs it; NewManager checks that the client has it.
type AssumeRoleAPI interface {
	AssumeRole(ctx context.Context, in *sts.AssumeRoleInput, optFns ...func(*sts.Options)) (*sts.AssumeRoleOutput, error)
}

var _ AssumeRoleAPI = (*sts.Client)(nil)

// externalIDPattern is STS's alphabet for ExternalId; its length is 2-1224 (validExternalID).
var externalIDPattern = regexp.MustCompile(`^[\w+=,.@:/-]+$`)

func validExternalID(id string) bool {
	return len(id) >= 2 && len(id) <= 1224 && externalIDPattern.MatchString(id)
}

// CheckExternalID reports whether id is an sts:ExternalId STS accepts: 2-1224 characters of
// letters, digits and _+=,.@:/- (for config validation). The error never quotes id.
func CheckExternalID(id string) error {
	if !validExternalID(id) {
		return errors.New("want 2-1224 characters of letters, digits and _+=,.@:/-")
	}
	return nil
}

// ChainedDuration is the DurationSeconds asked of chained hops: the configured duration, capped
// at what AWS grants a chained session.
func ChainedDuration(d time.Duration) time.Duration { return min(d, MaxChainedDuration) }

// extensions are the Manager's behaviours beyond one web-identity call, from Config's Chain and
// session policies; read-only once NewManager returns.
type extensions struct {
	chain      []ChainHop
	policy     string
	policyARNs []string
}

// checkExtensions checks the chain and the session policies against cfg and the client, at
// construction rather than at the first refresh.
func (m *Manager) checkExtensions() error {
	var errs []error
	x := m.ext
	if len(x.chain) > MaxChainHops {
		errs = append(errs, fmt.Errorf("chain: %d roles, want at most %d: each is one more STS call per refresh", len(x.chain), MaxChainHops))
	}
	for i, h := range x.chain {
		if err := awsarn.CheckRole(h.RoleARN); err != nil {
			errs = append(errs, fmt.Errorf("chain[%d] role %q: %w", i, h.RoleARN, err))
		}
		if h.ExternalID != "" && !validExternalID(h.ExternalID) {
			errs = append(errs, fmt.Errorf("chain[%d] external id: want 2-1224 characters of [A-Za-z0-9_+=,.@:/-]", i))
		}
	}
	if w := m.cfg.RefreshWindow; len(x.chain) > 0 && w >= ChainedDuration(m.cfg.Duration) {
		errs = append(errs, fmt.Errorf("RefreshWindow %s: want it shorter than %s, the longest session of a chained role",
			w, ChainedDuration(m.cfg.Duration)))
	}
	if _, ok := m.api.(AssumeRoleAPI); len(x.chain) > 0 && !ok {
		errs = append(errs, fmt.Errorf("chain: needs an STS client with AssumeRole, %T has none", m.api))
	}
	if err := CheckSessionPolicy(x.policy); err != nil {
		errs = append(errs, fmt.Errorf("session policy: %w", err))
	}
	if len(x.policyARNs) > MaxSessionPolicyARNs {
		errs = append(errs, fmt.Errorf("session policy ARNs: %d, want at most %d", len(x.policyARNs), MaxSessionPolicyARNs))
	}
	for i, a := range x.policyARNs {
		if err := awsarn.CheckPolicy(a); err != nil {
			errs = append(errs, fmt.Errorf("session policy ARN %d %q: %w", i, a, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("credentials config: %w", err)
	}
	return nil
}

// CheckSessionPolicy reports whether p is an inline session policy STS could accept: empty (none),
// or a JSON object of at most MaxSessionPolicySize characters. The error never quotes p.
func CheckSessionPolicy(p string) error {
	if p == "" {
		return nil
	}
	if n := len([]rune(p)); n > MaxSessionPolicySize {
		return fmt.Errorf("%d characters, STS accepts at most %d", n, MaxSessionPolicySize)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal([]byte(p), &doc); err != nil {
		return errors.New("not a JSON object: want a policy document such as " +
			`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}`)
	}
	return nil
}

// applySessionPolicy adds the session policies to the web-identity call.
func (x extensions) applySessionPolicy(in *sts.AssumeRoleWithWebIdentityInput) {
	if x.policy != "" {
		in.Policy = aws.String(x.policy)
	}
	for _, a := range x.policyARNs {
		in.PolicyArns = append(in.PolicyArns, types.PolicyDescriptorType{Arn: aws.String(a)})
	}
}

// ChainError is a failed chained hop. It names the hop and both roles, so the log points at the
// trust policy that refused, and unwraps to STS's error, so Classify and ErrorCode treat it as
// they treat a failed web-identity call.
type ChainError struct {
	// Hop counts the calls of the chain from 1, the web-identity call; a chained role is 2 or more.
	Hop int
	// RoleARN is the role this hop tried to assume; FromRoleARN the role whose session signed the call.
	RoleARN, FromRoleARN string
	// Err is the underlying error.
	Err error
}

// Error reads like "assume chained role (hop 2) arn:... with the session of arn:...: cause".
func (e *ChainError) Error() string {
	return fmt.Sprintf("assume chained role (hop %d) %s with the session of %s: %v", e.Hop, e.RoleARN, e.FromRoleARN, e.Err)
}

// Unwrap returns the underlying error.
func (e *ChainError) Unwrap() error { return e.Err }

// assumeChain assumes each chained role in turn and returns the last one's credentials. Each
// hop is one STS call of its own, with its own timeout, counted by the observers like the
// web-identity call.
func (m *Manager) assumeChain(ctx context.Context, first *Credentials, session string) (*Credentials, error) {
	api := m.api.(AssumeRoleAPI) // checked by checkExtensions
	prev, prevRole := first, m.cfg.RoleARN
	for i, hop := range m.ext.chain {
		in := &sts.AssumeRoleInput{
			RoleArn:         aws.String(hop.RoleARN),
			RoleSessionName: aws.String(session),
			DurationSeconds: aws.Int32(int32(ChainedDuration(m.cfg.Duration) / time.Second)),
		}
		if hop.ExternalID != "" {
			in.ExternalId = aws.String(hop.ExternalID)
		}
		callCtx, cancel := context.WithTimeout(ctx, m.cfg.CallTimeout)
		start := m.clock.Now()
		out, err := api.AssumeRole(callCtx, in, signWith(prev))
		took := m.clock.Now().Sub(start)
		err = withDeadline(err, callCtx)
		cancel()
		var c *Credentials
		if err == nil {
			c, err = roleCredentials(out, hop.RoleARN)
		}
		if err != nil {
			err = redact(redact(fmt.Errorf("assume role: %w", err), prev.SessionToken), prev.SecretAccessKey)
			err = &ChainError{Hop: i + 2, RoleARN: hop.RoleARN, FromRoleARN: prevRole, Err: err}
			if ctx.Err() == nil {
				m.obs.STSCall("error", ErrorCode(err), took)
			}
			return nil, err
		}
		m.obs.STSCall("success", "", took)
		prev, prevRole = c, hop.RoleARN
	}
	return prev, nil
}

// signWith makes one call sign with c instead of the client's anonymous credentials.
func signWith(c *Credentials) func(*sts.Options) {
	v := aws.Credentials{
		AccessKeyID:     c.AccessKeyID,
		SecretAccessKey: c.SecretAccessKey,
		SessionToken:    c.SessionToken,
		CanExpire:       true,
		Expires:         c.Expiration,
		Source:          "credsidecar chained hop",
	}
	return func(o *sts.Options) {
		o.Credentials = aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return v, nil })
	}
}

// roleCredentials turns an AssumeRole answer into Credentials for role.
func roleCredentials(out *sts.AssumeRoleOutput, role string) (*Credentials, error) {
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
		account = accountFromARN(role)
	}
	return &Credentials{
		AccessKeyID:     aws.ToString(sc.AccessKeyId),
		SecretAccessKey: aws.ToString(sc.SecretAccessKey),
		SessionToken:    aws.ToString(sc.SessionToken),
		Expiration:      sc.Expiration.UTC(),
		AccountID:       account,
		RoleARN:         role,
	}, nil
}
