package diagnose

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/aws/smithy-go"

	"github.com/credsidecar/credsidecar/internal/awsarn"
	"github.com/credsidecar/credsidecar/internal/creds"
	"github.com/credsidecar/credsidecar/internal/findings"
	"github.com/credsidecar/credsidecar/internal/policy"
)

// trustContext is what STS findings quote: the token's claims, the role, and where STS is.
type trustContext struct {
	claims   *creds.TokenClaims
	token    []byte // only to scrub it from echoed messages
	roleARN  string
	endpoint string
	region   string
	duration time.Duration
	timeout  time.Duration
	now      time.Time
}

// endpointFlags names where the STS endpoint and region come from, for fixes.
const (
	stsEndpointFlags = "--sts-endpoint / AWS_ENDPOINT_URL_STS"
	regionFlags      = "--region / AWS_REGION"
)

// stsFinding turns a failed AssumeRoleWithWebIdentity into a finding. AWS and SeaweedFS differ
// in codes for the same fault (SeaweedFS answers a wrong audience or a bad signature with
// InvalidParameterValue where AWS says InvalidIdentityToken), so both map to sts-invalid-token.
func stsFinding(err error, tc trustContext) findings.Finding {
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return unreachableFinding(err, findings.IDSTSUnreachable, "STS", tc.endpoint, tc.region, stsEndpointFlags, tc.timeout)
	}
	code := apiErr.ErrorCode()
	answer := code
	if msg := scrub(apiErr.ErrorMessage(), tc.token); msg != "" {
		answer += ": " + msg
	}
	expired := tc.claims != nil && !tc.claims.Expiry.IsZero() && !tc.now.Before(tc.claims.Expiry)
	switch creds.ErrorCode(err) {
	case "ExpiredTokenException":
		return expiredFinding(tc, answer)
	case "InvalidIdentityToken", "InvalidParameterValue", "IDPRejectedClaim":
		if expired {
			return expiredFinding(tc, answer)
		}
		return invalidTokenFinding(tc, answer)
	case "AccessDenied":
		// SeaweedFS answers a token signed by an unknown key with AccessDenied and says so in the
		// message; AWS's AccessDenied is always the trust policy ("Not authorized to perform
		// sts:AssumeRoleWithWebIdentity").
		if tokenRejected(apiErr.ErrorMessage()) {
			return invalidTokenFinding(tc, answer)
		}
		return accessDeniedFinding(tc, answer)
	case "IDPCommunicationError":
		iss := issuerOf(tc.claims)
		return findings.Finding{
			ID:       findings.IDSTSIDPUnreachable,
			Severity: findings.SeverityError,
			What:     fmt.Sprintf("STS could not fetch the signing keys of issuer %s (%s)", iss, answer),
			Why:      "STS checks the token's signature with the keys the issuer publishes, which it fetches over the internet",
			Fix: fmt.Sprintf("make %s and the jwks_uri it names reachable from the internet over https with a publicly "+
				"trusted certificate (on AKS, enable the cluster's OIDC issuer), then retry", discoveryURL(iss)),
		}
	case "RegionDisabledException":
		_, account, _ := parseRoleARN(tc.roleARN)
		return findings.Finding{
			ID:       findings.IDSTSRegionDisabled,
			Severity: findings.SeverityError,
			What:     fmt.Sprintf("STS is not active in region %s for account %s (%s)", tc.region, account, answer),
			Why:      "STS issues credentials only in regions activated for the account",
			Fix: fmt.Sprintf("activate region %s under IAM > Account settings > Security Token Service (STS) > Endpoints, "+
				"or set %s to an active region", tc.region, regionFlags),
		}
	case "ValidationError":
		_, _, name := parseRoleARN(tc.roleARN)
		return findings.Finding{
			ID:       findings.IDSTSRequestInvalid,
			Severity: findings.SeverityError,
			What:     fmt.Sprintf("STS refused the request (%s)", answer),
			Why:      "STS refuses a session duration above the role's maximum session duration (1h unless raised)",
			Fix: fmt.Sprintf("lower --duration / CREDSIDECAR_DURATION (now %s) or raise the role's limit: "+
				"`aws iam update-role --role-name %s --max-session-duration %d`",
				tc.duration, policy.ShellQuote(name), int(tc.duration.Seconds())),
		}
	case "MalformedPolicyDocument", "PackedPolicyTooLarge", "JWTPayloadSizeExceededException":
		return findings.Finding{
			ID:       findings.IDSTSRequestInvalid,
			Severity: findings.SeverityError,
			What:     fmt.Sprintf("STS refused the request (%s)", answer),
			Why:      "STS checks the size of the token and of session policies before anything else",
			Fix:      "project a plain service-account token (no extra claims) and pass no session policy",
		}
	}
	if creds.Classify(err) == creds.Retry {
		return findings.Finding{
			ID:       findings.IDSTSUnavailable,
			Severity: findings.SeverityError,
			What:     fmt.Sprintf("STS at %s did not serve the request (%s)", tc.endpoint, answer),
			Why:      "throttling and server-side failures are transient; the sidecar retries them with backoff",
			Fix:      "run the check again in a minute; if it persists, check the status of STS in region " + valueOr(tc.region, "(unset)"),
		}
	}
	return findings.Finding{
		ID:       findings.IDSTSError,
		Severity: findings.SeverityError,
		What:     fmt.Sprintf("STS refused AssumeRoleWithWebIdentity (%s)", answer),
		Why:      "no credentials can be issued until STS accepts the request",
		Fix:      fmt.Sprintf("look up %s in the STS AssumeRoleWithWebIdentity API reference", code),
	}
}

// tokenRejected reports whether an STS message blames the token rather than the trust policy.
func tokenRejected(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "web identity token") || strings.Contains(m, "jwks") || strings.Contains(m, "signature")
}

func invalidTokenFinding(tc trustContext, answer string) findings.Finding {
	iss, aud := issuerOf(tc.claims), ""
	var prefix string
	if tc.claims != nil {
		aud = findings.WantAudience(tc.claims)
		if len(tc.claims.Audience) != 1 {
			prefix = fmt.Sprintf("set `audience: %s` on the projected serviceAccountToken, then ", aud)
		}
	}
	partition, account, _ := parseRoleARN(tc.roleARN)
	return findings.Finding{
		ID:       findings.IDSTSInvalidToken,
		Severity: findings.SeverityError,
		What:     fmt.Sprintf("STS refused the token of issuer %s with audience %s (%s)", iss, audienceText(tc.claims), answer),
		Why: "STS accepts only tokens whose issuer is registered as an IAM OIDC provider, whose audience is one of " +
			"that provider's client ids, and whose signature verifies with a key the issuer publishes",
		Fix: fmt.Sprintf("%sregister the issuer with that audience: `aws iam create-open-id-connect-provider --url %s "+
			"--client-id-list %s`; if the provider exists, add the audience: `aws iam add-client-id-to-open-id-connect-provider "+
			"--open-id-connect-provider-arn %s --client-id %s`; if both are registered, the signing key is missing from the "+
			"JWKS that %s names",
			prefix, policy.ShellQuote(iss), policy.ShellQuote(aud),
			policy.ProviderARN(partition, valueOr(account, "<account-id>"), iss), policy.ShellQuote(aud), discoveryURL(iss)),
	}
}

func accessDeniedFinding(tc trustContext, answer string) findings.Finding {
	iss, sub, aud := issuerOf(tc.claims), "", ""
	ns, sa := "", ""
	if tc.claims != nil {
		sub, aud = tc.claims.Subject, findings.WantAudience(tc.claims)
		ns, sa = findings.ServiceAccountOf(tc.claims)
	}
	partition, account, name := parseRoleARN(tc.roleARN)
	cmd := fmt.Sprintf("sidecar policy --issuer %s --namespace %s --service-account %s --account %s",
		policy.ShellQuote(iss), policy.ShellQuote(valueOr(ns, "<namespace>")), policy.ShellQuote(valueOr(sa, "<service-account>")),
		valueOr(account, "<account-id>"))
	if aud != policy.DefaultAudience(iss) {
		cmd += " --audience " + policy.ShellQuote(aud)
	}
	if name != "" && name != policy.DefaultRoleName {
		cmd += " --role-name " + policy.ShellQuote(name)
	}
	if partition != "" && partition != policy.DefaultPartition {
		cmd += " --partition " + partition
	}
	return findings.Finding{
		ID:       findings.IDSTSAccessDenied,
		Severity: findings.SeverityError,
		What:     fmt.Sprintf("STS denied AssumeRoleWithWebIdentity on %s for sub %q (%s)", tc.roleARN, sub, answer),
		Why: "the role's trust policy decides which tokens may assume it: its Federated principal must be the OIDC " +
			"provider of the token's issuer and its :sub and :aud conditions must equal the token's claims exactly",
		Fix: fmt.Sprintf("the trust policy of role %s needs Principal {\"Federated\": %q}, Action \"sts:AssumeRoleWithWebIdentity\" "+
			"and StringEquals {%s}: `%s` prints it, `aws iam update-assume-role-policy --role-name %s --policy-document "+
			"file://trust-policy.json` applies it",
			valueOr(name, "<role>"), policy.ProviderARN(partition, valueOr(account, "<account-id>"), iss),
			policy.ConditionLines(iss, sub, aud), cmd, policy.ShellQuote(valueOr(name, "<role>"))),
	}
}

func expiredFinding(tc trustContext, answer string) findings.Finding {
	what := fmt.Sprintf("STS refused the token as expired (%s)", answer)
	aud := "<issuer URL>/"
	if tc.claims != nil {
		aud = findings.WantAudience(tc.claims)
		if !tc.claims.Expiry.IsZero() {
			what += fmt.Sprintf("; it expired at %s", tc.claims.Expiry.UTC().Format(time.RFC3339))
		}
	}
	return findings.Finding{
		ID:       findings.IDSTSExpiredToken,
		Severity: findings.SeverityError,
		What:     what,
		Why:      "the kubelet replaces a projected token before it expires, so an expired one is a copy that is never refreshed, or the node's clock is wrong",
		Fix:      findings.ProjectedVolumeFix(aud) + "; if it is projected, check the node's clock and the kubelet",
	}
}

// unreachableFinding explains a request that got no answer: which endpoint, in which region, and
// whether DNS, the connection, TLS or time failed.
func unreachableFinding(err error, id, service, endpoint, region, flags string, timeout time.Duration) findings.Finding {
	host := endpoint
	if u, perr := url.Parse(endpoint); perr == nil && u.Host != "" {
		host = u.Host
	}
	where := endpoint
	if region != "" {
		where += " (region " + region + ")"
	}
	kind, fix := describeNetError(err, host, timeout)
	if fix == "" {
		fix = fmt.Sprintf("check %s and the pod's egress (NetworkPolicy, firewall, HTTPS_PROXY/NO_PROXY)", flags)
	} else {
		fix += fmt.Sprintf("; the endpoint comes from %s", flags)
	}
	return findings.Finding{
		ID:       id,
		Severity: findings.SeverityError,
		What:     fmt.Sprintf("cannot reach %s at %s: %s", service, where, kind),
		Why:      fmt.Sprintf("without an answer from %s nothing can be checked or issued", service),
		Fix:      fix,
	}
}

// describeNetError names the failing layer and its fix. It never returns the request URL the
// SDK's error text carries, only the innermost cause.
func describeNetError(err error, host string, timeout time.Duration) (kind, fix string) {
	var (
		dnsErr     *net.DNSError
		unknownCA  x509.UnknownAuthorityError
		hostErr    x509.HostnameError
		invalidErr x509.CertificateInvalidError
		verifyErr  *tls.CertificateVerificationError
		recordErr  tls.RecordHeaderError
		opErr      *net.OpError
	)
	switch {
	case errors.As(err, &dnsErr):
		return fmt.Sprintf("DNS lookup of %s failed (%s)", dnsErr.Name, dnsErr.Err),
			fmt.Sprintf("check the host name %s, the pod's DNS (dnsPolicy, CoreDNS) and, for AWS, the region: the regional endpoint is sts.<region>.amazonaws.com", dnsErr.Name)
	case errors.As(err, &unknownCA):
		return "TLS: the certificate is signed by an unknown authority",
			fmt.Sprintf("trust the CA of %s's certificate in the container (add it to the image's CA bundle or mount it and set SSL_CERT_FILE), or, behind a TLS-inspecting proxy, trust the proxy's CA", host)
	case errors.As(err, &hostErr):
		return "TLS: " + hostErr.Error(),
			"use the host name the endpoint's certificate is issued for"
	case errors.As(err, &invalidErr):
		return "TLS: " + invalidErr.Error(),
			fmt.Sprintf("renew or replace the certificate of %s (and check the pod's clock)", host)
	case errors.As(err, &verifyErr):
		return "TLS: " + verifyErr.Error(),
			fmt.Sprintf("trust the CA of %s's certificate in the container", host)
	case errors.As(err, &recordErr):
		return "TLS: the server did not answer with TLS",
			fmt.Sprintf("%s speaks plain http on that port: use an http:// URL or the https port", host)
	case creds.IsTimeout(err):
		t := "in time"
		if timeout > 0 {
			t = "within " + timeout.String()
		}
		return "no answer " + t,
			fmt.Sprintf("check the pod's egress to %s (NetworkPolicy, firewall, HTTPS_PROXY/NO_PROXY)", host)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("connection to %s refused", host),
			fmt.Sprintf("nothing listens at %s: check the URL's host and port, and that the VPC endpoint or proxy is up", host)
	case errors.As(err, &opErr):
		return opErr.Error(), ""
	}
	return scrub(err.Error(), nil), ""
}

// parseRoleARN takes a role ARN apart with awsarn; parts it cannot find are empty.
func parseRoleARN(arn string) (partition, account, name string) {
	a, err := awsarn.Parse(arn)
	if err != nil {
		return "", "", ""
	}
	return a.Partition, a.Account, a.Name()
}

func issuerOf(c *creds.TokenClaims) string {
	if c == nil || c.Issuer == "" {
		return "<issuer URL>"
	}
	return c.Issuer
}

func audienceText(c *creds.TokenClaims) string {
	if c == nil {
		return "(unknown)"
	}
	if len(c.Audience) == 1 {
		return fmt.Sprintf("%q", c.Audience[0])
	}
	return findings.QuoteList(c.Audience)
}

func discoveryURL(iss string) string {
	return strings.TrimRight(iss, "/") + "/.well-known/openid-configuration"
}

func valueOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// maxMessage bounds server messages quoted in findings.
const maxMessage = 300

// scrub removes any copy of the token, or of its longer segments, from a message a server sent
// back, collapses it to one line and bounds its length.
func scrub(msg string, token []byte) string {
	msg = creds.RedactToken(msg, string(token))
	msg = strings.Join(strings.Fields(msg), " ")
	if len(msg) > maxMessage {
		msg = strings.ToValidUTF8(msg[:maxMessage], "") + "..."
	}
	return msg
}
