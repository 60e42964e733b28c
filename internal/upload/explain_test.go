package upload

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// awsErr builds an error the way the SDK's deserializers and operation middleware wrap one.
func awsErr(service, op string, status int, apiErr error) error {
	return &smithy.OperationError{
		ServiceID:     service,
		OperationName: op,
		Err: &awshttp.ResponseError{
			ResponseError: &smithyhttp.ResponseError{
				Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
				Err:      apiErr,
			},
			RequestID: "req-1",
		},
	}
}

func generic(code string) error {
	return &smithy.GenericAPIError{Code: code, Message: code + " message"}
}

func TestExplain(t *testing.T) {
	tgt := target{Bucket: "my-bucket", Key: "uploads/x.txt", Region: "ap-northeast-2"}
	tests := []struct {
		name   string
		step   string
		err    error
		tgt    *target
		want   Failure // Err is not compared
		substr []string
	}{
		{
			name:   "PutObject AccessDenied names the missing permission",
			step:   StepUpload,
			err:    awsErr("S3", "PutObject", 403, generic("AccessDenied")),
			want:   Failure{Step: StepUpload, Operation: "PutObject", Code: "AccessDenied", Status: 403},
			substr: []string{"missing s3:PutObject on arn:aws:s3:::my-bucket/*"},
		},
		{
			name:   "multipart part AccessDenied under the transfer manager's wrapper",
			step:   StepUpload,
			err:    fmt.Errorf("upload multipart failed, upload id: abc, cause: %w", awsErr("S3", "UploadPart", 403, generic("AccessDenied"))),
			want:   Failure{Step: StepUpload, Operation: "UploadPart", Code: "AccessDenied", Status: 403},
			substr: []string{"s3:PutObject on arn:aws:s3:::my-bucket/*"},
		},
		{
			name:   "NoSuchBucket typed error",
			step:   StepUpload,
			err:    awsErr("S3", "PutObject", 404, &s3types.NoSuchBucket{Message: ptr("The specified bucket does not exist")}),
			want:   Failure{Step: StepUpload, Operation: "PutObject", Code: "NoSuchBucket", Status: 404},
			substr: []string{`bucket "my-bucket" does not exist in ap-northeast-2`, "S3_BUCKET_NAME"},
		},
		{
			name:   "NoSuchBucket at a custom endpoint",
			step:   StepUpload,
			err:    awsErr("S3", "CreateMultipartUpload", 404, generic("NoSuchBucket")),
			tgt:    &target{Bucket: "my-bucket", Region: "us-east-1", Endpoint: "http://127.0.0.1:8333"},
			want:   Failure{Step: StepUpload, Operation: "CreateMultipartUpload", Code: "NoSuchBucket", Status: 404},
			substr: []string{"at http://127.0.0.1:8333"},
		},
		{
			name:   "wrong region",
			step:   StepUpload,
			err:    awsErr("S3", "PutObject", 301, generic("PermanentRedirect")),
			want:   Failure{Step: StepUpload, Operation: "PutObject", Code: "PermanentRedirect", Status: 301},
			substr: []string{"not in region ap-northeast-2", "AWS_REGION"},
		},
		{
			name:   "bare 403 without a code",
			step:   StepUpload,
			err:    awsErr("S3", "PutObject", 403, &smithy.GenericAPIError{}),
			want:   Failure{Step: StepUpload, Operation: "PutObject", Status: 403},
			substr: []string{"s3:PutObject"},
		},
		{
			name:   "checksum mismatch",
			step:   StepUpload,
			err:    awsErr("S3", "UploadPart", 400, generic("BadDigest")),
			want:   Failure{Step: StepUpload, Operation: "UploadPart", Code: "BadDigest", Status: 400},
			substr: []string{"changed in transit"},
		},
		{
			name:   "expired session token on any step",
			step:   StepUpload,
			err:    awsErr("S3", "PutObject", 400, generic("ExpiredToken")),
			want:   Failure{Step: StepUpload, Operation: "PutObject", Code: "ExpiredToken", Status: 400},
			substr: []string{"expired"},
		},
		{
			name:   "HeadObject 403 needs GetObject",
			step:   StepVerify,
			err:    awsErr("S3", "HeadObject", 403, generic("Forbidden")),
			want:   Failure{Step: StepVerify, Operation: "HeadObject", Code: "Forbidden", Status: 403},
			substr: []string{"missing s3:GetObject on arn:aws:s3:::my-bucket/*"},
		},
		{
			name:   "HeadObject NotFound typed error",
			step:   StepVerify,
			err:    awsErr("S3", "HeadObject", 404, &s3types.NotFound{}),
			want:   Failure{Step: StepVerify, Operation: "HeadObject", Code: "NotFound", Status: 404},
			substr: []string{`object "uploads/x.txt" is gone`},
		},
		{
			name:   "STS unknown key",
			step:   StepIdentity,
			err:    awsErr("STS", "GetCallerIdentity", 403, generic("InvalidClientTokenId")),
			want:   Failure{Step: StepIdentity, Operation: "GetCallerIdentity", Code: "InvalidClientTokenId", Status: 403},
			substr: []string{"does not recognise the access key"},
		},
		{
			name:   "STS typed ExpiredTokenException",
			step:   StepIdentity,
			err:    awsErr("STS", "GetCallerIdentity", 400, &ststypes.ExpiredTokenException{Message: ptr("expired")}),
			want:   Failure{Step: StepIdentity, Operation: "GetCallerIdentity", Code: "ExpiredTokenException", Status: 400},
			substr: []string{"expired"},
		},
		{
			name:   "STS explicitly denied",
			step:   StepIdentity,
			err:    awsErr("STS", "GetCallerIdentity", 403, generic("AccessDenied")),
			want:   Failure{Step: StepIdentity, Operation: "GetCallerIdentity", Code: "AccessDenied", Status: 403},
			substr: []string{"SCP or permissions boundary"},
		},
		{
			name:   "signature mismatch",
			step:   StepIdentity,
			err:    awsErr("STS", "GetCallerIdentity", 403, generic("SignatureDoesNotMatch")),
			want:   Failure{Step: StepIdentity, Operation: "GetCallerIdentity", Code: "SignatureDoesNotMatch", Status: 403},
			substr: []string{"secret key does not belong"},
		},
		{
			name:   "throttled",
			step:   StepUpload,
			err:    awsErr("S3", "UploadPart", 503, generic("SlowDown")),
			want:   Failure{Step: StepUpload, Operation: "UploadPart", Code: "SlowDown", Status: 503},
			substr: []string{"throttled"},
		},
		{
			name: "connection refused before any response",
			step: StepUpload,
			err: &smithy.OperationError{ServiceID: "S3", OperationName: "PutObject",
				Err: &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}},
			tgt:    &target{Bucket: "my-bucket", Endpoint: "http://127.0.0.1:1"},
			want:   Failure{Step: StepUpload, Operation: "PutObject"},
			substr: []string{"connection refused by http://127.0.0.1:1"},
		},
		{
			name:   "DNS failure",
			step:   StepIdentity,
			err:    &smithy.OperationError{ServiceID: "STS", OperationName: "GetCallerIdentity", Err: &net.DNSError{Name: "sts.nowhere.amazonaws.com", Err: "no such host"}},
			want:   Failure{Step: StepIdentity, Operation: "GetCallerIdentity"},
			substr: []string{"cannot resolve sts.nowhere.amazonaws.com"},
		},
		{
			name:   "interrupted",
			step:   StepUpload,
			err:    &smithy.OperationError{ServiceID: "S3", OperationName: "UploadPart", Err: context.Canceled},
			want:   Failure{Step: StepUpload, Operation: "UploadPart"},
			substr: []string{"interrupted"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg := tgt
			if tt.tgt != nil {
				tg = *tt.tgt
			}
			f := explain(tt.step, tt.err, tg)
			if f.Step != tt.want.Step || f.Operation != tt.want.Operation || f.Code != tt.want.Code || f.Status != tt.want.Status {
				t.Errorf("explain = {step %q op %q code %q status %d}, want {step %q op %q code %q status %d}",
					f.Step, f.Operation, f.Code, f.Status, tt.want.Step, tt.want.Operation, tt.want.Code, tt.want.Status)
			}
			if !errors.Is(f, tt.err) {
				t.Error("Failure does not wrap the original error")
			}
			msg := f.Error()
			if tt.want.Code != "" && !strings.Contains(msg, tt.want.Code) {
				t.Errorf("message %q does not name the code %s", msg, tt.want.Code)
			}
			for _, s := range tt.substr {
				if !strings.Contains(msg, s) {
					t.Errorf("message %q lacks %q", msg, s)
				}
			}
		})
	}
}

func TestExplainCredentials(t *testing.T) {
	const uri = "http://127.0.0.1:9910/v1/credentials"
	const tokenFile = "/var/run/credsidecar/auth-token"
	present := func(string) error { return nil }
	missing := func(p string) error { return &fs.PathError{Op: "stat", Path: p, Err: fs.ErrNotExist} }
	endpointErr := func(status int, code string) error {
		return fmt.Errorf("failed to refresh cached credentials, failed to load credentials, %w",
			awsErr("", "GetCredentials", status, generic(code)))
	}
	refused := fmt.Errorf("failed to refresh cached credentials, %w",
		&smithy.OperationError{OperationName: "GetCredentials", Err: &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}})
	tests := []struct {
		name   string
		tgt    target
		err    error
		code   string
		substr string
	}{
		{
			name:   "sidecar not injected",
			tgt:    target{},
			err:    errors.New("failed to refresh cached credentials, no EC2 IMDS role found"),
			substr: "AWS_CONTAINER_CREDENTIALS_FULL_URI is not set",
		},
		{
			name:   "relative URI instead of full",
			tgt:    target{RelativeURI: "/v2/credentials/x"},
			err:    errors.New("failed to load credentials"),
			substr: "remove the RELATIVE_URI variable",
		},
		{
			name:   "relative URI shadows full",
			tgt:    target{FullURI: uri, RelativeURI: "/v2/credentials/x", TokenFile: tokenFile, statFile: present},
			err:    errors.New("failed to load credentials"),
			substr: "wins over AWS_CONTAINER_CREDENTIALS_FULL_URI",
		},
		{
			name:   "no token configured",
			tgt:    target{FullURI: uri},
			err:    endpointErr(401, "Unauthorized"),
			code:   "Unauthorized",
			substr: "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE is not set",
		},
		{
			name:   "token file not there",
			tgt:    target{FullURI: uri, TokenFile: tokenFile, statFile: missing},
			err:    errors.New("failed to load credentials, resolve auth token: open /var/run/credsidecar/auth-token: no such file or directory"),
			substr: "auth token file /var/run/credsidecar/auth-token is missing",
		},
		{
			name:   "sidecar not listening",
			tgt:    target{FullURI: uri, TokenFile: tokenFile, statFile: present},
			err:    refused,
			substr: "nothing listens at " + uri,
		},
		{
			name:   "wrong auth token",
			tgt:    target{FullURI: uri, TokenFile: tokenFile, statFile: present},
			err:    endpointErr(401, "Unauthorized"),
			code:   "Unauthorized",
			substr: "rejected the auth token",
		},
		{
			name:   "sidecar has no credentials",
			tgt:    target{FullURI: uri, TokenFile: tokenFile, statFile: present},
			err:    endpointErr(503, "CredentialsUnavailable"),
			code:   "CredentialsUnavailable",
			substr: "STS AssumeRoleWithWebIdentity is failing",
		},
		{
			name:   "wrong path",
			tgt:    target{FullURI: "http://127.0.0.1:9910/credentials", TokenFile: tokenFile, statFile: present},
			err:    endpointErr(404, "NotFound"),
			code:   "NotFound",
			substr: "the path must be /v1/credentials",
		},
		{
			name:   "non-loopback host refused by the SDK",
			tgt:    target{FullURI: "http://credsidecar:9910/v1/credentials", TokenFile: tokenFile, statFile: present},
			err:    errors.New("failed to load credentials, invalid endpoint host, \"credsidecar\", only loopback hosts are allowed"),
			substr: "must be on loopback",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := explain(StepCredentials, tt.err, tt.tgt)
			if f.Step != StepCredentials || f.Code != tt.code {
				t.Errorf("step %q code %q, want %q %q", f.Step, f.Code, StepCredentials, tt.code)
			}
			if !strings.Contains(f.Error(), tt.substr) {
				t.Errorf("message %q lacks %q", f.Error(), tt.substr)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
