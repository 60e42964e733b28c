package reliability

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/credsidecar/credsidecar/internal/clock"
	"github.com/credsidecar/credsidecar/internal/creds"
	"github.com/credsidecar/credsidecar/internal/testkit/podenv"
	"github.com/credsidecar/credsidecar/internal/testkit/testbed"
)

// startApp runs the whole sidecar (internal/app, as cmd/sidecar runs it) in the shared World
// until the test ends, reading a kubelet-style projected token and assuming the default role at
// SeaweedFS, and returns once it serves credentials. clk nil means a fake clock. The jitter is
// fixed at the middle of its range, so refresh times are known.
func startApp(t *testing.T, clk clock.Clock) *podenv.Sidecar {
	t.Helper()
	return podenv.Shared(t).StartSidecar(t, podenv.SidecarOptions{
		Clock: clk,
		Creds: []creds.Option{creds.WithRand(func() float64 { return 0.5 })},
	})
}

// tokenFault breaks the projected token in place, as a broken volume, a careless operator or a
// half-finished kubelet write would, and says how the sidecar should explain it.
type tokenFault struct {
	name string
	// breakIt damages the volume of p.
	breakIt func(t *testing.T, p *testbed.Projector, now time.Time, iss *testbed.Issuer)
	// problem is part of the explanation the failed refresh must log.
	problem string
	// clear removes what breakIt left in the way of the kubelet's next write, if anything.
	clear func(t *testing.T, p *testbed.Projector)
}

// resolved is the file the token symlinks lead to, inside the current ..data directory.
func resolved(t *testing.T, p *testbed.Projector) string {
	t.Helper()
	target, err := filepath.EvalSymlinks(p.Path())
	must(t, err)
	return target
}

func tokenFaults() []tokenFault {
	removeToken := func(t *testing.T, p *testbed.Projector) { must(t, os.RemoveAll(p.Path())) }
	faults := []tokenFault{
		{
			name:    "deleted",
			breakIt: func(t *testing.T, p *testbed.Projector, _ time.Time, _ *testbed.Issuer) { must(t, os.Remove(p.Path())) },
			problem: "file does not exist",
		},
		{
			name: "emptied",
			breakIt: func(t *testing.T, p *testbed.Projector, _ time.Time, _ *testbed.Issuer) {
				must(t, os.Truncate(resolved(t, p), 0))
			},
			problem: "file is empty",
		},
		{
			name: "garbage",
			breakIt: func(t *testing.T, p *testbed.Projector, _ time.Time, _ *testbed.Issuer) {
				must(t, os.WriteFile(resolved(t, p), []byte("this is not a service-account token"), 0o644))
			},
			problem: "not a JWT",
		},
		{
			name: "expired",
			breakIt: func(t *testing.T, p *testbed.Projector, now time.Time, iss *testbed.Issuer) {
				tok, err := iss.Mint(testbed.TokenRequest{Expiry: now.Add(-time.Minute)})
				must(t, err)
				must(t, os.WriteFile(resolved(t, p), []byte(tok), 0o644))
			},
			problem: "token expired at",
		},
		{
			// We run as root, which reads any file whatever its mode, so an unreadable token is
			// made with a directory in its place (EISDIR on read) instead of chmod 000.
			name: "unreadable (a directory in its place)",
			breakIt: func(t *testing.T, p *testbed.Projector, _ time.Time, _ *testbed.Issuer) {
				must(t, os.Remove(p.Path()))
				must(t, os.Mkdir(p.Path(), 0o755))
			},
			problem: "is a directory",
			clear:   removeToken,
		},
		{
			name: "..data symlink to nowhere",
			breakIt: func(t *testing.T, p *testbed.Projector, _ time.Time, _ *testbed.Issuer) {
				tmp := filepath.Join(p.Dir(), "..data_tmp")
				must(t, os.Symlink("..2026_01_01_00_00_00.gone", tmp))
				must(t, os.Rename(tmp, filepath.Join(p.Dir(), "..data")))
			},
			problem: "points nowhere",
		},
		{
			name: "token symlink to nowhere",
			breakIt: func(t *testing.T, p *testbed.Projector, _ time.Time, _ *testbed.Issuer) {
				must(t, os.Remove(p.Path()))
				must(t, os.Symlink("..data/missing", p.Path()))
			},
			problem: "points nowhere",
			clear:   removeToken,
		},
	}
	if os.Geteuid() != 0 {
		faults = append(faults, tokenFault{
			name: "permission denied",
			breakIt: func(t *testing.T, p *testbed.Projector, _ time.Time, _ *testbed.Issuer) {
				must(t, os.Chmod(resolved(t, p), 0))
			},
			problem: "permission denied",
		})
	}
	return faults
}

// TestTokenFaults breaks the projected token while the sidecar serves, then lets the refresh
// come due (fake clock): the refresh must fail without calling STS and log what is wrong with
// the file, the cached credentials must keep being served, and once the kubelet writes a good
// token again one STS call must bring fresh credentials, without a restart.
func TestTokenFaults(t *testing.T) {
	iss := podenv.Shared(t).Issuer
	for _, tf := range tokenFaults() {
		t.Run(tf.name, func(t *testing.T) {
			s := startApp(t, nil)
			clk := s.Fake
			first := s.Get(t, s.Auth)
			if first.Status != http.StatusOK {
				t.Fatalf("before the fault: status %d", first.Status)
			}

			broken := clk.Now()
			tf.breakIt(t, s.Proj, broken, iss)
			for steps := 0; !s.Logs.Has("fetch credentials failed", `"code":"TokenFile"`); steps++ {
				if steps > 500 {
					t.Fatal("no failed refresh after 500 clock steps")
				}
				s.Step(t)
			}
			if !s.Logs.Has("fetch credentials failed", `"code":"TokenFile"`, tf.problem, s.Proj.Path()) {
				t.Errorf("the failed refresh's log does not name the file and say %q", tf.problem)
			}
			// The refresh comes due with 40 min (less the jitter's up to 4 min) left of SeaweedFS's
			// hour: 20-24 min after the fetch, which came just before the fault.
			if waited := clk.Now().Sub(broken); waited < 19*time.Minute || waited > 24*time.Minute {
				t.Errorf("the failed refresh came %v after the fault, want the refresh time 19-24 min later", waited)
			}
			during := s.Get(t, s.Auth)
			if during.Status != http.StatusOK || during.Creds.AccessKeyID != first.Creds.AccessKeyID {
				t.Errorf("with a broken token: status %d key %q, want 200 with the cached credentials", during.Status, during.Creds.AccessKeyID)
			}
			if calls := s.Events.Calls(); len(calls) != 1 {
				t.Errorf("STS calls %q with a broken token, want only the first one", calls)
			}

			// The kubelet writes a good token again.
			failedAt := clk.Now()
			if tf.clear != nil {
				tf.clear(t, s.Proj)
			}
			must(t, s.Proj.Rotate())
			for steps := 0; len(s.Events.Updates()) < 2; steps++ {
				if steps > 100 {
					t.Fatal("no fresh credentials 100 clock steps after the token was repaired")
				}
				s.Step(t)
			}
			t.Logf("refresh failed %v after the fault; recovered %v after the repair",
				failedAt.Sub(broken).Round(time.Second), clk.Now().Sub(failedAt).Round(time.Second))
			after := s.Get(t, s.Auth)
			if after.Status != http.StatusOK || after.Creds.AccessKeyID == first.Creds.AccessKeyID {
				t.Errorf("after the repair: status %d key %q, want 200 with new credentials", after.Status, after.Creds.AccessKeyID)
			}
			if calls := s.Events.Calls(); len(calls) != 2 || calls[1] != "success/" {
				t.Errorf("STS calls %q, want the first one and one successful recovery", calls)
			}
			tok, err := os.ReadFile(s.Proj.Path())
			must(t, err)
			s.Logs.MustNotContain(t, "service-account token", string(tok))
			s.Logs.MustNotContain(t, "auth token", s.Auth)
		})
	}
}
