package demo

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestRun runs `make demo`'s flow for real: built binaries, SeaweedFS, the issuer and projector.
func TestRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds both binaries and starts SeaweedFS")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	res, err := Run(ctx, Options{Out: &out, BinDir: t.TempDir(), Build: true})
	if err != nil {
		t.Fatalf("Run: %v\noutput:\n%s", err, out.String())
	}
	if !strings.HasPrefix(res.Key, "uploads/aks-oidc-test-") || !strings.HasSuffix(res.Key, ".txt") {
		t.Errorf("key = %q, want the seed's uploads/aks-oidc-test-<timestamp>.txt", res.Key)
	}
	if len(res.Object) == 0 {
		t.Error("the object read back is empty")
	}
	log := out.String()
	for _, want := range []string{
		"sidecar  | ",                        // the sidecar's log is streamed
		"uploader | ",                        // and the uploader's
		"s3://" + res.Bucket + "/" + res.Key, // the read-back is shown
	} {
		if !strings.Contains(log, want) {
			t.Errorf("demo output lacks %q\n%s", want, log)
		}
	}
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "SecretAccessKey") || strings.Contains(line, "aws_secret_access_key") {
			t.Errorf("demo output shows a secret: %s", line)
		}
	}
}

// TestRunFail runs `make demo-fail`: every classic mistake must be diagnosed with its finding.
func TestRunFail(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the sidecar and starts SeaweedFS")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := RunFail(ctx, Options{Out: &out, BinDir: t.TempDir(), Build: true}); err != nil {
		t.Fatalf("RunFail: %v\noutput:\n%s", err, out.String())
	}
	for _, c := range failCases() {
		if want := "diagnosed as " + c.want; !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
}
