package reliability

import (
	"os"
	"testing"
	"time"

	"github.com/credsidecar/credsidecar/internal/testkit/podenv"
)

// guard bounds how long a test waits for something asynchronous (an fsnotify event, a
// goroutine reaching a point, a server closing a connection) before failing. It is a failure
// timeout, never a sleep.
const guard = 20 * time.Second

// TestMain shares one podenv World (the issuer and SeaweedFS) among the package's tests; the
// STS-fault tests, which need neither, never start it.
func TestMain(m *testing.M) { os.Exit(podenv.Main(m, podenv.Options{Guard: guard})) }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
