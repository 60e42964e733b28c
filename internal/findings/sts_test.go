package findings_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/credsidecar/credsidecar/internal/creds"
	"github.com/credsidecar/credsidecar/internal/findings"
)

func TestExplainSTSNamesTheTokenClaims(t *testing.T) {
	claims := &creds.TokenClaims{Issuer: "https://oidc.example.test/c1", Subject: "system:serviceaccount:ns:sa", Audience: []string{"a", "b"}}
	tests := []struct {
		name string
		code string
		want []string
	}{
		{name: "AccessDenied names the trust policy keys", code: "AccessDenied",
			want: []string{"trust policy", "oidc.example.test/c1:sub", "oidc.example.test/c1:aud", "system:serviceaccount:ns:sa"}},
		{name: "InvalidIdentityToken names issuer and audience count", code: "InvalidIdentityToken",
			want: []string{"https://oidc.example.test/c1", "registered", "has 2 audiences"}},
		{name: "InvalidParameterValue names the audiences", code: "InvalidParameterValue", want: []string{`["a" "b"]`, "has 2 audiences"}},
		{name: "IDPCommunicationError names JWKS", code: "IDPCommunicationError", want: []string{"JWKS", "https://oidc.example.test/c1"}},
		{name: "throttling needs no hint", code: "Throttling", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, got := findings.ExplainSTS(errors.New(tt.code), tt.code, claims)
			if id != findings.STSID(tt.code) {
				t.Errorf("id %q, want %q", id, findings.STSID(tt.code))
			}
			if tt.want == nil && got != "" {
				t.Errorf("findings.ExplainSTS(%s) = %q, want none", tt.code, got)
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("findings.ExplainSTS(%s) = %q, want it to mention %q", tt.code, got, w)
				}
			}
		})
	}
}

func TestSTSID(t *testing.T) {
	for code, want := range map[string]string{"AccessDenied": findings.IDSTSAccessDenied, "InvalidParameterValue": findings.IDSTSInvalidToken,
		"InvalidIdentityToken": findings.IDSTSInvalidToken, "IDPCommunicationError": findings.IDSTSIDPUnreachable, "Nope": findings.IDSTSError} {
		if got := findings.STSID(code); got != want {
			t.Errorf("findings.STSID(%s) = %q, want %q", code, got, want)
		}
	}
}

// TestExplainSTSChainedHop: a chained hop's failure is explained in terms of that role's trust
// policy and the previous role's permissions, not the web-identity token.
func TestExplainSTSChainedHop(t *testing.T) {
	const from, to = "arn:aws:iam::123456789012:role/app", "arn:aws:iam::210987654321:role/shared-data"
	err := &creds.ChainError{Hop: 2, RoleARN: to, FromRoleARN: from, Err: errors.New("AccessDenied")}
	id, cause := findings.ExplainSTS(err, "AccessDenied", nil)
	if id != findings.IDSTSAccessDenied {
		t.Errorf("id %q, want %q", id, findings.IDSTSAccessDenied)
	}
	for _, w := range []string{"the trust policy of the chained role " + to, `{"AWS": "` + from + `"}`, "sts:AssumeRole on " + to} {
		if !strings.Contains(cause, w) {
			t.Errorf("cause %q lacks %q", cause, w)
		}
	}
	if _, cause := findings.ExplainSTS(err, "Throttling", nil); cause != "" {
		t.Errorf("a throttled hop has cause %q, want none: retrying is the fix", cause)
	}
}
