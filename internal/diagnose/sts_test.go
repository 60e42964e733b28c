package diagnose

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/credsidecar/credsidecar/internal/findings"
	"github.com/credsidecar/credsidecar/internal/testkit/claimstest"
)

// apiError builds the error chain the SDK returns for an STS/S3 error response.
func apiError(op, code, msg string, status int) error {
	return &smithy.OperationError{
		ServiceID:     "STS",
		OperationName: op,
		Err: &awshttp.ResponseError{
			ResponseError: &smithyhttp.ResponseError{
				Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
				Err:      &smithy.GenericAPIError{Code: code, Message: msg, Fault: smithy.FaultClient},
			},
			RequestID: "req-1",
		},
	}
}

// sendError builds the error chain the SDK returns when no response came back.
func sendError(cause error) error {
	return &smithy.OperationError{
		ServiceID:     "STS",
		OperationName: "AssumeRoleWithWebIdentity",
		Err: &smithyhttp.RequestSendError{Err: &url.Error{
			Op: "Post", URL: "https://sts.eu-west-1.amazonaws.com/", Err: cause,
		}},
	}
}

func TestSTSFinding(t *testing.T) {
	const op = "AssumeRoleWithWebIdentity"
	token := makeToken(t, aksClaims(testNow))
	providerPath := "eastus.oic.prod-aks.azure.com/8c2f1a3e/5d6e7f80"
	tests := []struct {
		name   string
		err    error
		expire bool // the token expired an hour ago; else it is a minute old
		want   claimstest.Want
	}{
		{
			name: "AWS: issuer not registered",
			err:  apiError(op, "InvalidIdentityToken", "No OpenIDConnect provider found in your account for "+testIssuer, 400),
			want: claimstest.Want{ID: findings.IDSTSInvalidToken, Severity: findings.SeverityError,
				FixHas: []string{
					"aws iam create-open-id-connect-provider --url " + testIssuer + " --client-id-list " + testIssuer,
					"--open-id-connect-provider-arn arn:aws:iam::111122223333:oidc-provider/" + providerPath + " --client-id " + testIssuer,
				},
				WhatHas: []string{"InvalidIdentityToken: No OpenIDConnect provider found"}},
		},
		{
			name: "SeaweedFS: wrong audience as InvalidParameterValue",
			err:  apiError(op, "InvalidParameterValue", "invalid token audience: token audience matches none of the configured client IDs", 400),
			want: claimstest.Want{ID: findings.IDSTSInvalidToken, Severity: findings.SeverityError, FixHas: []string{"--client-id-list " + testIssuer}},
		},
		{
			name: "SeaweedFS: unknown signing key as AccessDenied",
			err:  apiError(op, "AccessDenied", "failed to validate web identity token: key with ID abc not found in JWKS after refresh", 403),
			want: claimstest.Want{ID: findings.IDSTSInvalidToken, Severity: findings.SeverityError, FixHas: []string{"JWKS", testIssuer + ".well-known/openid-configuration"}},
		},
		{
			name: "IDPRejectedClaim",
			err:  apiError(op, "IDPRejectedClaim", "rejected", 403),
			want: claimstest.Want{ID: findings.IDSTSInvalidToken, Severity: findings.SeverityError},
		},
		{
			name:   "InvalidIdentityToken for a token that has expired",
			err:    apiError(op, "InvalidIdentityToken", "Token expired", 400),
			expire: true,
			want:   claimstest.Want{ID: findings.IDSTSExpiredToken, Severity: findings.SeverityError, FixHas: []string{"projected volume"}, WhatHas: []string{"expired at"}},
		},
		{
			name: "ExpiredTokenException",
			err:  apiError(op, "ExpiredTokenException", "Token expired: current date/time 1764000000 must be before the expiration date/time", 400),
			want: claimstest.Want{ID: findings.IDSTSExpiredToken, Severity: findings.SeverityError, FixHas: []string{"serviceAccountToken"}},
		},
		{
			name: "AWS: trust policy refuses the token",
			err:  apiError(op, "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity", 403),
			want: claimstest.Want{ID: findings.IDSTSAccessDenied, Severity: findings.SeverityError,
				FixHas: []string{
					`"` + providerPath + `:sub": "system:serviceaccount:default:workload-sa"`,
					`"` + providerPath + `:aud": "` + testIssuer + `"`,
					`"Federated": "arn:aws:iam::111122223333:oidc-provider/` + providerPath + `"`,
					"sidecar policy --issuer " + testIssuer + " --namespace default --service-account workload-sa --account 111122223333`",
					"aws iam update-assume-role-policy --role-name AKS-S3-Access-Role",
				},
				WhatHas: []string{testRole, "system:serviceaccount:default:workload-sa"}},
		},
		{
			name: "IDPCommunicationError",
			err:  apiError(op, "IDPCommunicationError", "Couldn't retrieve verification key from your identity provider", 400),
			want: claimstest.Want{ID: findings.IDSTSIDPUnreachable, Severity: findings.SeverityError, FixHas: []string{testIssuer + ".well-known/openid-configuration"}},
		},
		{
			name: "RegionDisabledException",
			err:  apiError(op, "RegionDisabledException", "STS is not activated in this region", 403),
			want: claimstest.Want{ID: findings.IDSTSRegionDisabled, Severity: findings.SeverityError, FixHas: []string{"activate region eu-west-1", "--region"}, WhatHas: []string{"111122223333"}},
		},
		{
			name: "ValidationError on the duration",
			err:  apiError(op, "ValidationError", "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.", 400),
			want: claimstest.Want{ID: findings.IDSTSRequestInvalid, Severity: findings.SeverityError, FixHas: []string{"--max-session-duration 7200", "--role-name AKS-S3-Access-Role", "now 2h0m0s"}},
		},
		{
			name: "throttled",
			err:  apiError(op, "Throttling", "Rate exceeded", 400),
			want: claimstest.Want{ID: findings.IDSTSUnavailable, Severity: findings.SeverityError, WhatHas: []string{"Throttling: Rate exceeded"}},
		},
		{
			name: "server error",
			err:  apiError(op, "InternalFailure", "oops", 500),
			want: claimstest.Want{ID: findings.IDSTSUnavailable, Severity: findings.SeverityError},
		},
		{
			name: "unknown code",
			err:  apiError(op, "SomethingNew", "new failure", 400),
			want: claimstest.Want{ID: findings.IDSTSError, Severity: findings.SeverityError, FixHas: []string{"SomethingNew"}},
		},
		{
			name: "DNS failure",
			err:  sendError(&net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Name: "sts.eu-west-9.amazonaws.com", Err: "no such host", IsNotFound: true}}),
			want: claimstest.Want{ID: findings.IDSTSUnreachable, Severity: findings.SeverityError,
				WhatHas: []string{"https://sts.eu-west-1.amazonaws.com (region eu-west-1)", "DNS lookup of sts.eu-west-9.amazonaws.com failed"},
				FixHas:  []string{"sts.eu-west-9.amazonaws.com", "--sts-endpoint / AWS_ENDPOINT_URL_STS"}},
		},
		{
			name: "connection refused",
			err: sendError(&net.OpError{Op: "dial", Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1},
				Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}),
			want: claimstest.Want{ID: findings.IDSTSUnreachable, Severity: findings.SeverityError, WhatHas: []string{"refused"}, FixHas: []string{"nothing listens at sts.eu-west-1.amazonaws.com"}},
		},
		{
			name: "untrusted certificate",
			err:  sendError(&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}),
			want: claimstest.Want{ID: findings.IDSTSUnreachable, Severity: findings.SeverityError, WhatHas: []string{"TLS", "unknown authority"}, FixHas: []string{"SSL_CERT_FILE"}},
		},
		{
			name: "https URL on a plain http port",
			err:  sendError(tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}),
			want: claimstest.Want{ID: findings.IDSTSUnreachable, Severity: findings.SeverityError, WhatHas: []string{"did not answer with TLS"}, FixHas: []string{"http://"}},
		},
		{
			name: "timeout",
			err:  fmt.Errorf("operation error STS: AssumeRoleWithWebIdentity: %w", context.DeadlineExceeded),
			want: claimstest.Want{ID: findings.IDSTSUnreachable, Severity: findings.SeverityError, WhatHas: []string{"no answer within 10s"}, FixHas: []string{"egress"}},
		},
		{
			name: "a message echoing the token is scrubbed",
			err:  apiError(op, "InvalidIdentityToken", "bad token "+token+" rejected", 400),
			want: claimstest.Want{ID: findings.IDSTSInvalidToken, Severity: findings.SeverityError, WhatHas: []string{"bad token [token] rejected"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := claimsAt(time.Minute, time.Hour)
			if tt.expire {
				c = claimsAt(2*time.Hour, time.Hour)
			}
			tc := trustContext{
				claims: c, token: []byte(token), roleARN: testRole, endpoint: "https://sts.eu-west-1.amazonaws.com",
				region: "eu-west-1", duration: 2 * time.Hour, timeout: 10 * time.Second, now: testNow,
			}
			f := stsFinding(tt.err, tc)
			claimstest.Check(t, []findings.Finding{f}, []claimstest.Want{tt.want})
			for _, part := range strings.Split(token, ".") {
				if strings.Contains(f.String(), part) {
					t.Errorf("finding contains part of the token: %s", f)
				}
			}
		})
	}
}

func TestS3Findings(t *testing.T) {
	denied := func(action string) error {
		return apiError(action, "AccessDenied", "Access Denied", 403)
	}
	tests := []struct {
		name    string
		actions []S3Action
		errs    []error
		want    []claimstest.Want
	}{
		{
			name:    "all allowed",
			actions: []S3Action{{Action: "s3:ListBucket", OK: true}, {Action: "s3:PutObject", OK: true}, {Action: "s3:DeleteObject", OK: true}},
			errs:    []error{nil, nil, nil},
		},
		{
			name: "list denied only",
			actions: []S3Action{{Action: "s3:ListBucket", Code: "AccessDenied"}, {Action: "s3:PutObject", OK: true},
				{Action: "s3:DeleteObject", OK: true}},
			errs: []error{denied("ListObjectsV2"), nil, nil},
			want: []claimstest.Want{{ID: findings.IDS3AccessDenied, Severity: findings.SeverityError,
				FixHas:  []string{`{"Sid":"ListBucket","Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::my-bucket"}`, "--bucket my-bucket"},
				WhatHas: []string{"may not s3:ListBucket on bucket my-bucket"}}},
		},
		{
			name: "put and delete denied",
			actions: []S3Action{{Action: "s3:ListBucket", OK: true}, {Action: "s3:PutObject", Code: "AccessDenied"},
				{Action: "s3:DeleteObject", Code: "AccessDenied"}},
			errs: []error{nil, denied("PutObject"), denied("DeleteObject")},
			want: []claimstest.Want{{ID: findings.IDS3AccessDenied, Severity: findings.SeverityError,
				FixHas: []string{`"Action":["s3:PutObject","s3:DeleteObject"],"Resource":"arn:aws:s3:::my-bucket/*"`}}},
		},
		{
			name: "delete denied after a successful put leaves the object",
			actions: []S3Action{{Action: "s3:ListBucket", OK: true}, {Action: "s3:PutObject", OK: true},
				{Action: "s3:DeleteObject", Code: "AccessDenied"}},
			errs: []error{nil, nil, denied("DeleteObject")},
			want: []claimstest.Want{{ID: findings.IDS3AccessDenied, Severity: findings.SeverityError, WhatHas: []string{"probe object credsidecar-check/x.txt was left"}}},
		},
		{
			name: "no such bucket",
			actions: []S3Action{{Action: "s3:ListBucket", Code: "NoSuchBucket"}, {Action: "s3:PutObject", Code: "NoSuchBucket"},
				{Action: "s3:DeleteObject", Code: "NoSuchBucket"}},
			errs: []error{apiError("ListObjectsV2", "NoSuchBucket", "", 404), apiError("PutObject", "NoSuchBucket", "", 404), apiError("DeleteObject", "NoSuchBucket", "", 404)},
			want: []claimstest.Want{{ID: findings.IDS3NoSuchBucket, Severity: findings.SeverityError, WhatHas: []string{"my-bucket"}}},
		},
		{
			name: "unreachable",
			actions: []S3Action{{Action: "s3:ListBucket", Code: "NoAnswer"}, {Action: "s3:PutObject", Code: "NoAnswer"},
				{Action: "s3:DeleteObject", Code: "NoAnswer"}},
			errs: []error{sendError(os.NewSyscallError("connect", syscall.ECONNREFUSED)), sendError(syscall.ECONNREFUSED), sendError(syscall.ECONNREFUSED)},
			want: []claimstest.Want{{ID: findings.IDS3Unreachable, Severity: findings.SeverityError, WhatHas: []string{"S3 at http://127.0.0.1:9/my-bucket"}, FixHas: []string{"--s3-endpoint"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := &S3Result{Bucket: "my-bucket", Endpoint: "http://127.0.0.1:9/my-bucket", Key: "credsidecar-check/x.txt", Actions: tt.actions}
			claimstest.Check(t, s3Findings(res, tt.errs, testRole, "eu-west-1", 10*time.Second), tt.want)
		})
	}
}

func TestParseRoleARN(t *testing.T) {
	tests := []struct{ name, arn, partition, account, role string }{
		{"plain", testRole, "aws", "111122223333", "AKS-S3-Access-Role"},
		{"with path", "arn:aws-cn:iam::444455556666:role/team/app", "aws-cn", "444455556666", "app"},
		{"not an arn", "role/x", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, a, r := parseRoleARN(tt.arn)
			if p != tt.partition || a != tt.account || r != tt.role {
				t.Errorf("parseRoleARN(%q) = %q %q %q", tt.arn, p, a, r)
			}
		})
	}
}

func TestScrub(t *testing.T) {
	tests := []struct{ name, in, token, want string }{
		{"whole token", "got a.bbbbbbbbbbbbbbbbbbbb.c here", "a.bbbbbbbbbbbbbbbbbbbb.c", "got [token] here"},
		{"long segment alone", "payload bbbbbbbbbbbbbbbbbbbb leaked", "a.bbbbbbbbbbbbbbbbbbbb.c", "payload [token] leaked"},
		{"newlines collapse", "line one\nline two", "", "line one line two"},
		{"long message is cut", strings.Repeat("x", 400), "", strings.Repeat("x", 300) + "..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := scrub(tt.in, []byte(tt.token)); got != tt.want {
				t.Errorf("scrub = %q, want %q", got, tt.want)
			}
		})
	}
}

// The SDK must keep wrapping errors the way these tests build them; a real closed port proves it.
func TestDescribeNetErrorOnRealDial(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = (&net.Dialer{Timeout: time.Second}).Dial("tcp", addr)
	if err == nil {
		t.Skip("the closed port was taken again")
	}
	kind, fix := describeNetError(sendError(err), addr, time.Second)
	if !strings.Contains(kind, "refused") || !strings.Contains(fix, addr) {
		t.Errorf("kind %q fix %q", kind, fix)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial error %v is not ECONNREFUSED", err)
	}
}
