// Package podenv is the one environment the end-to-end suites (internal/e2e, internal/modes,
// internal/reliability) run sidecars in, as a pod would: an OIDC issuer standing for the
// cluster's service-account issuer, SeaweedFS as STS and S3 trusting it, and for each sidecar a
// kubelet-style projected token, one log capture (testlog.Buffer) and one recording observer
// (observe.Recorder). Every wait it offers has a deadline that fails with what was awaited.
//
// SeaweedFS takes seconds to start, so a test binary shares one World:
//
//	func TestMain(m *testing.M) { os.Exit(podenv.Main(m, podenv.Options{Guard: guard})) }
//
//	func TestX(t *testing.T) {
//		w := podenv.Shared(t)
//		s := w.StartSidecar(t, podenv.SidecarOptions{})
//		c := s.Served(t) // what the container endpoint serves now
//	}
//
// A test that needs a World of its own calls Start instead. The sidecar's configuration is built
// in one function, sidecarConfig, from SidecarOptions.
package podenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/credsidecar/credsidecar/internal/testkit/testbed"
)

// DefaultGuard bounds a wait when Options.Guard is zero.
const DefaultGuard = 30 * time.Second

// Options configure a World.
type Options struct {
	// Guard bounds every wait for something asynchronous (an STS round trip, a file event, a
	// goroutine reaching a point); DefaultGuard when zero. It is a failure timeout, never a sleep.
	Guard time.Duration
	// ExtraRoles are roles SeaweedFS knows besides the default one (e.g. a chained role), and
	// ExtraPolicies the permission policies they attach besides the default one.
	ExtraRoles    []testbed.Role
	ExtraPolicies []testbed.Policy
}

// World is what every sidecar of a test binary shares: the issuer and SeaweedFS. The issuer
// keeps wall time, because SeaweedFS checks the tokens' iat and exp against it.
type World struct {
	// Issuer signs the projected tokens and serves their keys to SeaweedFS.
	Issuer *testbed.Issuer
	// Weed is SeaweedFS, STS and S3 in one, trusting Issuer.
	Weed *testbed.SeaweedFS
	// Admin is an S3 client with SeaweedFS's admin credentials, to check what clients wrote.
	Admin *s3.Client
	// Guard bounds every wait of the environment.
	Guard time.Duration
}

// Start starts a World that t's clean-up stops; a start failure fails t.
func Start(t testing.TB, o Options) *World {
	t.Helper()
	w, err := start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		w.logOnFailure(t)
		if err := w.close(); err != nil {
			t.Error(err)
		}
	})
	return w
}

func start(o Options) (*World, error) {
	w := &World{Guard: o.Guard}
	if w.Guard <= 0 {
		w.Guard = DefaultGuard
	}
	iss, err := testbed.NewIssuer(testbed.IssuerOptions{})
	if err != nil {
		return nil, fmt.Errorf("start the issuer: %w", err)
	}
	w.Issuer = iss
	weed, err := testbed.StartSeaweedFS(context.Background(), testbed.SeaweedFSOptions{Issuer: iss, ExtraRoles: o.ExtraRoles,
		ExtraPolicies: o.ExtraPolicies})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("start SeaweedFS: %w", err), iss.Close())
	}
	w.Weed = weed
	w.Admin = weed.S3Client(weed.AdminCredentials())
	return w, nil
}

func (w *World) close() error {
	return errors.Join(w.Weed.Close(), w.Issuer.Close())
}

// logOnFailure shows SeaweedFS's last log lines if t failed: an STS refusal is explained there.
func (w *World) logOnFailure(t testing.TB) {
	if t.Failed() {
		t.Logf("seaweedfs at %s, pid %d, logs in %s:%s", w.Weed.Endpoint(), w.Weed.Pid(), w.Weed.LogDir(), w.Weed.LogTail())
	}
}

// The shared World of a test binary: started by the first Shared, stopped by Main. A package
// variable because TestMain and the tests have nothing else in common.
var shared struct {
	mu    sync.Mutex
	main  bool // Main is running the tests
	opts  Options
	world *World
	err   error // the start failure, reported to every test that asks
}

// Main runs the tests of m with a World shared by all of them, started on first use by Shared
// and stopped once they are over; it returns m.Run's exit code, for os.Exit.
func Main(m *testing.M, o Options) int {
	shared.mu.Lock()
	shared.main, shared.opts = true, o
	shared.mu.Unlock()
	code := m.Run()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.world != nil {
		if err := shared.world.close(); err != nil {
			fmt.Fprintf(os.Stderr, "podenv: stop the shared world: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// Shared returns the test binary's World, starting it on first use; the package's TestMain must
// run the tests through Main. A start failure fails t, and every later test that asks.
func Shared(t testing.TB) *World {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.main {
		t.Fatal("podenv.Shared needs the package's TestMain to run the tests through podenv.Main")
	}
	if shared.world == nil && shared.err == nil {
		shared.world, shared.err = start(shared.opts)
	}
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	w := shared.world
	t.Cleanup(func() { w.logOnFailure(t) })
	return w
}
