package findings_test

import (
	"strings"
	"testing"
	"time"

	"github.com/credsidecar/credsidecar/internal/creds"
	"github.com/credsidecar/credsidecar/internal/findings"
	"github.com/credsidecar/credsidecar/internal/testkit/claimstest"
)

const (
	testIssuer = claimstest.Issuer
	testRole   = claimstest.Role
)

var (
	testNow  = claimstest.Now
	claimsAt = claimstest.At
)

func TestTokenWarnings(t *testing.T) {
	noSlash := strings.TrimSuffix(testIssuer, "/")
	tests := []struct {
		name   string
		claims *creds.TokenClaims
		want   []claimstest.Want
	}{
		{name: "healthy AKS token", claims: claimsAt(10*time.Minute, time.Hour)},
		{name: "nil claims", claims: nil},
		{
			name:   "default token with the API server's audiences",
			claims: claimsAt(time.Minute, time.Hour, "https://kubernetes.default.svc.cluster.local", `"aks-dns.hcp.eastus.azmk8s.io"`),
			want: []claimstest.Want{{ID: findings.IDTokenMultipleAudiences, Severity: findings.SeverityWarning,
				FixHas:  []string{"audience: " + testIssuer},
				WhatHas: []string{"2 audiences", "kubernetes.default.svc"}}},
		},
		{
			name:   "no audience",
			claims: claimsAt(time.Minute, time.Hour, []string{}...),
			want:   []claimstest.Want{{ID: findings.IDTokenNoAudience, Severity: findings.SeverityWarning, FixHas: []string{"audience: " + testIssuer}}},
		},
		{
			name:   "audience without the issuer's trailing slash",
			claims: claimsAt(time.Minute, time.Hour, noSlash),
			want: []claimstest.Want{{ID: findings.IDAudienceTrailingSlash, Severity: findings.SeverityWarning,
				FixHas: []string{"audience: " + testIssuer, "exactly " + noSlash}}},
		},
		{
			name: "issuer without slash, audience with one: the AKS convention",
			claims: func() *creds.TokenClaims {
				c := claimsAt(time.Minute, time.Hour, testIssuer)
				c.Issuer = noSlash
				return c
			}(),
		},
		{
			name:   "expired",
			claims: claimsAt(2*time.Hour, time.Hour),
			want: []claimstest.Want{{ID: findings.IDTokenExpired, Severity: findings.SeverityError,
				FixHas: []string{"projected", "audience: \"" + testIssuer + "\"", "expirationSeconds: 3600"}, WhatHas: []string{"1h0m0s ago"}}},
		},
		{name: "past 80% but within the kubelet's grace", claims: claimsAt(49*time.Minute, time.Hour)},
		{
			name:   "past 80% and the grace: rotation not happening",
			claims: claimsAt(51*time.Minute, time.Hour),
			want:   []claimstest.Want{{ID: findings.IDTokenExpiring, Severity: findings.SeverityWarning, FixHas: []string{"projected volume"}, WhatHas: []string{"in 9m0s", "85% of its 1h0m0s"}}},
		},
		{name: "short-lived token half used", claims: claimsAt(5*time.Minute, 10*time.Minute)},
		{
			name:   "short-lived token nearly used up",
			claims: claimsAt(9*time.Minute+50*time.Second, 10*time.Minute),
			want:   []claimstest.Want{{ID: findings.IDTokenExpiring, Severity: findings.SeverityWarning}},
		},
		{
			name: "no iat and 5 minutes left",
			claims: func() *creds.TokenClaims {
				c := claimsAt(0, 5*time.Minute)
				c.IssuedAt = time.Time{}
				return c
			}(),
			want: []claimstest.Want{{ID: findings.IDTokenExpiring, Severity: findings.SeverityWarning}},
		},
		{
			name: "no iat and 30 minutes left",
			claims: func() *creds.TokenClaims {
				c := claimsAt(0, 30*time.Minute)
				c.IssuedAt = time.Time{}
				return c
			}(),
		},
		{
			name: "no exp",
			claims: func() *creds.TokenClaims {
				c := claimsAt(time.Minute, time.Hour)
				c.Expiry = time.Time{}
				return c
			}(),
			want: []claimstest.Want{{ID: findings.IDTokenMalformed, Severity: findings.SeverityError, WhatHas: []string{"no exp"}}},
		},
		{
			name: "plain http issuer off loopback",
			claims: func() *creds.TokenClaims {
				c := claimsAt(time.Minute, time.Hour, "http://oidc.example.com/c/")
				c.Issuer = "http://oidc.example.com/c/"
				return c
			}(),
			want: []claimstest.Want{{ID: findings.IDIssuerNotHTTPS, Severity: findings.SeverityWarning, WhatHas: []string{"http://oidc.example.com/c/"}}},
		},
		{
			name: "plain http issuer on loopback (the test bed)",
			claims: func() *creds.TokenClaims {
				c := claimsAt(time.Minute, time.Hour, "http://127.0.0.1:4000/c/")
				c.Issuer = "http://127.0.0.1:4000/c/"
				return c
			}(),
		},
		{
			name: "several problems at once, in a stable order",
			claims: func() *creds.TokenClaims {
				return claimsAt(3*time.Hour, time.Hour, noSlash, "https://kubernetes.default.svc.cluster.local")
			}(),
			want: []claimstest.Want{
				{ID: findings.IDTokenMultipleAudiences, Severity: findings.SeverityWarning},
				{ID: findings.IDAudienceTrailingSlash, Severity: findings.SeverityWarning},
				{ID: findings.IDTokenExpired, Severity: findings.SeverityError},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			claimstest.Check(t, findings.TokenWarnings(tt.claims, testNow), tt.want)
		})
	}
}

func TestServiceAccountOf(t *testing.T) {
	tests := []struct {
		name           string
		claims         creds.TokenClaims
		wantNS, wantSA string
	}{
		{"from kubernetes.io", creds.TokenClaims{Namespace: "a", ServiceAccount: "b", Subject: "system:serviceaccount:x:y"}, "a", "b"},
		{"from sub", creds.TokenClaims{Subject: "system:serviceaccount:payments:uploader"}, "payments", "uploader"},
		{"neither", creds.TokenClaims{Subject: "user@example.com"}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns, sa := findings.ServiceAccountOf(&tt.claims)
			if ns != tt.wantNS || sa != tt.wantSA {
				t.Errorf("got %q/%q, want %q/%q", ns, sa, tt.wantNS, tt.wantSA)
			}
		})
	}
}
