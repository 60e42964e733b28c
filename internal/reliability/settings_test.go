package reliability

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/credsidecar/credsidecar/internal/creds"
	"github.com/credsidecar/credsidecar/internal/testkit/podenv"
)

// recordingSTS passes calls to the real STS (SeaweedFS) and records their inputs; once failing
// is set it answers every call with a network error instead: the outage a real STS will not
// produce on demand.
type recordingSTS struct {
	api     creds.STSAPI
	failing atomic.Bool
	mu      sync.Mutex
	inputs  []sts.AssumeRoleWithWebIdentityInput
}

func (r *recordingSTS) AssumeRoleWithWebIdentity(ctx context.Context, in *sts.AssumeRoleWithWebIdentityInput,
	opts ...func(*sts.Options)) (*sts.AssumeRoleWithWebIdentityOutput, error) {
	r.mu.Lock()
	r.inputs = append(r.inputs, *in)
	r.mu.Unlock()
	if r.failing.Load() {
		return nil, errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
	}
	return r.api.AssumeRoleWithWebIdentity(ctx, in, opts...)
}

func (r *recordingSTS) first() sts.AssumeRoleWithWebIdentityInput {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inputs[0]
}

// TestServeSettingsTakeEffect proves that serve settings whose defaults would otherwise hide
// them reach the running sidecar through package app: each subtest sets a value the default
// would not behave like, and checks what the sidecar does with it.
func TestServeSettingsTakeEffect(t *testing.T) {
	w := podenv.Shared(t)

	t.Run("min-remaining: the floor below which the endpoint answers 503", func(t *testing.T) {
		rec := &recordingSTS{}
		s := w.StartSidecar(t, podenv.SidecarOptions{MinRemaining: 25 * time.Minute,
			STS: func(api creds.STSAPI) creds.STSAPI { rec.api = api; return rec }})
		expiry := s.Events.Updates()[0]
		rec.failing.Store(true)
		// 26 min left: still served (refreshes failing meanwhile); 24 min left: refused. With the
		// default 5 min floor, both would be served.
		for _, tc := range []struct {
			left time.Duration
			want int
		}{{26 * time.Minute, http.StatusOK}, {24 * time.Minute, http.StatusServiceUnavailable}} {
			s.Settle(t)
			s.Fake.Set(expiry.Add(-tc.left))
			s.Settle(t)
			if a := s.Get(t, s.Auth); a.Status != tc.want {
				t.Errorf("with %v left and --min-remaining 25m: %d, want %d", tc.left, a.Status, tc.want)
			}
		}
	})

	t.Run("token-poll-interval: a rotation no notification reports is seen at the next poll", func(t *testing.T) {
		// The sidecar is given a symlink, in a directory of its own, to the projector's token:
		// the rotations happen in the projector's directory, which the sidecar does not watch,
		// so only the poll can notice them; likewise for the auth token.
		linkDir := t.TempDir()
		authDir := t.TempDir()
		link := filepath.Join(linkDir, "token")
		authLink := filepath.Join(linkDir, "auth-token")
		authFile := filepath.Join(authDir, "auth-token")
		if err := os.WriteFile(authFile, []byte("first-auth-token-0123456789abcdef0123"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(authFile, authLink); err != nil {
			t.Fatal(err)
		}
		const poll = 7 * time.Second // the default is 30 s
		s := w.StartSidecar(t, podenv.SidecarOptions{TokenPollInterval: poll, AuthTokenFile: authLink, TokenLink: link})
		s.Settle(t)
		if err := s.Proj.Rotate(); err != nil {
			t.Fatal(err)
		}
		const second = "second-auth-token-0123456789abcdef0123"
		if err := os.WriteFile(authFile+".new", []byte(second), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(authFile+".new", authFile); err != nil {
			t.Fatal(err)
		}
		s.Settle(t)
		s.Fake.Advance(poll)
		s.Settle(t)
		s.Events.NextReload(t, w.Guard, "the rotated token's TokenReloaded after one poll interval")
		s.Logs.WaitFind(t, w.Guard, "auth token changed, now expecting the new one")
		if a := s.Get(t, second); a.Status != http.StatusOK {
			t.Errorf("the rotated auth token: %d, want 200", a.Status)
		}
	})

	t.Run("duration and session-name: what STS is asked for", func(t *testing.T) {
		rec := &recordingSTS{}
		w.StartSidecar(t, podenv.SidecarOptions{Duration: 2 * time.Hour, SessionName: "team.job-7",
			STS: func(api creds.STSAPI) creds.STSAPI { rec.api = api; return rec }})
		in := rec.first()
		if got := aws.ToInt32(in.DurationSeconds); got != 7200 {
			t.Errorf("DurationSeconds %d, want 7200 (--duration 2h)", got)
		}
		if got := aws.ToString(in.RoleSessionName); got != "team.job-7" {
			t.Errorf("RoleSessionName %q, want team.job-7", got)
		}
	})

	t.Run("refresh-window: when the refresh starts", func(t *testing.T) {
		rec := &recordingSTS{}
		s := w.StartSidecar(t, podenv.SidecarOptions{RefreshWindow: 20 * time.Minute,
			STS: func(api creds.STSAPI) creds.STSAPI { rec.api = api; return rec }})
		expiry := s.Events.Updates()[0]
		s.AdvanceUntilUpdated(t)
		// The refresh came with at most 20 min (and more than 18 min) left of the first session;
		// the default 40 min window would have refreshed 20 min earlier.
		if left := expiry.Sub(s.Fake.Now()); left > 20*time.Minute || left < 17*time.Minute {
			t.Errorf("refreshed with %v left, want 18-20 min (--refresh-window 20m)", left)
		}
	})
}
