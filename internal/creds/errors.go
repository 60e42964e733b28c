package creds

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"
)

// Class is what the refresh loop does after a failed fetch.
type Class int

const (
	// Retry marks a transient failure (throttling, 5xx, network, timeout): back off
	// exponentially from 1 s to 1 min and try again.
	Retry Class = iota + 1
	// Terminal marks a failure that repeating will not fix (trust setup, bad token): wait a
	// minute, or for a token rotation, before trying again.
	Terminal
)

// String names the class for logs.
func (c Class) String() string {
	switch c {
	case Retry:
		return "retry"
	case Terminal:
		return "terminal"
	default:
		return fmt.Sprintf("Class(%d)", int(c))
	}
}

// Codes that are not STS error codes but keep metric labels meaningful when there is no API error.
const (
	// CodeTimeout is a call that ran out of time.
	CodeTimeout = "Timeout"
	// CodeNetwork is a call that never got an HTTP response.
	CodeNetwork = "NetworkError"
	// CodeToken is a token file that could not be used, so STS was not called.
	CodeToken = "TokenFile"
	// CodeOther is everything else, so the label set stays bounded.
	CodeOther = "other"
)

// terminalCodes are the STS answers that retrying will not change until someone fixes the
// trust setup or the token rotates.
var terminalCodes = map[string]struct{}{
	"InvalidIdentityToken":            {},
	"InvalidParameterValue":           {},
	"AccessDenied":                    {},
	"ExpiredTokenException":           {},
	"IDPRejectedClaim":                {},
	"RegionDisabledException":         {},
	"MalformedPolicyDocument":         {},
	"PackedPolicyTooLarge":            {},
	"JWTPayloadSizeExceededException": {},
	"ValidationError":                 {},
}

// retryCodes are the STS answers that say "not now": throttling and server-side trouble.
var retryCodes = map[string]struct{}{
	"IDPCommunicationError":       {},
	"Throttling":                  {},
	"ThrottlingException":         {},
	"RequestLimitExceeded":        {},
	"TooManyRequestsException":    {},
	"InternalFailure":             {},
	"InternalError":               {},
	"ServiceUnavailable":          {},
	"ServiceUnavailableException": {},
	"RequestTimeout":              {},
	"RequestTimeoutException":     {},
}

// Classify says whether a failed fetch is worth retrying soon. Unknown failures are retried
// (the backoff bounds them, and giving up would leave pods without credentials over a blip),
// except unknown API errors STS marks as the caller's fault.
func Classify(err error) Class {
	class, _ := classify(err)
	return class
}

// ErrorCode returns err's STS error code when it is one of a fixed set, else one of the Code*
// constants, so it is safe as a metric label. It is "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	_, code := classify(err)
	return code
}

// classify is the one place that reads AWS errors: the class decides the backoff, the code
// labels metrics and picks the hint, and the two cannot disagree.
func classify(err error) (Class, string) {
	var te *TokenError
	if errors.As(err, &te) {
		return Terminal, CodeToken
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		code := apiErr.ErrorCode()
		if _, ok := terminalCodes[code]; ok {
			return Terminal, code
		}
		if _, ok := retryCodes[code]; ok {
			return Retry, code
		}
		if status := httpStatus(err); status >= 500 || status == http.StatusTooManyRequests {
			return Retry, CodeOther
		}
		if apiErr.ErrorFault() == smithy.FaultClient {
			return Terminal, CodeOther
		}
		return Retry, CodeOther
	}
	switch {
	case err == nil:
		return Retry, ""
	case isTimeout(err):
		return Retry, CodeTimeout
	case (retry.RetryableConnectionError{}).IsErrorRetryable(err) == aws.TrueTernary:
		return Retry, CodeNetwork
	default:
		// Including a 5xx whose body was not an STS error document.
		return Retry, CodeOther
	}
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	return retry.TimeouterError{}.IsErrorTimeout(err) == aws.TrueTernary
}

func httpStatus(err error) int {
	var v interface{ HTTPStatusCode() int }
	if errors.As(err, &v) {
		return v.HTTPStatusCode()
	}
	return 0
}

// hint names the likely cause of a terminal STS answer in terms of the trust setup, with the
// token's non-secret claims, so the log line says what to fix.
func hint(code string, claims *TokenClaims) string {
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

// redactedError keeps errors.As/Is working but guarantees the message carries no token text,
// even if a server echoes the token back.
type redactedError struct {
	err error
	msg string
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redact replaces any copy of the token, or of one of its longer segments, in err's message.
func redact(err error, token string) error {
	if err == nil || token == "" {
		return err
	}
	msg := err.Error()
	out := strings.ReplaceAll(msg, token, "[token]")
	for _, seg := range strings.Split(token, ".") {
		if len(seg) >= 16 {
			out = strings.ReplaceAll(out, seg, "[token]")
		}
	}
	if out == msg {
		return err
	}
	return &redactedError{err: err, msg: out}
}
