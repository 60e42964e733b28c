package e2e

import (
	"os"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/credsidecar/credsidecar/internal/app"
	"github.com/credsidecar/credsidecar/internal/clock"
	"github.com/credsidecar/credsidecar/internal/testkit/observe"
	"github.com/credsidecar/credsidecar/internal/testkit/podenv"
	"github.com/credsidecar/credsidecar/internal/testkit/testbed"
	"github.com/credsidecar/credsidecar/internal/testkit/testlog"
)

// guard bounds every wait for something asynchronous (a file event, an STS round trip, a
// goroutine reaching a point). It is a failure timeout, never a sleep.
const guard = 30 * time.Second

// TestMain shares one podenv World (the issuer and SeaweedFS) among the package's tests.
func TestMain(m *testing.M) { os.Exit(podenv.Main(m, podenv.Options{Guard: guard})) }

// env is the one environment all the tests of this binary share: SeaweedFS takes seconds to
// start, so it and everything around it is built once.
type env struct {
	iss    *testbed.Issuer
	proj   *testbed.Projector
	weed   *testbed.SeaweedFS
	proxy  *recordingProxy
	clk    *clock.Fake
	events *observe.Recorder
	logs   *testlog.Buffer
	addrs  app.Addrs
	// authTokenFile is AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE; the sidecar generated its content.
	authTokenFile string
	// home is a scratch directory for the SDK subprocesses' HOME and absent config files.
	home    string
	admin   *s3.Client
	secrets *secrets
	sidecar *podenv.Sidecar
}

// newEnv takes the shared issuer and SeaweedFS, puts the recording proxy in front of
// SeaweedFS's STS, and starts the sidecar in-process on a fake clock, returning once it serves
// credentials. t's clean-up stops the sidecar.
func newEnv(t *testing.T) *env {
	t.Helper()
	w := podenv.Shared(t)
	e := &env{
		iss:     w.Issuer,
		weed:    w.Weed,
		admin:   w.Admin,
		home:    t.TempDir(),
		secrets: &secrets{served: map[string]servedCreds{}},
	}
	e.proxy = startRecordingProxy(t, e.weed.Endpoint())
	s := w.StartSidecar(t, podenv.SidecarOptions{STSEndpoint: e.proxy.URL()})
	e.sidecar, e.proj, e.clk, e.events, e.logs = s, s.Proj, s.Fake, s.Events, s.Logs
	e.addrs, e.authTokenFile = s.Addrs, s.AuthTokenFile
	e.recordToken(t)
	e.served(t)
	return e
}

// recordToken notes the projected token now in place, for the leak check, and returns it.
func (e *env) recordToken(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(e.proj.Path())
	if err != nil {
		t.Fatalf("read projected token: %v", err)
	}
	e.secrets.mu.Lock()
	e.secrets.tokens = append(e.secrets.tokens, string(b))
	e.secrets.mu.Unlock()
	return string(b)
}

// authToken is the Authorization value the sidecar expects, read as the SDKs read it.
func (e *env) authToken(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(e.authTokenFile)
	if err != nil {
		t.Fatalf("read auth token: %v", err)
	}
	return string(b)
}

// served asks the endpoint for the credentials it serves right now, as an SDK would, and
// remembers them for the leak check.
func (e *env) served(t *testing.T) podenv.Creds {
	t.Helper()
	c := e.sidecar.Served(t)
	e.secrets.addServed(c.AccessKeyID, c.SecretAccessKey, c.Token)
	return c
}

// metricsText scrapes /metrics.
func (e *env) metricsText(t *testing.T) string {
	t.Helper()
	return e.sidecar.Metrics(t)
}

// servedCreds is one set of credentials the endpoint handed out.
type servedCreds struct{ accessKeyID, secretAccessKey, sessionToken string }

// secrets collects every secret the run handed out, so the last test can look for each in the
// logs and metrics.
type secrets struct {
	mu     sync.Mutex
	served map[string]servedCreds // by access key id
	tokens []string               // projected tokens, in the order the projector wrote them
}

func (s *secrets) addServed(id, secret, session string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.served[id] = servedCreds{id, secret, session}
}

func (s *secrets) snapshot() ([]servedCreds, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var list []servedCreds
	for _, c := range s.served {
		list = append(list, c)
	}
	return list, append([]string(nil), s.tokens...)
}
