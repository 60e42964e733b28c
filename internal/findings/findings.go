// Package findings owns the explanations of what stops credentials from working: each problem
// with the token, the trust setup or STS is a Finding with a stable id, what is wrong, why it
// matters and the exact fix. `sidecar check` reports them (package diagnose adds the evidence it
// gathers: STS's answer, the trust-policy lines, the S3 probe), and the serving sidecar logs the
// same ids and fixes when a token or an STS answer shows the problem. It imports no AWS service
// client and no policy generator, so the serve path stays small.
package findings

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/credsidecar/credsidecar/internal/creds"
)

// Severity says whether a finding stops credentials from working.
type Severity string

const (
	// SeverityError is a problem that stops, or will shortly stop, credentials from being issued
	// or used; any error makes check exit 1.
	SeverityError Severity = "error"
	// SeverityWarning is a problem that works here but is fragile or breaks against AWS.
	SeverityWarning Severity = "warning"
)

// Finding identifiers. They are stable: scripts match on them.
const (
	// IDTokenMissing: the token file does not exist.
	IDTokenMissing = "token-missing"
	// IDTokenUnreadable: the token file exists but cannot be read.
	IDTokenUnreadable = "token-unreadable"
	// IDTokenMalformed: the file is not a JWT STS could accept.
	IDTokenMalformed = "token-malformed"
	// IDTokenNoAudience: the token carries no aud claim.
	IDTokenNoAudience = "token-no-audience"
	// IDTokenMultipleAudiences: the token carries several audiences (projected without `audience:`).
	IDTokenMultipleAudiences = "token-multiple-audiences"
	// IDAudienceTrailingSlash: an audience is the issuer URL without its trailing slash.
	IDAudienceTrailingSlash = "audience-trailing-slash"
	// IDIssuerNotHTTPS: the issuer is plain http on a non-loopback host, which IAM refuses.
	IDIssuerNotHTTPS = "issuer-not-https"
	// IDIssuerUnreachable: the issuer's discovery document or JWKS cannot be fetched anonymously,
	// as STS fetches them.
	IDIssuerUnreachable = "issuer-unreachable"
	// IDIssuerMismatch: the discovery document names another issuer than the token's iss.
	IDIssuerMismatch = "issuer-mismatch"
	// IDIssuerKeyMissing: the token's kid is not in the issuer's published JWKS.
	IDIssuerKeyMissing = "issuer-key-missing"
	// IDTokenExpired: the token's exp has passed.
	IDTokenExpired = "token-expired"
	// IDTokenExpiring: the token is past its rotation point or close to expiry.
	IDTokenExpiring = "token-expiring"
	// IDSTSInvalidToken: STS refused the token (InvalidIdentityToken, InvalidParameterValue, IDPRejectedClaim).
	IDSTSInvalidToken = "sts-invalid-token"
	// IDSTSExpiredToken: STS refused the token as expired.
	IDSTSExpiredToken = "sts-expired-token"
	// IDSTSAccessDenied: STS refused AssumeRoleWithWebIdentity under the role's trust policy.
	IDSTSAccessDenied = "sts-access-denied"
	// IDSTSIDPUnreachable: STS could not fetch the issuer's discovery document or keys.
	IDSTSIDPUnreachable = "sts-idp-unreachable"
	// IDSTSRegionDisabled: STS is not activated in the region.
	IDSTSRegionDisabled = "sts-region-disabled"
	// IDSTSRequestInvalid: STS refused a request parameter (duration, session policy).
	IDSTSRequestInvalid = "sts-request-invalid"
	// IDSTSUnavailable: STS throttled or failed on its side.
	IDSTSUnavailable = "sts-unavailable"
	// IDSTSUnreachable: no answer from STS (connection, DNS, TLS, timeout).
	IDSTSUnreachable = "sts-unreachable"
	// IDSTSError: any other STS failure.
	IDSTSError = "sts-error"
	// IDCallerIdentityFailed: the issued credentials failed GetCallerIdentity.
	IDCallerIdentityFailed = "sts-caller-identity-failed"
	// IDS3AccessDenied: the role's credentials were refused an S3 action on the probed bucket.
	IDS3AccessDenied = "s3-access-denied"
	// IDS3NoSuchBucket: the probed bucket does not exist.
	IDS3NoSuchBucket = "s3-no-such-bucket"
	// IDS3Unreachable: no answer from S3.
	IDS3Unreachable = "s3-unreachable"
	// IDS3Error: any other S3 failure.
	IDS3Error = "s3-error"
)

// Finding is one problem: what is wrong, why it matters, and the exact fix.
type Finding struct {
	ID       string   `json:"id"`
	Severity Severity `json:"severity"`
	What     string   `json:"what"`
	Why      string   `json:"why"`
	Fix      string   `json:"fix"`
}

// String renders the finding as one line; control characters from outside (a claim with a
// newline or an escape sequence) are escaped, so they cannot forge a line or rewrite the screen.
func (f Finding) String() string {
	return Printable(fmt.Sprintf("%-7s %s: %s. Why: %s. Fix: %s", f.Severity, f.ID, f.What, f.Why, f.Fix))
}

// Thresholds for token-expiring.
const (
	// rotationPoint is the share of its lifetime after which the kubelet replaces a projected token.
	rotationPoint = 0.8
	// rotationGrace allows for the kubelet's sync period before a missed rotation is reported
	// (at most a tenth of the token's lifetime).
	rotationGrace = 2 * time.Minute
	// expiringSoon applies when the lifetime is unknown (no iat).
	expiringSoon = 10 * time.Minute
)

// ProjectedVolumeFix is the manifest snippet that makes the kubelet write and rotate the token.
func ProjectedVolumeFix(audience string) string {
	return fmt.Sprintf("mount the token from a projected volume, `projected: {sources: [{serviceAccountToken: "+
		"{audience: %q, expirationSeconds: 3600, path: token}}]}`, and point AWS_WEB_IDENTITY_TOKEN_FILE at "+
		"<mountPath>/token; the kubelet then rotates it", audience)
}

// TokenWarnings are the problems visible in the token's claims alone: audiences (none, several,
// or the issuer without its trailing slash), an issuer IAM cannot register, and expiry (expired,
// or past the point where the kubelet should have replaced it). check uses them as they are,
// raising the audience findings to errors when STS refuses the token; serve should log each
// once per token as a warning (its Severity says how bad it is).
func TokenWarnings(claims *creds.TokenClaims, now time.Time) []Finding {
	if claims == nil {
		return nil
	}
	var out []Finding
	want := WantAudience(claims)
	switch n := len(claims.Audience); {
	case n == 0:
		out = append(out, Finding{
			ID:       IDTokenNoAudience,
			Severity: SeverityWarning,
			What:     "the token has no aud claim",
			Why:      "STS admits a token only when its audience is a client id of the issuer's IAM OIDC provider",
			Fix:      fmt.Sprintf("set `audience: %s` on the projected volume's serviceAccountToken source", want),
		})
	case n > 1:
		out = append(out, Finding{
			ID:       IDTokenMultipleAudiences,
			Severity: SeverityWarning,
			What:     fmt.Sprintf("the token has %d audiences %s", n, QuoteList(claims.Audience)),
			Why: "a token projected without `audience:` carries the API server's audiences, and STS and the trust " +
				"policy's :aud condition expect the one audience registered on the IAM OIDC provider",
			Fix: fmt.Sprintf("set `audience: %s` on the projected volume's serviceAccountToken source (the issuer URL "+
				"with a trailing slash, the AKS convention) and register that value as the provider's client id", want),
		})
	}
	for _, aud := range claims.Audience {
		if aud != claims.Issuer && strings.HasSuffix(claims.Issuer, "/") && aud == strings.TrimRight(claims.Issuer, "/") {
			out = append(out, Finding{
				ID:       IDAudienceTrailingSlash,
				Severity: SeverityWarning,
				What:     fmt.Sprintf("audience %q is the issuer %q without its trailing slash", aud, claims.Issuer),
				Why: "IAM compares the audience with the OIDC provider's client ids byte for byte, and the AKS convention " +
					"(and `sidecar policy`) registers the issuer URL with its trailing slash",
				Fix: fmt.Sprintf("set `audience: %s` on the projected volume's serviceAccountToken source, or make the "+
					"provider's client id exactly %s", creds.DefaultAudience(claims.Issuer), aud),
			})
		}
	}
	if f, ok := issuerFinding(claims.Issuer); ok {
		out = append(out, f)
	}
	if f, ok := expiryFinding(claims, now, want); ok {
		out = append(out, f)
	}
	return out
}

// WantAudience is the audience the trust setup should use: the token's own when it has exactly
// one, else the AKS convention derived from the issuer.
func WantAudience(claims *creds.TokenClaims) string {
	if len(claims.Audience) == 1 && claims.Audience[0] != "" {
		return claims.Audience[0]
	}
	return creds.DefaultAudience(claims.Issuer)
}

func issuerFinding(iss string) (Finding, bool) {
	u, err := url.Parse(iss)
	if iss == "" || err != nil || u.Host == "" {
		return Finding{
			ID:       IDTokenMalformed,
			Severity: SeverityError,
			What:     fmt.Sprintf("the token's iss %q is not a URL", iss),
			Why:      "STS finds the IAM OIDC provider by the issuer URL",
			Fix:      "project the token from the cluster's service-account issuer (a kubelet-projected serviceAccountToken), not a hand-made token",
		}, true
	}
	if u.Scheme == "https" || IsLoopbackHost(u.Hostname()) {
		return Finding{}, false
	}
	return Finding{
		ID:       IDIssuerNotHTTPS,
		Severity: SeverityWarning,
		What:     fmt.Sprintf("the issuer %q is not https", iss),
		Why:      "IAM registers only https OIDC providers and fetches their keys over https",
		Fix:      "serve the cluster's OIDC issuer over https (on AKS: az aks update --enable-oidc-issuer) and set the API server's --service-account-issuer to that URL",
	}, true
}

func expiryFinding(claims *creds.TokenClaims, now time.Time, audience string) (Finding, bool) {
	exp := claims.Expiry
	if exp.IsZero() {
		return Finding{
			ID:       IDTokenMalformed,
			Severity: SeverityError,
			What:     "the token has no exp claim",
			Why:      "STS accepts only expiring tokens",
			Fix:      ProjectedVolumeFix(audience),
		}, true
	}
	why := "STS refuses expired tokens, and the kubelet replaces a projected token once 80% of its lifetime has " +
		"passed, so a token this old is not being rotated: a token copied into a file, Secret or image is never refreshed"
	if !now.Before(exp) {
		return Finding{
			ID:       IDTokenExpired,
			Severity: SeverityError,
			What:     fmt.Sprintf("the token expired at %s, %s ago", exp.UTC().Format(time.RFC3339), RoundDuration(now.Sub(exp))),
			Why:      why,
			Fix:      ProjectedVolumeFix(audience) + "; if it is projected, check the node's clock and the kubelet",
		}, true
	}
	left := exp.Sub(now)
	iat := claims.IssuedAt
	var late bool
	var used string
	if !iat.IsZero() && exp.After(iat) {
		life := exp.Sub(iat)
		// The grace shrinks for short-lived tokens, which would otherwise expire inside it.
		rotateAt := iat.Add(time.Duration(float64(life) * rotationPoint)).Add(min(rotationGrace, life/10))
		late = !now.Before(rotateAt)
		used = fmt.Sprintf(", %d%% of its %s lifetime used", int(100*float64(now.Sub(iat))/float64(life)), RoundDuration(life))
	} else {
		late = left < expiringSoon
	}
	if !late {
		return Finding{}, false
	}
	return Finding{
		ID:       IDTokenExpiring,
		Severity: SeverityWarning,
		What:     fmt.Sprintf("the token expires at %s, in %s%s", exp.UTC().Format(time.RFC3339), RoundDuration(left), used),
		Why:      why,
		Fix:      ProjectedVolumeFix(audience) + "; if it is projected, check the kubelet",
	}, true
}

func IsLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// QuoteList renders values as ["a", "b"] for messages.
func QuoteList(values []string) string {
	q := make([]string, len(values))
	for i, v := range values {
		q[i] = fmt.Sprintf("%q", v)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// RoundDuration keeps messages readable: whole seconds, or whole minutes beyond an hour.
func RoundDuration(d time.Duration) time.Duration {
	if d < 0 {
		d = -d
	}
	if d >= time.Hour {
		return d.Round(time.Minute)
	}
	return d.Round(time.Second)
}

// ServiceAccountOf returns the namespace and service account of the token, from the
// kubernetes.io claim or else from sub (system:serviceaccount:<ns>:<sa>).
func ServiceAccountOf(claims *creds.TokenClaims) (ns, sa string) {
	ns, sa = claims.Namespace, claims.ServiceAccount
	if ns != "" && sa != "" {
		return ns, sa
	}
	if rest, ok := strings.CutPrefix(claims.Subject, "system:serviceaccount:"); ok {
		if n, s, ok := strings.Cut(rest, ":"); ok {
			return n, s
		}
	}
	return ns, sa
}
