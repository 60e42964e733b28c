package creds

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/aws/smithy-go"

	"github.com/credsidecar/credsidecar/internal/clock"
	"github.com/credsidecar/credsidecar/internal/testkit/await"
	"github.com/credsidecar/credsidecar/internal/testkit/observe"
)

func TestFirstFetch(t *testing.T) {
	tests := []struct {
		name        string
		sessionName string
		wantSession string
	}{
		{name: "session name from token claims", wantSession: "shop.uploader-7d9f8-abcde"},
		{name: "configured session name", sessionName: "my-session", wantSession: "my-session"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			tok := validToken(t)
			h.dir.write(tok)
			h.cfg.SessionName = tt.sessionName
			h.start()

			calls := h.sts.callList()
			if len(calls) != 1 {
				t.Fatalf("STS calls after start = %d, want 1", len(calls))
			}
			c := calls[0]
			if c.token != tok || c.role != testRole || c.session != tt.wantSession || c.duration != 3600 {
				t.Errorf("STS got role=%q session=%q duration=%d token-matches=%v, want %q %q 3600 true",
					c.role, c.session, c.duration, c.token == tok, testRole, tt.wantSession)
			}
			got := h.m.Servable()
			if got == nil {
				t.Fatal("Servable() = nil after a successful first fetch")
			}
			issued := h.sts.issuedList()[0]
			if got.AccessKeyID != *issued.AccessKeyId || got.SecretAccessKey != *issued.SecretAccessKey ||
				got.SessionToken != *issued.SessionToken || !got.Expiration.Equal(t0.Add(time.Hour)) {
				t.Errorf("Servable() = %v, want the issued credentials expiring %v", got, t0.Add(time.Hour))
			}
			if got.AccountID != "123456789012" || got.RoleARN != testRole {
				t.Errorf("AccountID, RoleARN = %q, %q; want 123456789012, %q", got.AccountID, got.RoleARN, testRole)
			}
			if exp := h.obs.NextUpdate(t, guard, "CredentialsUpdated"); !exp.Equal(got.Expiration) {
				t.Errorf("CredentialsUpdated(%v), want %v", exp, got.Expiration)
			}
			if r := h.obs.Calls(); len(r) != 1 || r[0] != "success/" {
				t.Errorf("observed STS calls %q, want [success/]", r)
			}
			h.logs.waitFor(t, "fetched credentials", MaskKeyID(got.AccessKeyID), tt.wantSession, "refresh_at")
			if h.m.LastError() != nil {
				t.Errorf("LastError() = %v after success", h.m.LastError())
			}
		})
	}
}

// The refresh starts when the remaining lifetime R falls to RefreshWindow less a jitter of
// r * RefreshWindow/10, r in [0, 1) from the injected rand: R in (36 min, 40 min] by default,
// so a 1 h session is refreshed after 20-24 min: at most three STS calls an hour.
func TestRefreshTimingAndJitter(t *testing.T) {
	var prev time.Duration
	for _, r := range []float64{0, 0.25, 0.5, 0.999} {
		t.Run(fmt.Sprintf("r=%v", r), func(t *testing.T) {
			h := newHarness(t)
			h.r = r
			h.dir.write(validToken(t))
			h.start()
			first := h.m.Servable()
			for h.sts.count() < 2 {
				h.step()
				if h.m.Servable() == nil {
					t.Fatalf("nothing servable at %v, before the refresh", h.clk.Now())
				}
			}
			refresh := h.sts.callList()[1]
			remaining := first.Expiration.Sub(refresh.at)
			window := DefaultRefreshWindow
			if remaining > window || remaining <= window-window/10 {
				t.Fatalf("refreshed with %v left, want within (%v, %v]", remaining, window-window/10, window)
			}
			if want := window - time.Duration(r*float64(window/10)); remaining != want {
				t.Errorf("refreshed with %v left, want %v for jitter %v", remaining, want, r)
			}
			if perHour := float64(time.Hour) / float64(DefaultDuration-remaining); perHour > 3 {
				t.Errorf("a refresh every %v of a %v session: %.2f STS calls an hour, want at most 3",
					DefaultDuration-remaining, DefaultDuration, perHour)
			}
			if prev != 0 && remaining >= prev {
				t.Errorf("jitter %v refreshed with %v left, not later than the smaller jitter's %v", r, remaining, prev)
			}
			prev = remaining
			h.obs.NextUpdate(t, guard, "first CredentialsUpdated")
			h.obs.NextUpdate(t, guard, "refreshed CredentialsUpdated")
			if second := h.m.Servable(); second == nil || second.AccessKeyID == first.AccessKeyID {
				t.Errorf("after the refresh Servable() = %v, want new credentials", second)
			}
		})
	}
}

// STS may hand out credentials that live shorter than the refresh window (a role's session
// limit, a non-AWS STS); refreshing "now" after every fetch would hammer it.
func TestShortLivedCredentialsDoNotHotLoop(t *testing.T) {
	h := newHarness(t)
	h.sts.lifetime = 20 * time.Minute
	h.dir.write(validToken(t))
	h.start()
	h.stepUntil(t0.Add(10*time.Minute), nil)
	calls := h.sts.callList()
	for i := 1; i < len(calls); i++ {
		if gap := calls[i].at.Sub(calls[i-1].at); gap < minRefreshDelay {
			t.Errorf("calls %d and %d only %v apart, want >= %v", i-1, i, gap, minRefreshDelay)
		}
	}
	if n := len(calls); n > 11 {
		t.Errorf("%d STS calls in 10 minutes, want <= 11", n)
	}
	h.logs.waitFor(t, "credentials live shorter than the refresh window; refreshing sooner")
}

func TestColdStartWaitersShareOneCall(t *testing.T) {
	h := newHarness(t)
	h.dir.write(validToken(t))
	h.build()
	gate := make(chan struct{})
	h.sts.setFail(func(int, stsCall) error { <-gate; return nil })

	const n = 1000
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	var ready, done sync.WaitGroup
	got := make([]*Credentials, n)
	for i := range n {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			ready.Done()
			got[i] = h.m.Wait(ctx)
		}()
	}
	await.Done(t, guard, "the waiters' start", ready.Wait)
	h.run()
	h.sts.next(t) // the one call is in flight while every waiter waits
	close(gate)
	await.Done(t, guard, "every waiter's return", done.Wait)
	h.settle()

	if c := h.sts.count(); c != 1 {
		t.Errorf("%d STS calls for %d cold-start waiters, want 1", c, n)
	}
	want := h.m.Servable()
	if want == nil {
		t.Fatal("Servable() = nil after the first fetch")
	}
	for i, c := range got {
		if c != want {
			t.Fatalf("waiter %d got %v, want the published credentials %v", i, c, want)
		}
	}
}

// backoffBounds returns the fewest and the most calls the retry backoff allows in span after
// a first failed call: the n-th wait is in [d/2, d) with d = min(1 s * 2^(n-1), 1 min).
func backoffBounds(span time.Duration) (least, most int) {
	count := func(frac float64) int {
		calls, at := 1, time.Duration(0)
		for n := 1; ; n++ {
			d := min(retryBase<<min(n-1, 7), retryMax)
			at += time.Duration(frac * float64(d))
			if at > span {
				return calls
			}
			calls++
		}
	}
	return count(1), count(0.5)
}

func TestOutageKeepsServingUntilFloor(t *testing.T) {
	kinds := []struct {
		name     string
		err      func(n int) error
		wantCode []string
	}{
		{name: "5xx", err: func(int) error { return err5xx() }, wantCode: []string{"InternalFailure"}},
		{name: "throttling", err: func(int) error { return errThrottle() }, wantCode: []string{"Throttling"}},
		{name: "network", err: func(int) error { return errNetwork() }, wantCode: []string{CodeNetwork}},
		{name: "mixed", err: func(n int) error {
			return []func() error{err5xx, errThrottle, errNetwork}[n%3]()
		}, wantCode: []string{"InternalFailure", "Throttling", CodeNetwork}},
	}
	for i, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			h := newHarness(t)
			h.dir.write(validToken(t))
			rng := rand.New(rand.NewPCG(uint64(i), 42))
			h.start(WithRand(rng.Float64))
			first := h.m.Servable()
			h.sts.setFail(func(n int, _ stsCall) error { return k.err(n) })

			end := first.Expiration.Add(2 * time.Minute)
			h.stepUntil(end, func() {
				remaining := first.Expiration.Sub(h.clk.Now())
				got := h.m.Servable()
				switch {
				case remaining >= DefaultMinRemaining && got != first:
					t.Fatalf("with %v left Servable() = %v, want the cached credentials", remaining, got)
				case remaining < DefaultMinRemaining && got != nil:
					t.Fatalf("with %v left Servable() = %v, want nil", remaining, got)
				}
			})

			failed := h.sts.callList()[1:]
			if len(failed) == 0 {
				t.Fatal("no refresh attempt during the outage")
			}
			span := failed[len(failed)-1].at.Sub(failed[0].at)
			if span < 30*time.Minute {
				t.Fatalf("outage covered %v of attempts, want >= 30m", span)
			}
			for j := 1; j < len(failed); j++ {
				d := min(retryBase<<min(j-1, 7), retryMax)
				if gap := failed[j].at.Sub(failed[j-1].at); gap < d/2 || gap > d {
					t.Errorf("wait before retry %d = %v, want within [%v, %v]", j, gap, d/2, d)
				}
			}
			least, most := backoffBounds(span)
			if n := len(failed); n < least || n > most {
				t.Errorf("%d STS calls in %v of outage, want between %d and %d", n, span, least, most)
			}
			t.Logf("%d STS calls in %v of outage (backoff allows %d..%d)", len(failed), span, least, most)

			rec := h.logs.waitFor(t, "fetch credentials failed", `"class":"retry"`)
			if rec["level"] != "WARN" {
				t.Errorf("retryable failure logged at %v, want WARN", rec["level"])
			}
			seen := strings.Join(h.obs.Calls(), " ")
			for _, code := range k.wantCode {
				if !strings.Contains(seen, "error/"+code) {
					t.Errorf("observed %q, want an error/%s", seen, code)
				}
			}
			if Classify(h.m.LastError()) != Retry {
				t.Errorf("LastError() = %v, want a retryable error", h.m.LastError())
			}

			// STS comes back: the next retry publishes and the backoff resets to the refresh schedule.
			h.sts.setFail(nil)
			for before := h.sts.count(); h.sts.count() == before; {
				h.step()
			}
			back := h.m.Servable()
			if back == nil || back == first {
				t.Fatalf("after recovery Servable() = %v, want new credentials", back)
			}
			h.logs.waitFor(t, "sts recovered")
			if h.m.LastError() != nil {
				t.Errorf("LastError() = %v after recovery", h.m.LastError())
			}
			recovered := h.clk.Now()
			for before := h.sts.count(); h.sts.count() == before; {
				h.step()
			}
			if gap := h.clk.Now().Sub(recovered); gap < DefaultDuration-DefaultRefreshWindow*11/10 {
				t.Errorf("next call %v after recovery, want the refresh schedule (>= %v)", gap, DefaultDuration-DefaultRefreshWindow*11/10)
			}
		})
	}
}

func TestServableFloor(t *testing.T) {
	h := newHarness(t)
	h.dir.write(validToken(t))
	h.start()
	first := h.m.Servable()
	h.sts.setFail(func(int, stsCall) error { return err5xx() })
	floor := first.Expiration.Add(-DefaultMinRemaining)
	tests := []struct {
		name string
		at   time.Time
		want *Credentials
	}{
		{name: "just above the floor", at: floor.Add(-time.Nanosecond), want: first},
		{name: "at the floor", at: floor, want: first},
		{name: "just below the floor", at: floor.Add(time.Nanosecond), want: nil},
		{name: "expired", at: first.Expiration.Add(time.Second), want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.clk.Set(tt.at)
			h.settle()
			if got := h.m.Servable(); got != tt.want {
				t.Errorf("Servable() at %v left = %v, want %v", first.Expiration.Sub(tt.at), got, tt.want)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if got := h.m.Wait(ctx); got != nil {
		t.Errorf("Wait(cancelled) = %v with expired credentials, want nil", got)
	}
}

func TestTerminalErrorsDoNotHotLoop(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		aud      []string
		wantCode string
	}{
		{name: "AccessDenied", err: apiErr(403, "AccessDenied", smithy.FaultClient), wantCode: "AccessDenied"},
		{name: "InvalidIdentityToken", err: httpErr(400, &types.InvalidIdentityTokenException{Message: aws.String("No OpenIDConnect provider found")}),
			wantCode: "InvalidIdentityToken"},
		{name: "InvalidIdentityToken with three audiences", aud: []string{"https://kubernetes.default.svc", "api", "sts.amazonaws.com"},
			err:      httpErr(400, &types.InvalidIdentityTokenException{Message: aws.String("Incorrect token audience")}),
			wantCode: "InvalidIdentityToken"},
		{name: "InvalidParameterValue", err: apiErr(400, "InvalidParameterValue", smithy.FaultClient), wantCode: "InvalidParameterValue"},
		{name: "ExpiredTokenException", err: httpErr(400, &types.ExpiredTokenException{Message: aws.String("expired")}),
			wantCode: "ExpiredTokenException"},
		{name: "IDPRejectedClaim", err: httpErr(403, &types.IDPRejectedClaimException{}), wantCode: "IDPRejectedClaim"},
		{name: "RegionDisabledException", err: httpErr(403, &types.RegionDisabledException{}), wantCode: "RegionDisabledException"},
		{name: "MalformedPolicyDocument", err: httpErr(400, &types.MalformedPolicyDocumentException{}), wantCode: "MalformedPolicyDocument"},
		{name: "PackedPolicyTooLarge", err: httpErr(400, &types.PackedPolicyTooLargeException{}), wantCode: "PackedPolicyTooLarge"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.r = 0.5
			claims := k8sClaims(t0, 24*time.Hour)
			if tt.aud != nil {
				claims["aud"] = tt.aud
			}
			h.dir.write(makeJWT(t, claims))
			h.sts.setFail(func(int, stsCall) error { return tt.err })
			h.start()

			h.stepUntil(t0.Add(10*time.Minute), func() {
				if c := h.m.Servable(); c != nil {
					t.Fatalf("Servable() = %v while STS rejects every call", c)
				}
			})
			calls := h.sts.callList()
			if n := len(calls); n > 11 || n < 9 {
				t.Errorf("%d STS calls in 10 minutes of %s, want 9..11", n, tt.wantCode)
			}
			for i := 1; i < len(calls); i++ {
				if gap := calls[i].at.Sub(calls[i-1].at); gap < terminalBackoff || gap > terminalBackoff*11/10 {
					t.Errorf("wait before call %d = %v, want within [%v, %v]", i, gap, terminalBackoff, terminalBackoff*11/10)
				}
			}
			rec := h.logs.waitFor(t, "fetch credentials failed", `"class":"terminal"`, `"code":"`+tt.wantCode+`"`,
				`"cause":"cause of `+tt.wantCode+`"`, `"finding":"finding-`+tt.wantCode+`"`,
				"system:serviceaccount:shop:uploader", "oidc.example.test")
			if rec["level"] != "ERROR" {
				t.Errorf("terminal failure logged at %v, want ERROR", rec["level"])
			}
			if err := h.m.LastError(); Classify(err) != Terminal || ErrorCode(err) != tt.wantCode {
				t.Errorf("LastError() = %v (%v, %s), want terminal %s", err, Classify(err), ErrorCode(err), tt.wantCode)
			}

			// A rotated token may be what fixes it: try at once, not after the backoff.
			h.clk.Advance(minKickInterval)
			h.sts.setFail(nil)
			fixed := makeJWT(t, k8sClaims(h.clk.Now(), 24*time.Hour))
			h.dir.write(fixed)
			call := h.sts.next(t)
			for call.token != fixed { // drain calls made before the rotation
				call = h.sts.next(t)
			}
			if !call.at.Equal(h.clk.Now()) {
				t.Errorf("retry after rotation at %v, want at once (%v)", call.at, h.clk.Now())
			}
			if c := h.m.Wait(context.Background()); c == nil {
				t.Error("Wait() = nil after the rotation fixed it")
			}
		})
	}
}

func TestTokenFaults(t *testing.T) {
	tests := []struct {
		name  string
		fault func(p *projectedDir)
		want  string
	}{
		{name: "deleted", fault: (*projectedDir).deleteToken, want: "file does not exist (is the projected volume mounted"},
		{name: "emptied", fault: func(p *projectedDir) { p.write("") }, want: "file is empty"},
		{name: "garbage", fault: func(p *projectedDir) { p.write("this is not a token\n") }, want: "not a JWT"},
		{name: "expired", fault: func(p *projectedDir) { p.write(makeJWT(p.tb, k8sClaims(t0.Add(-2*time.Hour), time.Hour))) },
			want: "token expired at " + t0.Add(-time.Hour).Format(time.RFC3339)},
		// Running as root, a permission fault cannot be made; a directory and dangling
		// symlinks are what a broken mount looks like instead.
		{name: "directory", fault: (*projectedDir).tokenIsDir, want: "is a directory"},
		{name: "symlink to nowhere", fault: (*projectedDir).danglingToken, want: "symlink to ..data/missing points nowhere"},
		{name: "..data to nowhere", fault: (*projectedDir).danglingData, want: "symlink to ..data/token points nowhere"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.dir.write(validToken(t))
			h.start()
			first := h.m.Servable()
			h.obs.NextUpdate(t, guard, "first CredentialsUpdated")
			h.sts.next(t) // the first call
			path := h.dir.path()

			tt.fault(h.dir)
			h.logs.waitFor(t, "token unusable", path, tt.want)

			// The refresh comes due while the token is broken: no STS call, keep serving.
			h.clk.Set(first.Expiration.Add(-DefaultRefreshWindow))
			h.settle()
			err := h.m.LastError()
			var te *TokenError
			if !errors.As(err, &te) || te.Path != path || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("LastError() = %v, want a TokenError for %s saying %q", err, path, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "read token "+path+": ") {
				t.Errorf("error %q does not start with the operation and path", err)
			}
			h.logs.waitFor(t, "fetch credentials failed", path, tt.want, CodeToken)
			if n := h.sts.count(); n != 1 {
				t.Errorf("%d STS calls with a broken token, want only the first", n)
			}
			if got := h.m.Servable(); got != first {
				t.Errorf("Servable() = %v while the token is broken, want the cached credentials", got)
			}

			// The fix is a rotation; the watcher sees it and the fetch follows without a restart.
			h.clk.Advance(minKickInterval)
			fixed := makeJWT(t, k8sClaims(h.clk.Now(), 24*time.Hour))
			h.dir.write(fixed)
			if call := h.sts.next(t); call.token != fixed {
				t.Errorf("STS got a token other than the fixed one")
			}
			h.obs.NextUpdate(t, guard, "CredentialsUpdated after the fix")
			h.obs.NextReload(t, guard, "TokenReloaded after the fix")
			if got := h.m.Servable(); got == nil || got == first {
				t.Errorf("Servable() = %v after the fix, want new credentials", got)
			}
			h.logs.waitFor(t, "token rotation noticed", path)
			h.logs.waitFor(t, "sts recovered")
		})
	}
}

// Without a usable directory watch (here: the directory does not exist yet), the poll notices
// the token and triggers the fetch.
func TestPollFallback(t *testing.T) {
	h := newHarness(t)
	h.dir = newProjectedDirAt(t, filepath.Join(t.TempDir(), "not-yet"))
	h.cfg.TokenFile = h.dir.path()
	h.start()
	if h.sts.count() != 0 || h.m.Servable() != nil {
		t.Fatalf("with no token: %d STS calls, Servable() = %v; want none", h.sts.count(), h.m.Servable())
	}
	h.logs.waitFor(t, "cannot watch token directory; polling until it can", filepath.Dir(h.dir.path()))
	h.logs.waitFor(t, "fetch credentials failed", "file does not exist", h.dir.path())

	h.dir.write(validToken(t))
	h.step()
	call := h.sts.next(t)
	if want := t0.Add(DefaultPollInterval); !call.at.Equal(want) {
		t.Errorf("fetch at %v, want at the first poll %v (before the 1 min backoff)", call.at, want)
	}
	if c := h.m.Wait(context.Background()); c == nil {
		t.Error("Wait() = nil after the token appeared")
	}
	h.obs.NextReload(t, guard, "TokenReloaded for the appearing token")

	// Once the directory exists the watch is added, so a rotation needs no poll.
	h.logs.waitFor(t, "watching token directory")
	rotated := makeJWT(t, k8sClaims(t0.Add(time.Minute), 24*time.Hour))
	h.dir.write(rotated)
	if exp := h.obs.NextReload(t, guard, "TokenReloaded"); !exp.Equal(t0.Add(time.Minute + 24*time.Hour)) {
		t.Errorf("TokenReloaded(%v), want the rotated token's expiry", exp)
	}
}

// A rotation while the credentials are fresh needs no STS call, but the next refresh must
// use the new token, which the watcher hands over.
func TestRotationWhileFresh(t *testing.T) {
	h := newHarness(t)
	h.dir.write(validToken(t))
	h.start()
	rotated := makeJWT(t, k8sClaims(t0.Add(time.Minute), 24*time.Hour))
	h.dir.write(rotated)
	h.obs.NextReload(t, guard, "TokenReloaded")
	h.logs.waitFor(t, "token changed; credentials still fresh")
	if n := h.sts.count(); n != 1 {
		t.Errorf("%d STS calls after a rotation with fresh credentials, want 1", n)
	}
	for h.sts.count() < 2 {
		h.step()
	}
	if h.sts.callList()[1].token != rotated {
		t.Error("refresh used the old token, want the rotated one")
	}
}

// Observers add up: metrics and a test (or the credentials file writer) each get every
// event, and a nil one is ignored.
func TestEveryObserverGetsEveryEvent(t *testing.T) {
	h := newHarness(t)
	h.dir.write(validToken(t))
	second := observe.NewRecorder()
	h.start(WithObserver(nil), WithObserver(second))
	got := h.m.Servable()
	if got == nil {
		t.Fatal("Servable() = nil after a successful first fetch")
	}
	rotated := makeJWT(t, k8sClaims(t0.Add(time.Minute), 24*time.Hour))
	h.dir.write(rotated)
	for _, o := range []struct {
		name string
		obs  *observe.Recorder
	}{{"first", h.obs}, {"second", second}} {
		if exp := o.obs.NextUpdate(t, guard, o.name+" observer's CredentialsUpdated"); !exp.Equal(got.Expiration) {
			t.Errorf("%s observer: CredentialsUpdated(%v), want %v", o.name, exp, got.Expiration)
		}
		if exp := o.obs.NextReload(t, guard, o.name+" observer's TokenReloaded"); !exp.Equal(t0.Add(time.Minute + 24*time.Hour)) {
			t.Errorf("%s observer: TokenReloaded(%v), want the rotated token's expiry", o.name, exp)
		}
		if r := o.obs.Calls(); len(r) != 1 || r[0] != "success/" {
			t.Errorf("%s observer: STS calls %q, want [success/]", o.name, r)
		}
	}
}

func TestLifecycle(t *testing.T) {
	t.Run("close before run", func(t *testing.T) {
		m, err := NewManager(Config{RoleARN: testRole, TokenFile: "/nonexistent/token"}, newFakeSTS(t, clock.NewFake(t0)))
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
		if err := m.Close(); err != nil {
			t.Errorf("second Close() = %v", err)
		}
		if err := m.Run(context.Background()); err != nil {
			t.Errorf("Run after Close = %v, want nil", err)
		}
		if c := m.Wait(context.Background()); c != nil {
			t.Errorf("Wait after Close = %v, want nil", c)
		}
	})
	t.Run("run twice, close while running", func(t *testing.T) {
		h := newHarness(t)
		h.dir.write(validToken(t))
		h.sts.setFail(func(int, stsCall) error { return err5xx() })
		h.start()
		if err := h.m.Run(context.Background()); err == nil {
			t.Error("second Run = nil, want an error")
		}
		ctx, cancel := context.WithCancel(context.Background())
		waited := make(chan *Credentials)
		go func() { waited <- h.m.Wait(ctx) }()
		cancel()
		if c := waitChan(t, waited, "Wait return after cancel"); c != nil {
			t.Errorf("Wait = %v with nothing fetched, want nil", c)
		}
		waiting := make(chan *Credentials)
		go func() { waiting <- h.m.Wait(context.Background()) }()
		if err := h.m.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
		if c := waitChan(t, waiting, "Wait return after Close"); c != nil {
			t.Errorf("Wait = %v after Close, want nil", c)
		}
		if err := h.m.Close(); err != nil {
			t.Errorf("second Close() = %v", err)
		}
	})
}

// Everything a log line can carry is checked for secrets: credentials, the JWT and its parts,
// also when STS echoes the token back in an error message.
func TestLogsCarryNoSecrets(t *testing.T) {
	h := newHarness(t)
	tok := validToken(t)
	h.dir.write(tok)
	h.start()
	first := h.m.Servable()
	h.obs.NextUpdate(t, guard, "first CredentialsUpdated")
	h.sts.setFail(func(_ int, c stsCall) error {
		return httpErr(400, &types.InvalidIdentityTokenException{Message: aws.String("token " + c.token + " rejected")})
	})
	h.clk.Set(first.Expiration.Add(-DefaultRefreshWindow))
	h.settle()
	h.logs.waitFor(t, "fetch credentials failed", "[token]")
	lastErr := h.m.LastError().Error()

	h.dir.write("eyJhbGciOiJSUzI1NiJ9.garbage-but-long-enough-to-matter.sig")
	h.logs.waitFor(t, "token unusable")
	h.clk.Advance(minKickInterval)
	h.sts.setFail(nil)
	tok2 := makeJWT(t, k8sClaims(h.clk.Now(), 24*time.Hour))
	h.dir.write(tok2)
	h.obs.NextUpdate(t, guard, "CredentialsUpdated after recovery")
	h.logs.waitFor(t, "sts recovered")
	second := h.m.Servable()

	// The scenario ran as intended: both fetches and the rotation were logged.
	h.logs.waitFor(t, "fetched credentials", MaskKeyID(first.AccessKeyID))
	h.logs.waitFor(t, "fetched credentials", MaskKeyID(second.AccessKeyID))
	h.logs.waitFor(t, "token rotation noticed")
	logs := h.logs.String()
	secrets := map[string]string{"access key id": first.AccessKeyID}
	for i, c := range h.sts.issuedList() {
		secrets[fmt.Sprintf("secret key %d", i)] = *c.SecretAccessKey
		secrets[fmt.Sprintf("session token %d", i)] = *c.SessionToken
	}
	for i, jwt := range []string{tok, tok2} {
		parts := strings.Split(jwt, ".")
		secrets[fmt.Sprintf("jwt %d", i)] = jwt
		secrets[fmt.Sprintf("jwt %d payload", i)] = parts[1]
		secrets[fmt.Sprintf("jwt %d signature", i)] = parts[2]
	}
	for name, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("logs contain the %s", name)
		}
		if strings.Contains(lastErr, s) {
			t.Errorf("LastError() contains the %s", name)
		}
	}
}

func BenchmarkServable(b *testing.B) {
	m, err := NewManager(Config{RoleARN: testRole, TokenFile: "/nonexistent/token"}, newFakeSTS(b, clock.Real()))
	if err != nil {
		b.Fatal(err)
	}
	m.cur.Store(&Credentials{AccessKeyID: "ASIA", Expiration: time.Now().Add(time.Hour)})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if m.Servable() == nil {
				b.Fatal("Servable() = nil")
			}
		}
	})
}
