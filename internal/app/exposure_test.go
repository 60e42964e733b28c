package app

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/credsidecar/credsidecar/internal/config"
	"github.com/credsidecar/credsidecar/internal/testkit/testbed"
)

// unreachableSTS answers every call with an error without touching the network: these tests
// configure STS endpoints off loopback, which a test must never call.
type unreachableSTS struct{}

func (unreachableSTS) AssumeRoleWithWebIdentity(context.Context, *sts.AssumeRoleWithWebIdentityInput,
	...func(*sts.Options)) (*sts.AssumeRoleWithWebIdentityOutput, error) {
	return nil, errors.New("dial tcp: test STS is unreachable")
}

// TestExposureWarnings: each setting that lets the credentials or the token reach more than the
// pod's own loopback is logged as a warning at start, naming what it costs.
func TestExposureWarnings(t *testing.T) {
	iss := testbed.StartIssuerForTest(t, testbed.IssuerOptions{})
	proj := testbed.NewProjectorForTest(t, testbed.ProjectorOptions{Minter: iss.Minter(testbed.TokenRequest{})})
	tests := []struct {
		name   string
		modify func(c *config.Config)
		want   string
	}{
		{"listen off loopback", func(c *config.Config) { c.Listen, c.AllowNonLoopback = "0.0.0.0:0", true },
			"the credentials endpoint listens off loopback"},
		{"plain http STS off loopback", func(c *config.Config) {
			c.STSEndpoint, c.AllowInsecureSTSEndpoint = "http://sts.example.com", true
		}, "STS is called over plain http off loopback"},
		{"hostNetwork", func(c *config.Config) { c.PodIP, c.HostIP = "10.1.2.3", "10.1.2.3" },
			"the pod uses hostNetwork"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t, testbed.DefaultRoleARN, proj.Path(), "http://127.0.0.1:1")
			cfg.AuthTokenFile = filepath.Join(t.TempDir(), "auth-token")
			tt.modify(&cfg)
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			logs := &logBuffer{}
			a, err := New(context.Background(), cfg, Options{Logger: NewLogger(logs, "json", slog.LevelDebug), STS: unreachableSTS{}})
			if err != nil {
				t.Fatal(err)
			}
			stop := started(t, a)
			logs.WaitFor(t, 30*time.Second, "the warning "+tt.want, func() bool { return strings.Contains(logs.String(), tt.want) })
			if err := stop(); err != nil {
				t.Errorf("Run = %v", err)
			}
		})
	}
	// The plain loopback set-up warns of nothing.
	cfg := testConfig(t, testbed.DefaultRoleARN, proj.Path(), "http://127.0.0.1:1")
	logs := &logBuffer{}
	a, err := New(context.Background(), cfg, Options{Logger: NewLogger(logs, "json", slog.LevelDebug), STS: unreachableSTS{}})
	if err != nil {
		t.Fatal(err)
	}
	stop := started(t, a)
	logs.WaitFind(t, 30*time.Second, "credsidecar starting")
	if err := stop(); err != nil {
		t.Errorf("Run = %v", err)
	}
	for _, w := range []string{"off loopback", "hostNetwork"} {
		if strings.Contains(logs.String(), w) {
			t.Errorf("a loopback sidecar warned %q", w)
		}
	}
}
