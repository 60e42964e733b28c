package webhook

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/credsidecar/credsidecar/internal/config"
	"github.com/credsidecar/credsidecar/internal/creds"
	"github.com/credsidecar/credsidecar/internal/server"
)

// Flags are the webhook command's settings, bound to c: the sidecar's flag/variable mechanism
// (config.Binder), with the defaults of DefaultConfig.
func Flags(c *Config, logFormat *string, logLevel *slog.Level) []config.Setting {
	d := DefaultConfig()
	str := func(p *string) func(string) error { return func(v string) error { *p = v; return nil } }
	addr := func(p *string) func(string) error {
		return func(v string) error {
			if _, _, err := server.SplitAddr(v); err != nil {
				return err
			}
			*p = v
			return nil
		}
	}
	quantity := func(p *resource.Quantity) func(string) error {
		return func(v string) error {
			q, err := resource.ParseQuantity(v)
			if err != nil || q.Sign() <= 0 {
				return errors.New("must be a positive quantity such as 10m or 32Mi")
			}
			*p = q
			return nil
		}
	}
	return []config.Setting{
		{Flag: "listen", Envs: []string{"CREDSIDECAR_WEBHOOK_LISTEN"}, Kind: "address", Default: d.Listen,
			Usage: "HTTPS address of POST /mutate", Set: addr(&c.Listen)},
		{Flag: "tls-cert-file", Envs: []string{"CREDSIDECAR_WEBHOOK_TLS_CERT_FILE"}, Kind: "path", DefaultHelp: "required",
			Usage: "serving certificate (PEM), re-read when it changes", Set: str(&c.TLSCertFile)},
		{Flag: "tls-key-file", Envs: []string{"CREDSIDECAR_WEBHOOK_TLS_KEY_FILE"}, Kind: "path", DefaultHelp: "required",
			Usage: "serving certificate's key (PEM), re-read when it changes", Set: str(&c.TLSKeyFile)},
		{Flag: "kubeconfig", Envs: []string{"KUBECONFIG"}, Kind: "path", DefaultHelp: "in-cluster",
			Usage: "kubeconfig of the API server to read ServiceAccounts from", Set: str(&c.Kubeconfig)},
		{Flag: "metrics-listen", Envs: []string{"CREDSIDECAR_WEBHOOK_METRICS_LISTEN"}, Kind: "address", Default: d.MetricsListen,
			Usage: "address of /metrics, /healthz and /readyz", Set: addr(&c.MetricsListen)},
		{Flag: "sidecar-image", Envs: []string{"CREDSIDECAR_WEBHOOK_SIDECAR_IMAGE"}, Kind: "image", DefaultHelp: "required",
			Usage: "the sidecar's image", Set: str(&c.Defaults.Image)},
		{Flag: "default-audience", Envs: []string{"CREDSIDECAR_WEBHOOK_DEFAULT_AUDIENCE"}, Kind: "url", DefaultHelp: "none",
			Usage: "projected token audience for ServiceAccounts without credsidecar.io/audience: the issuer URL with its trailing slash",
			Set:   str(&c.Defaults.Audience)},
		{Flag: "default-region", Envs: []string{"CREDSIDECAR_WEBHOOK_DEFAULT_REGION"}, Kind: "region", DefaultHelp: "none",
			Usage: "STS region for ServiceAccounts without credsidecar.io/region",
			Set: func(v string) error {
				if !creds.ValidRegion(v) {
					return errors.New("not a region name such as eu-west-1")
				}
				c.Defaults.Region = v
				return nil
			}},
		{Flag: "default-token-expiration", Envs: []string{"CREDSIDECAR_WEBHOOK_DEFAULT_TOKEN_EXPIRATION"}, Kind: "duration",
			Default: d.Defaults.TokenExpiration.String(), Usage: "projected token lifetime, 10m to 48h",
			Set: func(v string) error {
				t, err := time.ParseDuration(v)
				if err != nil || t < MinTokenExpiration || t > MaxTokenExpiration {
					return fmt.Errorf("must be a duration from %v to %v", MinTokenExpiration, MaxTokenExpiration)
				}
				c.Defaults.TokenExpiration = t
				return nil
			}},
		{Flag: "sidecar-cpu-request", Envs: []string{"CREDSIDECAR_WEBHOOK_SIDECAR_CPU_REQUEST"}, Kind: "quantity",
			Default: d.Defaults.CPURequest.String(), Usage: "the sidecar's CPU request", Set: quantity(&c.Defaults.CPURequest)},
		{Flag: "sidecar-memory-request", Envs: []string{"CREDSIDECAR_WEBHOOK_SIDECAR_MEMORY_REQUEST"}, Kind: "quantity",
			Default: d.Defaults.MemoryRequest.String(), Usage: "the sidecar's memory request", Set: quantity(&c.Defaults.MemoryRequest)},
		{Flag: "sidecar-memory-limit", Envs: []string{"CREDSIDECAR_WEBHOOK_SIDECAR_MEMORY_LIMIT"}, Kind: "quantity",
			Default: d.Defaults.MemoryLimit.String(), Usage: "the sidecar's memory limit", Set: quantity(&c.Defaults.MemoryLimit)},
		{Flag: "log-format", Envs: []string{"CREDSIDECAR_WEBHOOK_LOG_FORMAT"}, Kind: "json|text", Default: "json",
			Usage: "log format", Set: func(v string) error {
				if v != "json" && v != "text" {
					return errors.New("must be json or text")
				}
				*logFormat = v
				return nil
			}},
		{Flag: "log-level", Envs: []string{"CREDSIDECAR_WEBHOOK_LOG_LEVEL"}, Kind: "level", Default: "info",
			Usage: "least severe level logged: debug, info, warn or error", Set: func(v string) error {
				if err := logLevel.UnmarshalText([]byte(v)); err != nil {
					return errors.New("must be debug, info, warn or error")
				}
				return nil
			}},
	}
}

// Validate checks what the flags alone cannot: the required settings and their combinations.
// Each problem names the flag.
func (c Config) Validate() error {
	var errs []string
	if c.TLSCertFile == "" || c.TLSKeyFile == "" {
		errs = append(errs, "--tls-cert-file and --tls-key-file are required: the API server calls webhooks over https only")
	}
	if c.Defaults.Image == "" {
		errs = append(errs, "--sidecar-image is required: the image the injected sidecar runs")
	}
	if a := c.Defaults.Audience; a != "" {
		if u, err := url.Parse(a); err != nil || u.Host == "" || strings.ContainsAny(a, " ,") {
			errs = append(errs, fmt.Sprintf("--default-audience %q: want one URL, the issuer with its trailing slash", a))
		}
	}
	if c.Defaults.MemoryLimit.Cmp(c.Defaults.MemoryRequest) < 0 {
		errs = append(errs, fmt.Sprintf("--sidecar-memory-limit %s is below --sidecar-memory-request %s",
			c.Defaults.MemoryLimit.String(), c.Defaults.MemoryRequest.String()))
	}
	if len(errs) > 0 {
		return errors.New("invalid configuration: " + strings.Join(errs, "; "))
	}
	return nil
}
