package server

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/credsidecar/credsidecar/internal/authtoken"
	"github.com/credsidecar/credsidecar/internal/clock"
	"github.com/credsidecar/credsidecar/internal/creds"
	"github.com/credsidecar/credsidecar/internal/testkit/testlog"
)

// Test values. The secrets are distinctive so that the log checks can grep for them.
const (
	authToken    = "test-auth-token-Zx81kQ0pLm3nB7vC"
	secretKey    = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY+1"
	sessionToken = "FwoGZXIvYXdzEBYaDHsessionTOKENsecret/abc=="
)

var testStart = time.Date(2026, 8, 22, 12, 4, 5, 0, time.UTC)

func testCreds(expiry time.Time) *creds.Credentials {
	return &creds.Credentials{
		AccessKeyID:     "ASIAEXAMPLEKEY123456",
		SecretAccessKey: secretKey,
		SessionToken:    sessionToken,
		Expiration:      expiry,
		AccountID:       "123456789012",
		RoleARN:         "arn:aws:iam::123456789012:role/app",
	}
}

// loadToken returns a real auth token holding authToken.
func loadToken(tb testing.TB) *authtoken.Token {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "auth-token")
	if err := os.WriteFile(path, []byte(authToken), 0o600); err != nil {
		tb.Fatal(err)
	}
	tok, err := authtoken.Load(path)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// funcSource is the in-test Source: each test says what a Manager would answer.
type funcSource struct {
	servable func() *creds.Credentials
	wait     func(ctx context.Context) *creds.Credentials
}

func (s funcSource) Servable() *creds.Credentials { return s.servable() }

func (s funcSource) Wait(ctx context.Context) *creds.Credentials {
	if s.wait == nil {
		<-ctx.Done()
		return nil
	}
	return s.wait(ctx)
}

// fixedSource always has c.
func fixedSource(c *creds.Credentials) funcSource {
	return funcSource{
		servable: func() *creds.Credentials { return c },
		wait:     func(context.Context) *creds.Credentials { return c },
	}
}

// emptySource never has credentials: its Wait returns when ctx is done.
func emptySource() funcSource {
	return funcSource{servable: func() *creds.Credentials { return nil }}
}

type logBuffer = testlog.Buffer

func debugLogger() (*slog.Logger, *logBuffer) { return testlog.New(slog.LevelDebug) }

func newInfoLogger(b *logBuffer) *slog.Logger { return b.Logger(slog.LevelInfo) }

// startServer serves h on a loopback port with the production server settings.
func startServer(tb testing.TB, h http.Handler, log *slog.Logger) *httptest.Server {
	tb.Helper()
	ts := httptest.NewUnstartedServer(h)
	ts.Config = NewHTTPServer(h, log)
	ts.Start()
	tb.Cleanup(ts.Close)
	return ts
}

// fakeClock returns a fake clock at testStart.
func fakeClock() *clock.Fake { return clock.NewFake(testStart) }
