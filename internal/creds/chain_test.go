package creds

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/aws/smithy-go"
)

const (
	hopRole1 = "arn:aws:iam::210987654321:role/shared-data"
	hopRole2 = "arn:aws:iam::210987654321:role/reports-writer"
)

// hopCall is what the fake received for one chained AssumeRole.
type hopCall struct {
	at         time.Time
	role       string
	session    string
	externalID string
	duration   int32
	// signer is the key id of the credentials the call was signed with.
	signer string
}

// chainSTS adds AssumeRole to the fault-injecting fake STS. SeaweedFS runs real chains in the
// end-to-end tests; this fake is for what it will not do on demand (refuse a chained hop under
// its trust policy, throttle it, echo the caller's session token in an error) and to see what
// every hop was asked for and signed with.
type chainSTS struct {
	*fakeSTS
	mu      sync.Mutex
	web     []*sts.AssumeRoleWithWebIdentityInput
	hops    []hopCall
	issued  []types.Credentials
	failHop func(n int, c hopCall) error // n counts AssumeRole calls from 1
}

var (
	_ STSAPI        = (*chainSTS)(nil)
	_ AssumeRoleAPI = (*chainSTS)(nil)
)

func newChainSTS(h *harness) *chainSTS { return &chainSTS{fakeSTS: h.sts} }

func (f *chainSTS) AssumeRoleWithWebIdentity(ctx context.Context, in *sts.AssumeRoleWithWebIdentityInput, opts ...func(*sts.Options)) (*sts.AssumeRoleWithWebIdentityOutput, error) {
	f.mu.Lock()
	f.web = append(f.web, in)
	f.mu.Unlock()
	return f.fakeSTS.AssumeRoleWithWebIdentity(ctx, in, opts...)
}

func (f *chainSTS) AssumeRole(ctx context.Context, in *sts.AssumeRoleInput, optFns ...func(*sts.Options)) (*sts.AssumeRoleOutput, error) {
	if _, ok := ctx.Deadline(); !ok {
		f.tb.Errorf("AssumeRole called without a deadline")
	}
	var o sts.Options
	for _, fn := range optFns {
		fn(&o)
	}
	c := hopCall{
		at:         f.clk.Now(),
		role:       aws.ToString(in.RoleArn),
		session:    aws.ToString(in.RoleSessionName),
		externalID: aws.ToString(in.ExternalId),
		duration:   aws.ToInt32(in.DurationSeconds),
	}
	var signer aws.Credentials
	if o.Credentials != nil {
		v, err := o.Credentials.Retrieve(ctx)
		if err != nil {
			f.tb.Errorf("AssumeRole signing credentials: %v", err)
		}
		signer = v
		c.signer = v.AccessKeyID
	}
	f.mu.Lock()
	f.hops = append(f.hops, c)
	n := len(f.hops)
	fail := f.failHop
	f.mu.Unlock()
	if fail != nil {
		if err := fail(n, c); err != nil {
			// STS errors may quote the caller; the sidecar must not pass that on.
			return nil, fmt.Errorf("%w (caller token %s)", err, signer.SessionToken)
		}
	}
	exp := c.at.Add(time.Duration(c.duration) * time.Second)
	sc := types.Credentials{
		AccessKeyId:     aws.String(fmt.Sprintf("ASIACHAINKEY%08d", n)),
		SecretAccessKey: aws.String(fmt.Sprintf("chainSecret/%d/%s", n, randHex(f.tb, 16))),
		SessionToken:    aws.String(fmt.Sprintf("chainSession/%d/%s", n, randHex(f.tb, 64))),
		Expiration:      &exp,
	}
	f.mu.Lock()
	f.issued = append(f.issued, sc)
	f.mu.Unlock()
	name := c.role[strings.LastIndexByte(c.role, '/')+1:]
	return &sts.AssumeRoleOutput{
		Credentials: &sc,
		AssumedRoleUser: &types.AssumedRoleUser{
			Arn:           aws.String("arn:aws:sts::210987654321:assumed-role/" + name + "/" + c.session),
			AssumedRoleId: aws.String("AROACHAIN:" + c.session),
		},
	}, nil
}

func (f *chainSTS) state() ([]*sts.AssumeRoleWithWebIdentityInput, []hopCall, []types.Credentials) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*sts.AssumeRoleWithWebIdentityInput(nil), f.web...), append([]hopCall(nil), f.hops...),
		append([]types.Credentials(nil), f.issued...)
}

func (f *chainSTS) setFailHop(fn func(n int, c hopCall) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failHop = fn
}

// startWith runs the harness's Manager on api instead of the plain fake STS.
func (h *harness) startWith(api STSAPI, opts ...Option) {
	h.t.Helper()
	base := []Option{WithClock(h.clk), WithLogger(h.logs.logger()), WithObserver(h.obs),
		WithRand(func() float64 { return h.r }), WithExplain(explainForTest)}
	m, err := NewManager(h.cfg, api, append(base, opts...)...)
	if err != nil {
		h.t.Fatalf("NewManager: %v", err)
	}
	h.m = m
	h.run()
	h.settle()
}

func TestChainPublishesLastHop(t *testing.T) {
	h := newHarness(t)
	h.dir.write(validToken(t))
	h.cfg.Duration = 2 * time.Hour
	api := newChainSTS(h)
	h.startWith(api, withChain(ChainHop{RoleARN: hopRole1, ExternalID: "partner-4711"}, ChainHop{RoleARN: hopRole2}))

	web, hops, issued := api.state()
	webIssued := h.sts.issuedList()
	if len(web) != 1 || len(hops) != 2 || len(webIssued) != 1 {
		t.Fatalf("%d web-identity and %d AssumeRole calls, want 1 and 2", len(web), len(hops))
	}
	if got := aws.ToInt32(web[0].DurationSeconds); got != 7200 {
		t.Errorf("web-identity DurationSeconds = %d, want the configured 7200", got)
	}
	want := []struct{ role, externalID, signer string }{
		{hopRole1, "partner-4711", *webIssued[0].AccessKeyId},
		{hopRole2, "", *issued[0].AccessKeyId},
	}
	for i, w := range want {
		c := hops[i]
		if c.role != w.role || c.externalID != w.externalID || c.signer != w.signer {
			t.Errorf("hop %d: role %s external id %q signed by %s; want %s %q %s", i+2, c.role, c.externalID,
				MaskKeyID(c.signer), w.role, w.externalID, MaskKeyID(w.signer))
		}
		// AWS refuses chained sessions longer than an hour.
		if c.duration != 3600 || c.session != "shop.uploader-7d9f8-abcde" {
			t.Errorf("hop %d: DurationSeconds %d session %q, want 3600 and the web-identity session's name", i+2, c.duration, c.session)
		}
	}
	got := h.m.Servable()
	last := issued[1]
	if got == nil || got.AccessKeyID != *last.AccessKeyId || got.SecretAccessKey != *last.SecretAccessKey ||
		got.SessionToken != *last.SessionToken || !got.Expiration.Equal(t0.Add(time.Hour)) {
		t.Fatalf("Servable() = %v, want the last hop's credentials expiring %v", got, t0.Add(time.Hour))
	}
	if got.RoleARN != hopRole2 || got.AccountID != "210987654321" {
		t.Errorf("RoleARN, AccountID = %s, %s; want %s, 210987654321", got.RoleARN, got.AccountID, hopRole2)
	}
	if r := h.obs.Calls(); strings.Join(r, " ") != "success/ success/ success/" {
		t.Errorf("observed STS calls %q, want three successes (one per hop)", r)
	}
	if n := len(h.obs.Updates()); n != 1 {
		t.Errorf("%d CredentialsUpdated, want 1: intermediate hops are never published", n)
	}
	h.logs.waitFor(t, "fetched credentials", MaskKeyID(got.AccessKeyID), hopRole2)
}

// One refresh runs the whole chain again from a fresh web-identity call, timed by the last
// hop's one-hour lifetime: with the 40 min window that is 20 min after the fetch.
func TestChainRefreshRunsWholeChain(t *testing.T) {
	h := newHarness(t)
	h.dir.write(validToken(t))
	api := newChainSTS(h)
	h.startWith(api, withChain(ChainHop{RoleARN: hopRole1}))
	first := h.m.Servable()
	for h.sts.count() < 2 {
		h.step()
	}
	calls := h.sts.callList()
	if at := calls[1].at; !at.Equal(first.Expiration.Add(-DefaultRefreshWindow)) {
		t.Errorf("refresh at %v, want %v (40 min before the chained credentials expire)", at, first.Expiration.Add(-DefaultRefreshWindow))
	}
	h.obs.NextUpdate(t, guard, "first CredentialsUpdated")
	h.obs.NextUpdate(t, guard, "refreshed CredentialsUpdated")
	_, hops, issued := api.state()
	webIssued := h.sts.issuedList()
	if len(hops) != 2 || hops[1].signer != *webIssued[1].AccessKeyId {
		t.Fatalf("refresh made %d AssumeRole calls, the last signed by %s; want 2, signed by the new web-identity key %s",
			len(hops), MaskKeyID(hops[len(hops)-1].signer), MaskKeyID(*webIssued[1].AccessKeyId))
	}
	if got := h.m.Servable(); got == nil || got.AccessKeyID != *issued[1].AccessKeyId {
		t.Errorf("after the refresh Servable() = %v, want the new last hop's credentials", got)
	}
}

// Every hop's failure is classified like a web-identity failure, nothing is published, and the
// log names the chained role's trust policy rather than the web identity's.
func TestChainHopFailure(t *testing.T) {
	tests := []struct {
		name      string
		failOn    string // the role whose hop fails
		err       error
		wantClass Class
		wantCode  string
		wantHop   int
		wantCause []string
	}{
		{name: "trust policy refuses hop 2", failOn: hopRole1, err: apiErr(403, "AccessDenied", smithy.FaultClient),
			wantClass: Terminal, wantCode: "AccessDenied", wantHop: 2,
			wantCause: []string{"cause of AccessDenied at " + hopRole1 + " from " + testRole}},
		{name: "trust policy refuses hop 3", failOn: hopRole2, err: apiErr(403, "AccessDenied", smithy.FaultClient),
			wantClass: Terminal, wantCode: "AccessDenied", wantHop: 3,
			wantCause: []string{"cause of AccessDenied at " + hopRole2 + " from " + hopRole1}},
		{name: "throttled hop 3", failOn: hopRole2, err: errThrottle(), wantClass: Retry, wantCode: "Throttling", wantHop: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.dir.write(validToken(t))
			api := newChainSTS(h)
			api.setFailHop(func(_ int, c hopCall) error {
				if c.role == tt.failOn {
					return tt.err
				}
				return nil
			})
			h.startWith(api, withChain(ChainHop{RoleARN: hopRole1}, ChainHop{RoleARN: hopRole2}))

			if c := h.m.Servable(); c != nil {
				t.Fatalf("Servable() = %v after hop %d failed", c, tt.wantHop)
			}
			err := h.m.LastError()
			var ce *ChainError
			if !errors.As(err, &ce) || ce.Hop != tt.wantHop || ce.RoleARN != tt.failOn {
				t.Fatalf("LastError() = %v, want a ChainError for hop %d (%s)", err, tt.wantHop, tt.failOn)
			}
			if Classify(err) != tt.wantClass || ErrorCode(err) != tt.wantCode {
				t.Errorf("Classify, ErrorCode = %v, %s; want %v, %s", Classify(err), ErrorCode(err), tt.wantClass, tt.wantCode)
			}
			want := append([]string{`"code":"` + tt.wantCode + `"`, `"class":"` + tt.wantClass.String() + `"`,
				fmt.Sprintf("hop %d", tt.wantHop), tt.failOn}, tt.wantCause...)
			h.logs.waitFor(t, "fetch credentials failed", want...)
			results := h.obs.Calls()
			if last := results[len(results)-1]; last != "error/"+tt.wantCode {
				t.Errorf("last observed STS call %q, want error/%s", last, tt.wantCode)
			}
			if tt.wantClass == Terminal && strings.Contains(h.logs.String(), "OIDC provider") {
				t.Error("a chained hop's refusal is explained with the web identity's trust setup")
			}
			_, _, issued := api.state()
			for _, c := range append(h.sts.issuedList(), issued...) {
				if strings.Contains(h.logs.String(), *c.SessionToken) || strings.Contains(err.Error(), *c.SessionToken) {
					t.Fatal("a session token reached the log or LastError")
				}
			}

			// Fixed: the retry runs the whole chain and publishes its end.
			api.setFailHop(nil)
			before := h.sts.count()
			for h.m.Servable() == nil {
				h.step()
			}
			if h.sts.count() != before+1 {
				t.Errorf("%d web-identity calls to recover, want 1", h.sts.count()-before)
			}
			if got := h.m.Servable(); got.RoleARN != hopRole2 {
				t.Errorf("recovered with role %s, want %s", got.RoleARN, hopRole2)
			}
		})
	}
}

func TestSessionPolicyGoesToFirstHop(t *testing.T) {
	policy := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["sts:AssumeRole","s3:GetObject"],"Resource":"*"}]}`
	arns := []string{"arn:aws:iam::aws:policy/ReadOnlyAccess", "arn:aws:iam::123456789012:policy/boundary"}
	h := newHarness(t)
	h.dir.write(validToken(t))
	api := newChainSTS(h)
	h.startWith(api, withChain(ChainHop{RoleARN: hopRole1}), withSessionPolicy(policy, arns...))
	web, hops, _ := api.state()
	if len(web) != 1 || len(hops) != 1 {
		t.Fatalf("%d web-identity and %d AssumeRole calls, want 1 each", len(web), len(hops))
	}
	if got := aws.ToString(web[0].Policy); got != policy {
		t.Errorf("web-identity Policy = %q, want %q", got, policy)
	}
	var got []string
	for _, p := range web[0].PolicyArns {
		got = append(got, aws.ToString(p.Arn))
	}
	if strings.Join(got, " ") != strings.Join(arns, " ") {
		t.Errorf("web-identity PolicyArns = %q, want %q", got, arns)
	}
}

func TestChainConfigProblems(t *testing.T) {
	six := make([]ChainHop, 6)
	for i := range six {
		six[i].RoleARN = fmt.Sprintf("arn:aws:iam::123456789012:role/hop%d", i)
	}
	eleven := make([]string, 11)
	for i := range eleven {
		eleven[i] = "arn:aws:iam::aws:policy/ReadOnlyAccess"
	}
	chain := NewSTSClient("eu-west-1", "") // has AssumeRole
	tests := []struct {
		name string
		cfg  func(c *Config)
		api  STSAPI
		opts []Option
		want string
	}{
		{name: "too many hops", opts: []Option{withChain(six...)}, want: "chain: 6 roles, want at most 5"},
		{name: "not an ARN", opts: []Option{withChain(ChainHop{RoleARN: "reports-writer"})}, want: `chain[0] role "reports-writer"`},
		{name: "external id too short", opts: []Option{withChain(ChainHop{RoleARN: hopRole1, ExternalID: "x"})},
			want: "chain[0] external id: want 2-1224 characters"},
		{name: "external id with a space", opts: []Option{withChain(ChainHop{RoleARN: hopRole1, ExternalID: "a b"})},
			want: "chain[0] external id"},
		{name: "window too long for a chained hour", cfg: func(c *Config) { c.Duration, c.RefreshWindow = 3*time.Hour, 61*time.Minute },
			opts: []Option{withChain(ChainHop{RoleARN: hopRole1})},
			want: "RefreshWindow 1h1m0s: want it shorter than 1h0m0s, the longest session of a chained role"},
		{name: "client without AssumeRole", api: newFakeSTS(t, nil), opts: []Option{withChain(ChainHop{RoleARN: hopRole1})},
			want: "chain: needs an STS client with AssumeRole"},
		{name: "policy not JSON", opts: []Option{withSessionPolicy("Allow s3:*")}, want: "session policy: not a JSON object"},
		{name: "policy a JSON array", opts: []Option{withSessionPolicy("[]")}, want: "session policy: not a JSON object"},
		{name: "policy too long", opts: []Option{withSessionPolicy(`{"Sid":"` + strings.Repeat("x", 2039) + `"}`)},
			want: "session policy: 2049 characters, STS accepts at most 2048"},
		{name: "too many policy ARNs", opts: []Option{withSessionPolicy("", eleven...)}, want: "session policy ARNs: 11, want at most 10"},
		{name: "policy ARN not an ARN", opts: []Option{withSessionPolicy("", "ReadOnlyAccess")},
			want: `session policy ARN 0 "ReadOnlyAccess"`},
		{name: "valid", cfg: func(c *Config) { c.Duration = 12 * time.Hour }, opts: []Option{
			withChain(ChainHop{RoleARN: hopRole1, ExternalID: "arn:aws:iam::1:x/y=z@w.v-u,t+s"}, ChainHop{RoleARN: hopRole2}),
			withSessionPolicy(`{"Version":"2012-10-17","Statement":[]}`, "arn:aws:iam::aws:policy/ReadOnlyAccess"),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{RoleARN: testRole, TokenFile: "/var/run/token"}
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			api := tt.api
			if api == nil {
				api = chain
			}
			_, err := NewManager(cfg, api, tt.opts...)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("NewManager: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("NewManager error = %v, want one containing %q", err, tt.want)
			case err != nil && !strings.HasPrefix(err.Error(), "credentials config: "):
				t.Errorf("error %q does not name the operation", err)
			}
		})
	}
}

// TestTokenCheckOncePerToken: the check sees each distinct token once, however many STS calls
// use it, and sees a rotated token when the rotation is noticed, before the next refresh.
func TestTokenCheckOncePerToken(t *testing.T) {
	h := newHarness(t)
	first := validToken(t)
	h.dir.write(first)
	checked := make(chan *TokenClaims, 100)
	h.start(WithTokenCheck(func(c *TokenClaims) { checked <- c }))
	if c := waitChan(t, checked, "the first check"); !c.IssuedAt.Equal(t0) {
		t.Errorf("first check saw a token issued %v, want %v", c.IssuedAt, t0)
	}
	for h.sts.count() < 2 {
		h.step()
	}
	if n := len(checked); n != 0 {
		t.Fatalf("%d more checks after a refresh with the same token, want 0", n)
	}

	rotatedAt := h.clk.Now()
	h.dir.write(makeJWT(t, k8sClaims(rotatedAt, 24*time.Hour)))
	h.obs.NextReload(t, guard, "TokenReloaded")
	if c := waitChan(t, checked, "the rotated token's check"); !c.IssuedAt.Equal(rotatedAt.Truncate(time.Second)) {
		t.Errorf("check after rotation saw a token issued %v, want %v", c.IssuedAt, rotatedAt)
	}
	calls := h.sts.count()
	for h.sts.count() < calls+1 {
		h.step()
	}
	if n := len(checked); n != 0 {
		t.Errorf("%d more checks after the refresh that used the rotated token, want 0", n)
	}
}

// withChain and withSessionPolicy set Config's chain and session policies as options, so the
// tables can build managers on the harness's config.
func withChain(hops ...ChainHop) Option { return func(m *Manager) { m.cfg.Chain = hops } }

func withSessionPolicy(inline string, arns ...string) Option {
	return func(m *Manager) { m.cfg.SessionPolicy, m.cfg.SessionPolicyARNs = inline, arns }
}
