package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/credsidecar/credsidecar/internal/clock"
	"github.com/credsidecar/credsidecar/internal/server"
)

// Config is the webhook's configuration; cmd/webhook binds its flags to it.
type Config struct {
	// Listen is the HTTPS address of POST /mutate.
	Listen string
	// TLSCertFile and TLSKeyFile are the serving pair, re-read when they change.
	TLSCertFile, TLSKeyFile string
	// Kubeconfig is a kubeconfig file; empty uses the in-cluster configuration.
	Kubeconfig string
	// MetricsListen is the address of /metrics, /healthz and /readyz (plain http).
	MetricsListen string
	// Defaults are what ServiceAccounts and pods that say nothing get.
	Defaults Defaults
	// ShutdownTimeout bounds the graceful shutdown after SIGTERM.
	ShutdownTimeout time.Duration
	// CertPollInterval re-reads the certificate this often besides file notifications.
	CertPollInterval time.Duration
}

// DefaultConfig is the configuration with every default applied and the required fields empty.
func DefaultConfig() Config {
	return Config{
		Listen:           ":9443",
		MetricsListen:    ":9913",
		ShutdownTimeout:  5 * time.Second,
		CertPollInterval: time.Minute,
		Defaults: Defaults{
			TokenExpiration: time.Hour,
			CPURequest:      resource.MustParse("10m"),
			MemoryRequest:   resource.MustParse("32Mi"),
			MemoryLimit:     resource.MustParse("64Mi"),
		},
	}
}

// Options are the parts a caller may supply instead of the defaults.
type Options struct {
	// Logger receives every part's logs; nil discards them.
	Logger *slog.Logger
	// Registry collects the metrics served on /metrics; nil makes a fresh one.
	Registry *prometheus.Registry
	// Client replaces the client built from Kubeconfig or the in-cluster configuration.
	Client kubernetes.Interface
	// Clock times the certificate poll; nil is the wall clock.
	Clock clock.Clock
	// Listening, if set, is called with the bound addresses before serving starts.
	Listening func(mutate, metrics net.Addr)
	// CertReloaded, if set, is called after each load that changed the certificate.
	CertReloaded func()
}

// Run serves the webhook until ctx is done: the ServiceAccount cache, the HTTPS /mutate
// listener with the reloading certificate, and the metrics and probe listener, whose /readyz
// answers 200 once the cache has synced.
func Run(ctx context.Context, cfg Config, opts Options) error {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := opts.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	cert := &certificate{certFile: cfg.TLSCertFile, keyFile: cfg.TLSKeyFile, log: log, reloaded: opts.CertReloaded}
	if err := cert.load(); err != nil {
		return fmt.Errorf("start webhook: %w", err)
	}
	client := opts.Client
	if client == nil {
		var err error
		if client, err = newClient(cfg.Kubeconfig); err != nil {
			return fmt.Errorf("start webhook: %w", err)
		}
	}
	accounts := NewAccounts(client, 10*time.Minute)
	handler := NewHandler(accounts, cfg.Defaults, log, reg)

	mutateLn, err := server.Listen(ctx, cfg.Listen)
	if err != nil {
		return fmt.Errorf("start webhook: %w", err)
	}
	metricsLn, err := server.Listen(ctx, cfg.MetricsListen)
	if err != nil {
		mutateLn.Close()
		return fmt.Errorf("start webhook: metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST "+MutatePath, handler)
	mutateSrv := server.NewHTTPServer(mux, log)
	mutateSrv.TLSConfig = &tls.Config{GetCertificate: cert.get, MinVersion: tls.VersionTLS12}
	var synced atomic.Bool
	metricsSrv := server.NewHTTPServer(server.NewProbes(synced.Load, reg, server.WithLogger(log)), log)
	if opts.Listening != nil {
		opts.Listening(mutateLn.Addr(), metricsLn.Addr())
	}
	log.Info("credsidecar webhook starting", "listen", mutateLn.Addr().String(), "metrics_addr", metricsLn.Addr().String(),
		"sidecar_image", cfg.Defaults.Image, "default_audience", cfg.Defaults.Audience, "default_region", cfg.Defaults.Region)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer accounts.Shutdown()
		if err := accounts.Run(gctx); err != nil {
			if gctx.Err() != nil {
				return nil
			}
			return err
		}
		synced.Store(true)
		log.Info("serviceaccount cache synced")
		<-gctx.Done()
		return nil
	})
	g.Go(func() error { cert.watch(gctx, cfg.CertPollInterval, opts.Clock); return nil })
	g.Go(func() error {
		return server.ServeTLS(gctx, mutateSrv, mutateLn, cfg.ShutdownTimeout)
	})
	g.Go(func() error { return server.Serve(gctx, metricsSrv, metricsLn, cfg.ShutdownTimeout) })
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("run webhook: %w", err)
	}
	log.Info("credsidecar webhook stopped")
	return nil
}

// newClient builds the API client: from kubeconfig when given, else in-cluster.
func newClient(kubeconfig string) (kubernetes.Interface, error) {
	var cfg *rest.Config
	var err error
	if kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	} else {
		cfg, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	cfg.UserAgent = "credsidecar-webhook"
	return kubernetes.NewForConfig(cfg)
}
