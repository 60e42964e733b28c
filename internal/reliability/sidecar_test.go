package reliability

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/credsidecar/credsidecar/internal/app"
	"github.com/credsidecar/credsidecar/internal/clock"
	"github.com/credsidecar/credsidecar/internal/config"
	"github.com/credsidecar/credsidecar/internal/creds"
	"github.com/credsidecar/credsidecar/internal/testkit/sidecartest"
	"github.com/credsidecar/credsidecar/internal/testkit/testbed"
)

// bed is the real world around a sidecar: an OIDC issuer and SeaweedFS (STS and S3) trusting it.
type bed struct {
	iss  *testbed.Issuer
	weed *testbed.SeaweedFS
}

// startBed starts one SeaweedFS for the calling test and its subtests: it takes seconds, so
// the tests share it.
func startBed(t *testing.T) *bed {
	t.Helper()
	iss := testbed.StartIssuerForTest(t, testbed.IssuerOptions{})
	return &bed{iss: iss, weed: testbed.StartSeaweedFSForTest(t, testbed.SeaweedFSOptions{Issuer: iss})}
}

// appSidecar is the whole sidecar (internal/app, as cmd/sidecar runs it) in-process, reading a
// kubelet-style projected token and assuming the test bed's role at SeaweedFS.
type appSidecar struct {
	app    *app.App
	proj   *testbed.Projector
	clk    clock.Clock
	logs   *logCapture
	obs    *stsObserver
	url    string
	auth   string
	client *http.Client
}

// startApp runs the sidecar until the test ends and returns once it serves credentials. clk
// nil means the wall clock.
func startApp(t *testing.T, b *bed, clk clock.Clock) *appSidecar {
	t.Helper()
	s := &appSidecar{
		clk:    clk,
		logs:   newLogCapture(t),
		obs:    newSTSObserver(),
		client: &http.Client{Timeout: guard},
	}
	if s.clk == nil {
		s.clk = clock.Real()
	}
	// The projector keeps real time: SeaweedFS checks the token's expiry by its own clock.
	s.proj = testbed.NewProjectorForTest(t, testbed.ProjectorOptions{
		Minter: b.iss.Minter(testbed.TokenRequest{}),
	})
	dir := t.TempDir()
	cfg := config.Defaults()
	cfg.RoleARN = b.weed.RoleARN()
	cfg.TokenFile = s.proj.Path()
	cfg.STSEndpoint = b.weed.Endpoint()
	cfg.Region = testbed.Region
	cfg.Listen, cfg.MetricsListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.AuthTokenFile = filepath.Join(dir, "auth-token")
	cfg.LogLevel = -4 // debug: the logs are what tests wait on

	a := sidecartest.Start(t, cfg, app.Options{
		Logger: s.logs.logger(),
		Clock:  clk,
		// The observer replaces the metrics' one, so tests can count STS calls.
		CredsOptions: []creds.Option{creds.WithObserver(s.obs), creds.WithRand(func() float64 { return 0.5 })},
	}, guard)
	s.app = a
	s.url = a.Addrs().CredentialsURL()
	auth, err := os.ReadFile(cfg.AuthTokenFile)
	if err != nil {
		t.Fatal(err)
	}
	s.auth = strings.TrimSpace(string(auth))
	return s
}

// fakeTimers is how many timers the app arms on its clock when idle: the refresh loop, the
// token poll and the auth-token poll.
const fakeTimers = 3

// step moves a fake clock to the next timer and waits until the app has reacted.
func (s *appSidecar) step(t *testing.T) {
	t.Helper()
	f, ok := s.clk.(*clock.Fake)
	if !ok {
		t.Fatal("step needs a fake clock")
	}
	f.WaitForTimers(fakeTimers)
	f.AdvanceToNext()
	f.WaitForTimers(fakeTimers)
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

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
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
	b := startBed(t)
	for _, tf := range tokenFaults() {
		t.Run(tf.name, func(t *testing.T) {
			clk := clock.NewFake(time.Now())
			s := startApp(t, b, clk)
			first := mustGet(t, s.client, s.url, s.auth)
			if first.status != http.StatusOK {
				t.Fatalf("before the fault: status %d", first.status)
			}

			broken := clk.Now()
			tf.breakIt(t, s.proj, broken, b.iss)
			for steps := 0; !s.logs.has("fetch credentials failed", `"code":"TokenFile"`); steps++ {
				if steps > 500 {
					t.Fatal("no failed refresh after 500 clock steps")
				}
				s.step(t)
			}
			if !s.logs.has("fetch credentials failed", `"code":"TokenFile"`, tf.problem, s.proj.Path()) {
				t.Errorf("the failed refresh's log does not name the file and say %q", tf.problem)
			}
			// The refresh comes due with 40 min (plus the jitter's 2 min) left of SeaweedFS's hour.
			if waited := clk.Now().Sub(broken); waited < 15*time.Minute || waited > 20*time.Minute {
				t.Errorf("the failed refresh came %v after the fault, want the refresh time 15-20 min later", waited)
			}
			during := mustGet(t, s.client, s.url, s.auth)
			if during.status != http.StatusOK || during.creds.AccessKeyID != first.creds.AccessKeyID {
				t.Errorf("with a broken token: status %d key %q, want 200 with the cached credentials", during.status, during.creds.AccessKeyID)
			}
			if calls := s.obs.callList(); len(calls) != 1 {
				t.Errorf("STS calls %q with a broken token, want only the first one", calls)
			}

			// The kubelet writes a good token again.
			failedAt := clk.Now()
			if tf.clear != nil {
				tf.clear(t, s.proj)
			}
			must(t, s.proj.Rotate())
			for steps := 0; s.obs.updates() < 2; steps++ {
				if steps > 100 {
					t.Fatal("no fresh credentials 100 clock steps after the token was repaired")
				}
				s.step(t)
			}
			t.Logf("refresh failed %v after the fault; recovered %v after the repair",
				failedAt.Sub(broken).Round(time.Second), clk.Now().Sub(failedAt).Round(time.Second))
			after := mustGet(t, s.client, s.url, s.auth)
			if after.status != http.StatusOK || after.creds.AccessKeyID == first.creds.AccessKeyID {
				t.Errorf("after the repair: status %d key %q, want 200 with new credentials", after.status, after.creds.AccessKeyID)
			}
			if calls := s.obs.callList(); len(calls) != 2 || calls[1] != "success/" {
				t.Errorf("STS calls %q, want the first one and one successful recovery", calls)
			}
			tok, err := os.ReadFile(s.proj.Path())
			must(t, err)
			s.logs.mustNotContain(t, "service-account token", string(tok))
			s.logs.mustNotContain(t, "auth token", s.auth)
		})
	}
}
