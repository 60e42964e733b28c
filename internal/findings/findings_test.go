package diagnose

import (
	"strings"
	"testing"
	"time"

	"github.com/credsidecar/credsidecar/internal/creds"
)

const (
	testIssuer = "https://eastus.oic.prod-aks.azure.com/8c2f1a3e/5d6e7f80/"
	testRole   = "arn:aws:iam::111122223333:role/AKS-S3-Access-Role"
)

var testNow = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// claimsAt returns AKS-shaped claims issued age before testNow with the given lifetime.
func claimsAt(age, lifetime time.Duration, aud ...string) *creds.TokenClaims {
	if aud == nil {
		aud = []string{testIssuer}
	}
	iat := testNow.Add(-age)
	return &creds.TokenClaims{
		Issuer:         testIssuer,
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

// want is one expected finding: its id and severity, and text its fix must contain.
type want struct {
	id       string
	severity Severity
	fixHas   []string
	whatHas  []string
}

func checkFindings(t *testing.T, got []Finding, wants []want) {
	t.Helper()
	if len(got) != len(wants) {
		t.Fatalf("got %d findings, want %d:\n%s", len(got), len(wants), renderFindings(got))
	}
	for i, w := range wants {
		f := got[i]
		if f.ID != w.id || f.Severity != w.severity {
			t.Errorf("finding %d = %s/%s, want %s/%s", i, f.ID, f.Severity, w.id, w.severity)
		}
		for _, s := range w.fixHas {
			if !strings.Contains(f.Fix, s) {
				t.Errorf("finding %s: fix %q lacks %q", f.ID, f.Fix, s)
			}
		}
		for _, s := range w.whatHas {
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

func renderFindings(fs []Finding) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString(f.String() + "\n")
	}
	return b.String()
}

func TestTokenWarnings(t *testing.T) {
	noSlash := strings.TrimSuffix(testIssuer, "/")
	tests := []struct {
		name   string
		claims *creds.TokenClaims
		want   []want
	}{
		{name: "healthy AKS token", claims: claimsAt(10*time.Minute, time.Hour)},
		{name: "nil claims", claims: nil},
		{
			name:   "default token with the API server's audiences",
			claims: claimsAt(time.Minute, time.Hour, "https://kubernetes.default.svc.cluster.local", `"aks-dns.hcp.eastus.azmk8s.io"`),
			want: []want{{id: IDTokenMultipleAudiences, severity: SeverityWarning,
				fixHas:  []string{"audience: " + testIssuer},
				whatHas: []string{"2 audiences", "kubernetes.default.svc"}}},
		},
		{
			name:   "no audience",
			claims: claimsAt(time.Minute, time.Hour, []string{}...),
			want:   []want{{id: IDTokenNoAudience, severity: SeverityWarning, fixHas: []string{"audience: " + testIssuer}}},
		},
		{
			name:   "audience without the issuer's trailing slash",
			claims: claimsAt(time.Minute, time.Hour, noSlash),
			want: []want{{id: IDAudienceTrailingSlash, severity: SeverityWarning,
				fixHas: []string{"audience: " + testIssuer, "exactly " + noSlash}}},
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
			want: []want{{id: IDTokenExpired, severity: SeverityError,
				fixHas: []string{"projected", "audience: \"" + testIssuer + "\"", "expirationSeconds: 3600"}, whatHas: []string{"1h0m0s ago"}}},
		},
		{name: "past 80% but within the kubelet's grace", claims: claimsAt(49*time.Minute, time.Hour)},
		{
			name:   "past 80% and the grace: rotation not happening",
			claims: claimsAt(51*time.Minute, time.Hour),
			want:   []want{{id: IDTokenExpiring, severity: SeverityWarning, fixHas: []string{"projected volume"}, whatHas: []string{"in 9m0s", "85% of its 1h0m0s"}}},
		},
		{name: "short-lived token half used", claims: claimsAt(5*time.Minute, 10*time.Minute)},
		{
			name:   "short-lived token nearly used up",
			claims: claimsAt(9*time.Minute+50*time.Second, 10*time.Minute),
			want:   []want{{id: IDTokenExpiring, severity: SeverityWarning}},
		},
		{
			name: "no iat and 5 minutes left",
			claims: func() *creds.TokenClaims {
				c := claimsAt(0, 5*time.Minute)
				c.IssuedAt = time.Time{}
				return c
			}(),
			want: []want{{id: IDTokenExpiring, severity: SeverityWarning}},
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
			want: []want{{id: IDTokenMalformed, severity: SeverityError, whatHas: []string{"no exp"}}},
		},
		{
			name: "plain http issuer off loopback",
			claims: func() *creds.TokenClaims {
				c := claimsAt(time.Minute, time.Hour, "http://oidc.example.com/c/")
				c.Issuer = "http://oidc.example.com/c/"
				return c
			}(),
			want: []want{{id: IDIssuerNotHTTPS, severity: SeverityWarning, whatHas: []string{"http://oidc.example.com/c/"}}},
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
			want: []want{
				{id: IDTokenMultipleAudiences, severity: SeverityWarning},
				{id: IDAudienceTrailingSlash, severity: SeverityWarning},
				{id: IDTokenExpired, severity: SeverityError},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkFindings(t, TokenWarnings(tt.claims, testNow), tt.want)
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
			ns, sa := serviceAccountOf(&tt.claims)
			if ns != tt.wantNS || sa != tt.wantSA {
				t.Errorf("got %q/%q, want %q/%q", ns, sa, tt.wantNS, tt.wantSA)
			}
		})
	}
}
