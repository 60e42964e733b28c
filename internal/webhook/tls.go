package webhook

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/credsidecar/credsidecar/internal/clock"
	"github.com/credsidecar/credsidecar/internal/filewatch"
)

// certificate is the serving certificate, re-read when its files change: cert-manager (or the
// chart's own Secret) rotates them in a mounted Secret, which the kubelet updates by swapping a
// ..data symlink, and the webhook must pick the new pair up without a restart.
type certificate struct {
	certFile, keyFile string
	cert              atomic.Pointer[tls.Certificate]
	log               *slog.Logger
	// reloaded, if set, is called after each load that changed the certificate (tests).
	reloaded func()
}

func (c *certificate) load() error {
	pair, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("load tls certificate %s and key %s: %w", c.certFile, c.keyFile, err)
	}
	if old := c.cert.Load(); old != nil && equalChains(old.Certificate, pair.Certificate) {
		return nil
	}
	c.cert.Store(&pair)
	if pair.Leaf != nil {
		c.log.Info("tls certificate loaded", "file", c.certFile, "not_after", pair.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if c.reloaded != nil {
		c.reloaded()
	}
	return nil
}

func equalChains(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if string(a[i]) != string(b[i]) {
			return false
		}
	}
	return true
}

// get is tls.Config.GetCertificate.
func (c *certificate) get(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c.cert.Load(), nil }

// watch re-reads the pair whenever its directory changes, and every poll, until ctx is done. A
// pair that fails to load (the key written before the certificate, say) keeps the previous
// one in service and is logged.
func (c *certificate) watch(ctx context.Context, poll time.Duration, clk clock.Clock) {
	check := func() {
		if err := c.load(); err != nil {
			c.log.Warn("tls certificate not reloaded; serving the previous one", "error", err)
		}
	}
	dirs := []string{filepath.Dir(c.certFile)}
	if d := filepath.Dir(c.keyFile); d != dirs[0] {
		dirs = append(dirs, d)
	}
	done := make(chan struct{}, len(dirs))
	for _, d := range dirs {
		go func() {
			defer func() { done <- struct{}{} }()
			filewatch.Run(ctx, filewatch.Config{Dir: d, What: "tls certificate", Poll: poll, Clock: clk, Log: c.log}, check)
		}()
	}
	for range dirs {
		<-done
	}
}
