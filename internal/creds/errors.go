package creds

import (
	"context"
	"errors"
	"fmt"
	"net"
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
// labels metrics and selects the finding the logs explain, and the two cannot disagree.
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
	case IsTimeout(err):
		return Retry, CodeTimeout
	case (retry.RetryableConnectionError{}).IsErrorRetryable(err) == aws.TrueTernary:
		return Retry, CodeNetwork
	default:
		// Including a 5xx whose body was not an STS error document.
		return Retry, CodeOther
	}
}

// withDeadline adds context.DeadlineExceeded to the error of a call whose deadline passed and
// whose connection was closed under it: when the deadline cuts a response's body short, net/http
// may report the read on the closed connection instead, and the call would count as a network
// error rather than a timeout. A reset or close by the server stays a network error.
func withDeadline(err error, ctx context.Context) error {
	if errors.Is(err, net.ErrClosed) && errors.Is(ctx.Err(), context.DeadlineExceeded) && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w (%w)", err, context.DeadlineExceeded)
	}
	return err
}

// IsTimeout reports whether err is a call that ran out of time: a context deadline, the SDK's
// timeout, or a network timeout. The one rule for creds' classification and check's findings.
func IsTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	if (retry.TimeouterError{}).IsErrorTimeout(err) == aws.TrueTernary {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func httpStatus(err error) int {
	var v interface{ HTTPStatusCode() int }
	if errors.As(err, &v) {
		return v.HTTPStatusCode()
	}
	return 0
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
	out := RedactToken(msg, token)
	if out == msg {
		return err
	}
	return &redactedError{err: err, msg: out}
}

// RedactToken replaces any copy of token, or of one of its longer segments (a JWT's header,
// payload or signature alone), in msg with [token]: the one rule for every message that may
// echo a token (STS's answers, the sidecar's logs, check's report).
func RedactToken(msg, token string) string {
	if token == "" {
		return msg
	}
	msg = strings.ReplaceAll(msg, token, "[token]")
	for _, seg := range strings.Split(token, ".") {
		if len(seg) >= 16 {
			msg = strings.ReplaceAll(msg, seg, "[token]")
		}
	}
	return msg
}
