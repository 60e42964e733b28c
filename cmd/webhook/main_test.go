package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	required := []string{"--tls-cert-file=/tls/tls.crt", "--tls-key-file=/tls/tls.key", "--sidecar-image=ghcr.io/credsidecar/credsidecar:0.2.0"}
	tests := []struct {
		name     string
		args     []string
		getenv   func(string) string
		wantCode int
		wantOut  []string // on stdout
		wantErr  []string // on stderr
	}{
		{name: "help lists every flag with its variable", args: []string{"--help"}, getenv: env(), wantCode: 0,
			wantOut: []string{"--listen address", "$CREDSIDECAR_WEBHOOK_LISTEN", "(default :9443)", "--metrics-listen", "(default :9913)",
				"--default-token-expiration", "(default 1h0m0s)", "--sidecar-memory-limit", "(default 64Mi)", "$KUBECONFIG"}},
		{name: "version", args: []string{"--version"}, getenv: env(), wantCode: 0, wantOut: []string{"webhook dev"}},
		{name: "nothing given names what is required", getenv: env(), wantCode: 2,
			wantErr: []string{"--tls-cert-file and --tls-key-file are required", "--sidecar-image is required"}},
		{name: "a bad region from its variable", args: required, wantCode: 2,
			getenv:  env("CREDSIDECAR_WEBHOOK_DEFAULT_REGION", "EU_WEST"),
			wantErr: []string{`--default-region (CREDSIDECAR_WEBHOOK_DEFAULT_REGION) = "EU_WEST": not a region name`}},
		{name: "token expiration below the API server's minimum", args: append(required, "--default-token-expiration=5m"),
			getenv: env(), wantCode: 2, wantErr: []string{`--default-token-expiration (CREDSIDECAR_WEBHOOK_DEFAULT_TOKEN_EXPIRATION) = "5m"`}},
		{name: "limit below request", args: append(required, "--sidecar-memory-limit=16Mi"), getenv: env(), wantCode: 2,
			wantErr: []string{"--sidecar-memory-limit 16Mi is below --sidecar-memory-request 32Mi"}},
		{name: "a positional argument", args: []string{"serve"}, getenv: env(), wantCode: 2, wantErr: []string{`unexpected argument "serve"`}},
		{name: "missing certificate files fail the start", args: append(required, "--listen=127.0.0.1:0", "--metrics-listen=127.0.0.1:0"),
			getenv: env(), wantCode: 1, wantErr: []string{"load tls certificate /tls/tls.crt and key /tls/tls.key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, tt.getenv, &stdout, &stderr)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tt.wantCode, stderr.String())
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout.String())
				}
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
		})
	}
}

// TestChartFlagsExist: every flag the Helm chart's Deployment passes is one the webhook takes.
func TestChartFlagsExist(t *testing.T) {
	tmpl, err := os.ReadFile(filepath.Join("..", "..", "charts", "credsidecar", "templates", "deployment.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var help bytes.Buffer
	run(context.Background(), []string{"--help"}, func(string) string { return "" }, &help, &bytes.Buffer{})
	flags := regexp.MustCompile(`--([a-z][a-z-]+)=`).FindAllStringSubmatch(string(tmpl), -1)
	if len(flags) < 10 {
		t.Fatalf("found %d flags in the chart's Deployment, want its whole command line", len(flags))
	}
	for _, f := range flags {
		if !strings.Contains(help.String(), "  --"+f[1]+" ") {
			t.Errorf("the chart passes --%s, which the webhook does not take", f[1])
		}
	}
}
