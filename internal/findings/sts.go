package findings

import (
	"errors"
	"fmt"
	"strings"

	"github.com/credsidecar/credsidecar/internal/creds"
)

// stsIDs are the findings each STS error code is, in the serve logs as in check (SeaweedFS
// answers a wrong audience or a bad signature with InvalidParameterValue where AWS says
// InvalidIdentityToken: both are sts-invalid-token).
var stsIDs = map[string]string{
	"AccessDenied":                    IDSTSAccessDenied,
	"InvalidIdentityToken":            IDSTSInvalidToken,
	"InvalidParameterValue":           IDSTSInvalidToken,
	"IDPRejectedClaim":                IDSTSInvalidToken,
	"IDPCommunicationError":           IDSTSIDPUnreachable,
	"ExpiredTokenException":           IDSTSExpiredToken,
	"ExpiredToken":                    IDSTSExpiredToken,
	"RegionDisabledException":         IDSTSRegionDisabled,
	"MalformedPolicyDocument":         IDSTSRequestInvalid,
	"PackedPolicyTooLarge":            IDSTSRequestInvalid,
	"ValidationError":                 IDSTSRequestInvalid,
	"JWTPayloadSizeExceededException": IDSTSRequestInvalid,
	"Throttling":                      IDSTSUnavailable,
	creds.CodeTimeout:                 IDSTSUnreachable,
	creds.CodeNetwork:                 IDSTSUnreachable,
}

// STSID is the finding a failed STS call with this error code is (creds.ErrorCode's codes).
func STSID(code string) string {
	if id, ok := stsIDs[code]; ok {
		return id
	}
	return IDSTSError
}

// ExplainSTS is creds.Explain: the finding a failed fetch is, and its likely cause in terms of
// the trust setup and the token's non-secret claims. A chained hop's failure is about that
// role's trust policy or the previous role's permissions, not about the web-identity token.
func ExplainSTS(err error, code string, claims *creds.TokenClaims) (id, why string) {
	return STSID(code), chainCause(err, code, claims)
}

var _ creds.Explain = ExplainSTS

// cause names the likely cause of a terminal STS answer in terms of the trust setup, with the
// token's non-secret claims, so the log line says what to fix.
func cause(code string, claims *creds.TokenClaims) string {
	var iss, sub string
	var aud []string
	if claims != nil {
		iss, sub, aud = claims.Issuer, claims.Subject, claims.Audience
	}
	// IAM condition keys name the provider by its URL without scheme or trailing slash.
	issHost := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(iss, "https://"), "http://"), "/")
	audNote := ""
	if len(aud) != 1 {
		audNote = fmt.Sprintf("; the token has %d audiences but STS needs exactly the one registered on the IAM OIDC provider: set audience on the projected volume", len(aud))
	}
	switch code {
	case "AccessDenied":
		return fmt.Sprintf("the role's trust policy does not admit this token: check that its Principal is the OIDC provider for %q and its conditions %s:sub and %s:aud match sub=%q aud=%q", iss, issHost, issHost, sub, aud)
	case "InvalidIdentityToken":
		return fmt.Sprintf("STS does not accept the token: is issuer %q registered as an IAM OIDC provider, is audience %q in its client ids, and does the issuer's JWKS contain the signing key?%s", iss, aud, audNote)
	case "InvalidParameterValue":
		return fmt.Sprintf("STS rejected a parameter: usually the token's audience %q (not in the OIDC provider's client ids) or the session name/duration%s", aud, audNote)
	case "IDPCommunicationError":
		return fmt.Sprintf("STS could not fetch the signing keys of issuer %q: are its /.well-known/openid-configuration and JWKS publicly reachable over https?", iss)
	case "ExpiredTokenException":
		return "the token is expired as STS sees it: is the node's clock right and is the kubelet rotating the projected token?"
	case "IDPRejectedClaim":
		return fmt.Sprintf("the identity provider rejected a claim of the token (iss=%q sub=%q aud=%q)", iss, sub, aud)
	case "RegionDisabledException":
		return "STS is not activated in this region for the role's account: activate it in IAM account settings or use another region"
	case "MalformedPolicyDocument", "PackedPolicyTooLarge":
		return "STS rejected the session policy"
	case "JWTPayloadSizeExceededException":
		return "the token's payload is larger than STS accepts"
	case "ValidationError":
		return "STS rejected the request: is the requested duration above the role's maximum session duration?"
	default:
		return ""
	}
}

// chainCause is cause for any failed fetch: a chained hop's failure is about that role's trust
// policy or the previous role's permissions, not about the web identity token.
func chainCause(err error, code string, claims *creds.TokenClaims) string {
	var ce *creds.ChainError
	if !errors.As(err, &ce) {
		return cause(code, claims)
	}
	switch code {
	case "AccessDenied":
		return fmt.Sprintf("the trust policy of the chained role %s does not let sessions of %s assume it: its Principal "+
			"must name {\"AWS\": %q} with Action sts:AssumeRole (and an sts:ExternalId condition only if --chain-external-id "+
			"gives that hop one), and %s's permission policy must allow sts:AssumeRole on %s", ce.RoleARN, ce.FromRoleARN,
			ce.FromRoleARN, ce.FromRoleARN, ce.RoleARN)
	case "ValidationError", "InvalidParameterValue":
		return fmt.Sprintf("STS refused the AssumeRole request for %s: a chained session lasts at most 1h, and the "+
			"external id and session name must fit STS's rules", ce.RoleARN)
	case "ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId", "SignatureDoesNotMatch":
		return fmt.Sprintf("STS did not accept the credentials of %s for the chained call: is the node's clock right?", ce.FromRoleARN)
	case "RegionDisabledException":
		return "STS is not activated in this region for the chained role's account: activate it in IAM account settings or use another region"
	case "MalformedPolicyDocument", "PackedPolicyTooLarge":
		return "STS rejected a session policy"
	default:
		return ""
	}
}
