package reliability

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credsidecar/credsidecar/internal/authtoken"
	"github.com/credsidecar/credsidecar/internal/clock"
	"github.com/credsidecar/credsidecar/internal/creds"
	"github.com/credsidecar/credsidecar/internal/server"
	"github.com/credsidecar/credsidecar/internal/testkit/await"
	"github.com/credsidecar/credsidecar/internal/testkit/observe"
	"github.com/credsidecar/credsidecar/internal/testkit/podenv"
	"github.com/credsidecar/credsidecar/internal/testkit/testbed"
	"github.com/credsidecar/credsidecar/internal/testkit/testlog"
)

// Documented refresh behaviour of creds (package doc and Config defaults) the assertions rest on.
const (
	sessionLength = creds.DefaultDuration
	minRemaining  = creds.DefaultMinRemaining
	// retryBase and retryMax are the transient backoff: 1 s doubling to 1 min, each wait drawn
	// from [d/2, d).
	retryBase = time.Second
	retryMax  = time.Minute
)

// fakeSidecar is the credentials server wired as the app wires it (creds.Manager, authtoken,
// server.NewCredentials on a loopback listener), on a fake clock, against faultSTS. The app
// itself is not used here because these tests need a short STS call timeout, which the app
// does not expose (it keeps creds.DefaultCallTimeout, 10 s).
type fakeSidecar struct {
	clk    *clock.Fake
	sts    *faultSTS
	obs    *observe.Recorder
	logs   *testlog.Buffer
	url    string
	auth   string
	jwt    string
	client *http.Client
	// timers is how many fake timers are armed when everything is idle: the refresh loop's,
	// the token poll's and the projector's.
	timers int
}

func startFakeSidecar(t *testing.T, callTimeout time.Duration, jitter float64) *fakeSidecar {
	t.Helper()
	clk := clock.NewFake(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	iss := testbed.StartIssuerForTest(t, testbed.IssuerOptions{Clock: clk})
	// A token living two days: the projector does not rotate it during these tests, so every
	// STS call is one the refresh loop decided on.
	proj := testbed.NewProjectorForTest(t, testbed.ProjectorOptions{
		Clock:  clk,
		Minter: iss.Minter(testbed.TokenRequest{Lifetime: 48 * time.Hour}),
	})
	jwt, err := os.ReadFile(proj.Path())
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeSidecar{
		clk:    clk,
		sts:    newFaultSTS(t, clk, 10*callTimeout),
		obs:    observe.NewRecorder(),
		logs:   &testlog.Buffer{},
		jwt:    string(jwt),
		client: &http.Client{Timeout: guard},
		timers: 3,
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("captured logs (last 60 lines):\n%s", s.logs.Tail(60))
		}
	})
	log := s.logs.Logger(slog.LevelDebug)
	m, err := creds.NewManager(creds.Config{
		RoleARN:     "arn:aws:iam::123456789012:role/app",
		TokenFile:   proj.Path(),
		CallTimeout: callTimeout,
	}, creds.NewSTSClient(testbed.Region, s.sts.url()),
		creds.WithClock(clk), creds.WithObserver(s.obs), creds.WithLogger(log),
		creds.WithRand(func() float64 { return jitter }))
	if err != nil {
		t.Fatal(err)
	}
	authFile := filepath.Join(t.TempDir(), "auth-token")
	tok, err := authtoken.Load(authFile, authtoken.WithClock(clk), authtoken.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	auth, err := os.ReadFile(authFile)
	if err != nil {
		t.Fatal(err)
	}
	s.auth = strings.TrimSpace(string(auth))

	ln, err := server.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.url = "http://" + ln.Addr().String() + server.CredentialsPath
	// Without credentials the endpoint holds a request up to the cold-start wait (800 ms of real
	// time) before its 503; past the serving floor that would make every check here that long.
	h := server.NewCredentials(m, tok, server.WithClock(clk), server.WithLogger(log),
		server.WithColdStartWait(20*time.Millisecond))
	srv := server.NewHTTPServer(h, log)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := m.Run(ctx); err != nil {
			t.Errorf("Manager.Run: %v", err)
		}
	}()
	go func() {
		defer wg.Done()
		if err := server.Serve(ctx, srv, ln, 5*time.Second); err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		await.Done(t, guard, "the manager and the server to stop", wg.Wait)
	})
	// The first call normally succeeds at once; on a machine so loaded that it ran out of
	// callTimeout, the refresh loop's retries (on the fake clock) get there.
	s.settle(t)
	for steps := 0; len(s.obs.Updates()) == 0; steps++ {
		if steps > 20 {
			t.Fatalf("no credentials after 20 clock steps; STS calls: %q", s.obs.Calls())
		}
		s.step(t)
	}
	s.settle(t)
	return s
}

// get asks the endpoint once and fails t on a transport error.
func (s *fakeSidecar) get(t *testing.T) *podenv.Answer {
	t.Helper()
	a, err := podenv.Get(s.client, s.url, s.auth)
	if err != nil {
		t.Fatalf("GET %s: %v", s.url, err)
	}
	return a
}

// settle waits until every component has armed its timer again, i.e. has finished reacting to
// the last clock move (an STS call in flight holds the refresh loop's timer back).
func (s *fakeSidecar) settle(t *testing.T) {
	t.Helper()
	await.Timers(t, guard, s.clk, s.timers)
}

// step moves the fake clock to the next timer and waits for the reaction.
func (s *fakeSidecar) step(t *testing.T) {
	t.Helper()
	s.settle(t)
	s.clk.AdvanceToNext()
	s.settle(t)
}

// backoffBounds returns the fewest and the most STS calls the documented transient backoff
// allows in span after a first failed call: the n-th wait is in [d/2, d) with
// d = min(1 s * 2^(n-1), 1 min).
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

// TestSTSFaults breaks STS when the first refresh is due and keeps it broken, stepping a fake
// clock through the refresh loop's retries. Throughout, a well-behaved client polls the real
// credentials endpoint: while the cached credentials have more than MinRemaining left, every
// answer must be 200 with them; past that floor, 503 and never the stale ones. STS calls must
// stay within the documented backoff, and one call must bring fresh credentials once STS heals,
// without a restart.
//
// The timeout faults cost one real call timeout per retry, so they run for a shorter stretch of
// fake time (still a dozen retries); the others run past the serving floor.
func TestSTSFaults(t *testing.T) {
	const jitter = 0.5 // refresh with 42 min left; every backoff wait is 3/4 of its nominal value
	tests := []struct {
		name     string
		fault    stsFault
		wantCode string
		// throughFloor keeps the fault until 5 min after the serving floor; otherwise it lasts
		// shortSpan.
		throughFloor bool
	}{
		{name: "500", fault: fault500, wantCode: "InternalFailure", throughFloor: true},
		{name: "503", fault: fault503, wantCode: "ServiceUnavailable", throughFloor: true},
		{name: "throttling", fault: faultThrottle, wantCode: "Throttling", throughFloor: true},
		{name: "connection reset", fault: faultReset, wantCode: creds.CodeNetwork, throughFloor: true},
		{name: "connection closed", fault: faultClose, wantCode: creds.CodeNetwork, throughFloor: true},
		{name: "timeout", fault: faultHang, wantCode: creds.CodeTimeout},
		{name: "answer slower than the client timeout", fault: faultSlowBody, wantCode: creds.CodeTimeout},
	}
	const (
		callTimeout = 300 * time.Millisecond
		shortSpan   = 3 * time.Minute
	)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := startFakeSidecar(t, callTimeout, jitter)
			start := s.clk.Now()
			first := s.get(t)
			if first.Status != http.StatusOK {
				t.Fatalf("at start: status %d", first.Status)
			}
			startCalls := len(s.obs.Calls())
			if s.sts.count() != startCalls {
				t.Fatalf("at start: STS server saw %d calls, the manager reported %d", s.sts.count(), startCalls)
			}
			// The answer's expiry, to the second, is what the manager holds: STS states whole seconds.
			expiry := first.Creds.Expiration
			if !expiry.Add(time.Second).After(start.Add(sessionLength)) {
				t.Fatalf("credentials expire at %v, want about an hour after %v", expiry, start)
			}
			// Credentials with exactly MinRemaining left are still served; a moment later not.
			floor := expiry.Add(-minRemaining)

			// The client's view, checked after every step of the clock and by a concurrent
			// client in between steps.
			check := func(a *podenv.Answer, err error, before, after time.Time) string {
				switch {
				case err != nil:
					return "transport error: " + err.Error()
				case !after.After(floor) && (a.Status != http.StatusOK || a.Creds.AccessKeyID != first.Creds.AccessKeyID):
					return "while the cached credentials were servable: status " + http.StatusText(a.Status) + " key " + a.Creds.AccessKeyID
				case before.After(floor) && a.Status != http.StatusServiceUnavailable:
					return "past the serving floor: status " + http.StatusText(a.Status) + ", want 503"
				case before.After(floor) && a.Code != "CredentialsUnavailable":
					return "past the serving floor: code " + a.Code
				}
				return ""
			}
			stop := make(chan struct{})
			var bg sync.WaitGroup
			var bgFailures []string
			var bgRequests int
			bg.Add(1)
			go func() {
				defer bg.Done()
				for bgRequests = 0; bgRequests < 200000; bgRequests++ {
					select {
					case <-stop:
						return
					default:
					}
					before := s.clk.Now()
					a, err := podenv.Get(s.client, s.url, s.auth)
					if msg := check(a, err, before, s.clk.Now()); msg != "" && len(bgFailures) < 10 {
						bgFailures = append(bgFailures, msg)
					}
				}
			}()

			s.sts.set(tt.fault)
			end := floor.Add(5 * time.Minute)
			if !tt.throughFloor {
				end = time.Time{} // set once the first failure is seen
			}
			var firstFailure time.Time
			served, refused := 0, 0
			for steps := 0; ; steps++ {
				if steps > 10000 {
					t.Fatal("no end after 10000 clock steps")
				}
				s.step(t)
				now := s.clk.Now()
				if firstFailure.IsZero() && len(s.obs.Calls()) > startCalls {
					firstFailure = now
					if end.IsZero() {
						end = now.Add(shortSpan)
					}
				}
				a, err := podenv.Get(s.client, s.url, s.auth)
				if msg := check(a, err, now, now); msg != "" {
					t.Fatalf("at +%v: %s", now.Sub(start), msg)
				}
				if a.Status == http.StatusOK {
					served++
				} else {
					refused++
				}
				if !end.IsZero() && !now.Before(end) {
					break
				}
			}
			close(stop)
			// Each of its requests is bounded by the client's timeout.
			await.Done(t, 2*guard, "the concurrent client's end", bg.Wait)
			if len(bgFailures) > 0 {
				t.Errorf("concurrent client (%d requests): %q", bgRequests, bgFailures)
			}

			// The refresh starts with 40 min less the jitter's 2 min left.
			if want := expiry.Add(-38 * time.Minute); !firstFailure.Equal(want) {
				t.Errorf("first refresh at +%v, want +%v", firstFailure.Sub(start), want.Sub(start))
			}
			calls := s.obs.Calls()[startCalls:]
			for _, c := range calls {
				if code, ok := strings.CutPrefix(c, "error/"); !ok || !codeMatches(tt.fault, code, tt.wantCode) {
					t.Fatalf("STS calls during the fault reported %q, want only error/%s", calls, tt.wantCode)
				}
			}
			least, most := backoffBounds(s.clk.Now().Sub(firstFailure))
			if len(calls) < least || len(calls) > most {
				t.Errorf("%d STS calls over %v of fault, want %d..%d (1 s doubling to 1 min)",
					len(calls), s.clk.Now().Sub(firstFailure), least, most)
			}
			if got := s.sts.count(); got != startCalls+len(calls) {
				t.Errorf("STS server saw %d calls, the manager reported %d: hidden retries", got, startCalls+len(calls))
			}
			if tt.throughFloor && (served == 0 || refused == 0) {
				t.Errorf("served %d and refused %d times across the floor, want both", served, refused)
			}

			// STS heals: one call, fresh credentials, no restart.
			s.sts.set(faultNone)
			before := s.sts.count()
			for steps := 0; len(s.obs.Updates()) < 2; steps++ {
				if steps > 100 {
					t.Fatal("no fresh credentials 100 clock steps after STS healed")
				}
				s.step(t)
			}
			if got := s.sts.count() - before; got != 1 {
				t.Errorf("%d STS calls to recover, want 1", got)
			}
			healed := s.get(t)
			if healed.Status != http.StatusOK || healed.Creds.AccessKeyID == first.Creds.AccessKeyID {
				t.Errorf("after recovery: status %d key %q, want 200 with new credentials", healed.Status, healed.Creds.AccessKeyID)
			}
			t.Logf("%s: %d STS calls in %v of fault (bounds %d..%d), %d requests served, %d refused past the floor, %d concurrent requests",
				tt.name, len(calls), s.clk.Now().Sub(firstFailure).Round(time.Second), least, most, served, refused, bgRequests)

			for _, k := range s.sts.issuedList() {
				s.logs.MustNotContain(t, "secret access key", k.secret)
				s.logs.MustNotContain(t, "session token", k.session)
			}
			s.logs.MustNotContain(t, "service-account token", s.jwt)
			s.logs.MustNotContain(t, "auth token", s.auth)
		})
	}
}
