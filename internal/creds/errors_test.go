package creds

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/aws/smithy-go"
)

func TestClassifyAndErrorCode(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		wantClass Class
		wantCode  string
	}{
		// Throttling and server trouble: retry soon.
		{name: "Throttling", err: errThrottle(), wantClass: Retry, wantCode: "Throttling"},
		{name: "ThrottlingException", err: apiErr(400, "ThrottlingException", smithy.FaultClient), wantClass: Retry, wantCode: "ThrottlingException"},
		{name: "RequestLimitExceeded", err: apiErr(400, "RequestLimitExceeded", smithy.FaultClient), wantClass: Retry, wantCode: "RequestLimitExceeded"},
		{name: "http 500 InternalFailure", err: err5xx(), wantClass: Retry, wantCode: "InternalFailure"},
		{name: "http 503 ServiceUnavailable", err: apiErr(503, "ServiceUnavailable", smithy.FaultServer), wantClass: Retry, wantCode: "ServiceUnavailable"},
		{name: "http 502 unknown code", err: apiErr(502, "BadGatewayFromProxy", smithy.FaultUnknown), wantClass: Retry, wantCode: CodeOther},
		{name: "http 500 without api error", err: httpErr(500, errors.New("deserialization failed")), wantClass: Retry, wantCode: CodeOther},
		{name: "http 429 unknown client code", err: apiErr(429, "TooMany", smithy.FaultClient), wantClass: Retry, wantCode: CodeOther},
		{name: "IDPCommunicationError typed", err: httpErr(400, &types.IDPCommunicationErrorException{}), wantClass: Retry, wantCode: "IDPCommunicationError"},
		// Network and time.
		{name: "connection refused", err: errNetwork(), wantClass: Retry, wantCode: CodeNetwork},
		{name: "bare net.OpError read reset", err: &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, wantClass: Retry, wantCode: CodeNetwork},
		{name: "context deadline", err: context.DeadlineExceeded, wantClass: Retry, wantCode: CodeTimeout},
		{name: "sdk canceled by deadline", err: opErr(&smithy.CanceledError{Err: context.DeadlineExceeded}), wantClass: Retry, wantCode: CodeTimeout},
		{name: "dns timeout", err: opErr(&net.DNSError{Err: "i/o timeout", Name: "sts.example", IsTimeout: true}), wantClass: Retry, wantCode: CodeTimeout},
		{name: "unknown plain error", err: errors.New("something odd"), wantClass: Retry, wantCode: CodeOther},
		// Trust setup and token problems: wait.
		{name: "InvalidIdentityToken typed", err: httpErr(400, &types.InvalidIdentityTokenException{}), wantClass: Terminal, wantCode: "InvalidIdentityToken"},
		{name: "InvalidIdentityToken generic", err: apiErr(400, "InvalidIdentityToken", smithy.FaultClient), wantClass: Terminal, wantCode: "InvalidIdentityToken"},
		{name: "InvalidParameterValue", err: apiErr(400, "InvalidParameterValue", smithy.FaultClient), wantClass: Terminal, wantCode: "InvalidParameterValue"},
		{name: "AccessDenied", err: apiErr(403, "AccessDenied", smithy.FaultClient), wantClass: Terminal, wantCode: "AccessDenied"},
		{name: "ExpiredTokenException typed", err: httpErr(400, &types.ExpiredTokenException{}), wantClass: Terminal, wantCode: "ExpiredTokenException"},
		{name: "IDPRejectedClaim typed", err: httpErr(403, &types.IDPRejectedClaimException{}), wantClass: Terminal, wantCode: "IDPRejectedClaim"},
		{name: "RegionDisabledException typed", err: httpErr(403, &types.RegionDisabledException{}), wantClass: Terminal, wantCode: "RegionDisabledException"},
		{name: "MalformedPolicyDocument typed", err: httpErr(400, &types.MalformedPolicyDocumentException{}), wantClass: Terminal, wantCode: "MalformedPolicyDocument"},
		{name: "PackedPolicyTooLarge typed", err: httpErr(400, &types.PackedPolicyTooLargeException{}), wantClass: Terminal, wantCode: "PackedPolicyTooLarge"},
		{name: "ValidationError", err: apiErr(400, "ValidationError", smithy.FaultClient), wantClass: Terminal, wantCode: "ValidationError"},
		{name: "unknown client fault", err: apiErr(400, "SomethingNew", smithy.FaultClient), wantClass: Terminal, wantCode: CodeOther},
		{name: "code override keeps labels bounded", err: httpErr(400, &types.InvalidIdentityTokenException{ErrorCodeOverride: aws.String("Custom.Code")}), wantClass: Terminal, wantCode: CodeOther},
		{name: "token file", err: &TokenError{Path: "/t", Problem: "file is empty"}, wantClass: Terminal, wantCode: CodeToken},
		// Wrapping must not change the answer.
		{name: "wrapped twice", err: fmt.Errorf("refresh: %w", fmt.Errorf("assume role with web identity: %w", errThrottle())), wantClass: Retry, wantCode: "Throttling"},
		{name: "redacted", err: redact(fmt.Errorf("x: %w", apiErr(403, "AccessDenied", smithy.FaultClient)), "AccessDenied"), wantClass: Terminal, wantCode: "AccessDenied"},
	}
	allowed := map[string]bool{CodeTimeout: true, CodeNetwork: true, CodeToken: true, CodeOther: true}
	for c := range terminalCodes {
		allowed[c] = true
	}
	for c := range retryCodes {
		allowed[c] = true
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify(tt.err); got != tt.wantClass {
				t.Errorf("Classify(%v) = %v, want %v", tt.err, got, tt.wantClass)
			}
			got := ErrorCode(tt.err)
			if got != tt.wantCode {
				t.Errorf("ErrorCode(%v) = %q, want %q", tt.err, got, tt.wantCode)
			}
			if !allowed[got] {
				t.Errorf("ErrorCode returned %q, outside the fixed label set", got)
			}
		})
	}
	if ErrorCode(nil) != "" {
		t.Errorf("ErrorCode(nil) = %q, want empty", ErrorCode(nil))
	}
}

func TestRedact(t *testing.T) {
	tok := "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6bnM6c2EifQ.c2lnbmF0dXJlLWJ5dGVzLWhlcmU"
	parts := strings.Split(tok, ".")
	tests := []struct {
		name string
		msg  string
	}{
		{name: "whole token", msg: "bad token " + tok},
		{name: "payload only", msg: "bad payload " + parts[1]},
		{name: "signature only", msg: "bad sig " + parts[2]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := apiErr(400, "InvalidIdentityToken", smithy.FaultClient)
			err := redact(fmt.Errorf("%s: %w", tt.msg, base), tok)
			for _, p := range append(parts[1:], tok) {
				if strings.Contains(err.Error(), p) {
					t.Errorf("redacted error %q still contains token text", err)
				}
			}
			if !strings.Contains(err.Error(), "[token]") {
				t.Errorf("redacted error %q lacks the [token] marker", err)
			}
			if !errors.Is(err, base) {
				t.Error("redaction broke errors.Is")
			}
		})
	}
	plain := errors.New("nothing to hide")
	if redact(plain, tok) != plain {
		t.Error("redact wrapped an error that did not contain the token")
	}
}

func ExampleErrorCode() {
	err := fmt.Errorf("refresh: %w", &types.InvalidIdentityTokenException{Message: aws.String("Incorrect token audience")})
	fmt.Println(ErrorCode(err), Classify(err))
	fmt.Println(ErrorCode(context.DeadlineExceeded), Classify(context.DeadlineExceeded))
	// Output:
	// InvalidIdentityToken terminal
	// Timeout retry
}
