// Package claimstest holds what the findings and diagnose tests share: an AKS-shaped issuer,
// the test bed's role, a fixed now, claims of any age and lifetime, and the check of a list of
// findings.
package claimstest

import (
	"strings"
	"testing"
	"time"

	"github.com/credsidecar/credsidecar/internal/creds"
	"github.com/credsidecar/credsidecar/internal/findings"
)

const (
	// Issuer is an AKS-shaped OIDC issuer URL, trailing slash included.
	Issuer = "https://eastus.oic.prod-aks.azure.com/8c2f1a3e/5d6e7f80/"
	// Role is the test bed's role ARN.
	Role = "arn:aws:iam::111122223333:role/AKS-S3-Access-Role"
)

// Now is the fixed instant the tests judge expiry against.
var Now = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// At returns AKS-shaped claims issued age before Now with the given lifetime, for aud (the
// issuer when none).
func At(age, lifetime time.Duration, aud ...string) *creds.TokenClaims {
	if aud == nil {
		aud = []string{Issuer}
	}
	iat := Now.Add(-age)
	return &creds.TokenClaims{
		Issuer:         Issuer,
		Subject:        "system:serviceaccount:default:workload-sa",
		Audience:       aud,
		IssuedAt:       iat,
		NotBefore:      iat,
		Expiry:         iat.Add(lifetime),
		Namespace:      "default",
		ServiceAccount: "workload-sa",
		PodName:        "app-7d9c-x2x",
	}
}

// Want is one expected finding: its id and severity, and text its fix must contain.
type Want struct {
	ID       string
	Severity findings.Severity
	FixHas   []string
	WhatHas  []string
}

// Check fails t unless got are the wanted findings, in order, each complete and on one line.
func Check(t *testing.T, got []findings.Finding, wants []Want) {
	t.Helper()
	if len(got) != len(wants) {
		t.Fatalf("got %d findings, want %d:\n%s", len(got), len(wants), Render(got))
	}
	for i, w := range wants {
		f := got[i]
		if f.ID != w.ID || f.Severity != w.Severity {
			t.Errorf("finding %d = %s/%s, want %s/%s", i, f.ID, f.Severity, w.ID, w.Severity)
		}
		for _, s := range w.FixHas {
			if !strings.Contains(f.Fix, s) {
				t.Errorf("finding %s: fix %q lacks %q", f.ID, f.Fix, s)
			}
		}
		for _, s := range w.WhatHas {
			if !strings.Contains(f.What, s) {
				t.Errorf("finding %s: what %q lacks %q", f.ID, f.What, s)
			}
		}
		if f.What == "" || f.Why == "" || f.Fix == "" {
			t.Errorf("finding %s has an empty part: %+v", f.ID, f)
		}
		if strings.Contains(f.String(), "\n") {
			t.Errorf("finding %s is not one line: %q", f.ID, f.String())
		}
	}
}

// Render is the findings one per line, for failure messages.
func Render(fs []findings.Finding) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString(f.String() + "\n")
	}
	return b.String()
}
