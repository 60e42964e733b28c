package upload

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"

	"github.com/aws/smithy-go"
)

// The steps a run goes through; a Failure names the one that failed.
const (
	StepCredentials = "credentials"
	StepIdentity    = "identity"
	StepUpload      = "upload"
	StepVerify      = "verify"
)

// Failure is a failed step, with the AWS error code and the most likely cause spelled out for
// the person reading the pod log. Main exits 1 on it.
type Failure struct {
	Step      string // one of the Step constants
	Operation string // AWS operation that failed, e.g. "PutObject"; empty when none ran
	Code      string // AWS error code, e.g. "AccessDenied"; empty when AWS sent none
	Status    int    // HTTP status of the failed response; 0 when there was none
	Cause     string // the likely misconfiguration behind it
	Err       error
}

// Error renders step, operation, code, status, cause and the SDK's own message on one line.
func (f *Failure) Error() string {
	var b strings.Builder
	b.WriteString(f.Step)
	b.WriteString(" failed")
	if f.Operation != "" {
		b.WriteString(": ")
		b.WriteString(f.Operation)
	}
	if f.Code != "" {
		b.WriteString(": ")
		b.WriteString(f.Code)
	}
	if f.Status != 0 {
		fmt.Fprintf(&b, " (HTTP %d)", f.Status)
	}
	if f.Cause != "" {
		b.WriteString(": ")
		b.WriteString(f.Cause)
	}
	if f.Err != nil {
		b.WriteString(": ")
		b.WriteString(f.Err.Error())
	}
	return b.String()
}

// Unwrap returns the SDK error, so errors.As still finds the smithy types.
func (f *Failure) Unwrap() error { return f.Err }

// target is what the explanations refer to: the names a person has to fix.
type target struct {
	Bucket   string
	Key      string
	Region   string
	Endpoint string // S3 endpoint override, empty for AWS
	// The container-credentials settings as this container sees them.
	FullURI     string
	RelativeURI string
	TokenFile   string
	Token       bool // AWS_CONTAINER_AUTHORIZATION_TOKEN is set (its value is never kept)
	// statFile reports whether a file can be opened; os.Stat in production.
	statFile func(string) error
}

func targetFromEnv(cfg Config, getenv func(string) string) target {
	return target{
		Bucket:      cfg.Bucket,
		Key:         cfg.Key,
		Region:      cfg.Region,
		Endpoint:    cfg.Endpoint,
		FullURI:     getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI"),
		RelativeURI: getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"),
		TokenFile:   getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"),
		Token:       getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN") != "",
		statFile:    func(p string) error { _, err := os.Stat(p); return err },
	}
}

// explain turns an error from one step into a Failure. It is the one place that maps AWS
// error codes to causes; table tests pin every mapping.
func explain(step string, err error, t target) *Failure {
	f := &Failure{Step: step, Err: err}
	var oe *smithy.OperationError
	if errors.As(err, &oe) {
		f.Operation = oe.OperationName
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		f.Code = ae.ErrorCode()
	}
	var hs interface{ HTTPStatusCode() int }
	if errors.As(err, &hs) {
		f.Status = hs.HTTPStatusCode()
	}

	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		f.Cause = "interrupted (SIGTERM, or the deadline passed) before the step finished"
		return f
	}
	if step == StepCredentials {
		if f.Operation != "GetCredentials" {
			// Another provider of the default chain (IMDS, SSO) failed last: naming its
			// operation would point away from the sidecar.
			f.Operation = ""
		}
		f.Cause = credentialsCause(err, f.Status, t)
		return f
	}
	if c := commonCause(f.Code); c != "" {
		f.Cause = c
		return f
	}
	switch step {
	case StepIdentity:
		f.Cause = identityCause(f.Code)
	case StepUpload:
		f.Cause = uploadCause(f.Code, f.Status, t)
	case StepVerify:
		f.Cause = verifyCause(f.Code, f.Status, t)
	}
	if f.Cause == "" && f.Code == "" && f.Status == 0 {
		f.Cause = networkCause(err, step, t)
	}
	return f
}

// commonCause covers the codes any signed AWS call can return.
func commonCause(code string) string {
	switch code {
	case "ExpiredToken", "ExpiredTokenException", "TokenRefreshRequired":
		return "the session credentials have expired: the credentials endpoint served stale credentials, or this container's clock is wrong"
	case "InvalidClientTokenId", "InvalidAccessKeyId", "UnrecognizedClientException":
		return "AWS does not recognise the access key: the credentials come from another account, partition or test endpoint, or were revoked"
	case "SignatureDoesNotMatch":
		return "the request signature does not match: the secret key does not belong to the access key id, or a proxy rewrote the request"
	case "RequestTimeTooSkewed":
		return "this container's clock differs from AWS's by more than 15 minutes: fix the node's time sync"
	case "Throttling", "ThrottlingException", "SlowDown", "RequestLimitExceeded", "TooManyRequestsException":
		return "AWS throttled the request: too many callers share this role or bucket prefix; retry later"
	}
	return ""
}

func identityCause(code string) string {
	switch code {
	case "AccessDenied", "AccessDeniedException":
		return "sts:GetCallerIdentity needs no IAM permission, so an SCP or permissions boundary denies it explicitly"
	case "RegionDisabledException":
		return "STS is not activated in this region for the account: activate it in IAM account settings, or set AWS_REGION to an enabled region"
	}
	return ""
}

func uploadCause(code string, status int, t target) string {
	objects := "arn:aws:s3:::" + t.Bucket + "/*"
	switch code {
	case "AccessDenied", "Forbidden", "AllAccessDisabled":
		return "the role's permission policy is missing s3:PutObject on " + objects +
			" (or a bucket policy, SCP, or the bucket's KMS key policy denies it)"
	case "NoSuchBucket":
		return fmt.Sprintf("bucket %q does not exist%s: check --bucket / S3_BUCKET_NAME", t.Bucket, t.where())
	case "PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException":
		return fmt.Sprintf("bucket %q is not in region %s: set --region / AWS_REGION to the bucket's region", t.Bucket, t.Region)
	case "InvalidBucketName":
		return fmt.Sprintf("%q is not a valid bucket name for this store", t.Bucket)
	case "NoSuchUpload":
		return "the multipart upload disappeared while parts were sent: a lifecycle rule or another client aborted it"
	case "EntityTooSmall":
		return "a part was smaller than the store's minimum: raise --part-size"
	case "BadDigest", "InvalidDigest", "XAmzContentChecksumMismatch":
		return "the data changed in transit: the checksum the store computed differs from the one sent (was the file modified during the upload?)"
	case "KMS.AccessDeniedException", "KMS.DisabledException", "KMS.NotFoundException":
		return "the bucket encrypts with a KMS key the role may not use: grant kms:GenerateDataKey and kms:Decrypt on it"
	}
	if status == 403 {
		return "the role's permission policy is missing s3:PutObject on " + objects
	}
	if status == 404 {
		return fmt.Sprintf("bucket %q was not found%s", t.Bucket, t.where())
	}
	return ""
}

func verifyCause(code string, status int, t target) string {
	switch {
	case code == "AccessDenied" || code == "Forbidden" || status == 403:
		// HEAD responses have no body, so S3 reports plain 403 "Forbidden".
		return "the role's permission policy is missing s3:GetObject on arn:aws:s3:::" + t.Bucket + "/* (HeadObject needs it to confirm the upload)"
	case code == "NotFound" || code == "NoSuchKey" || status == 404:
		return fmt.Sprintf("object %q is gone right after a successful upload: another client deleted it, or a lifecycle rule did", t.Key)
	}
	return ""
}

// networkCause explains errors that never reached AWS.
func networkCause(err error, step string, t target) string {
	endpoint := t.Endpoint
	if step == StepIdentity {
		endpoint = "STS"
	}
	if endpoint == "" {
		endpoint = "the regional AWS endpoint"
	}
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr):
		return fmt.Sprintf("cannot resolve %s: check the cluster's DNS and --region / the endpoint URL", dnsErr.Name)
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused by " + endpoint + ": check the endpoint URL and that the store is up"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timed out talking to " + endpoint + ": an egress firewall or proxy may block it"
	}
	return ""
}

// credentialsCause explains why the SDK's default chain produced no credentials, from what this
// container's environment says about the credsidecar endpoint.
func credentialsCause(err error, status int, t target) string {
	if t.FullURI == "" {
		if t.RelativeURI != "" {
			return "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI is set (ECS-style) and AWS_CONTAINER_CREDENTIALS_FULL_URI is not: remove the RELATIVE_URI variable; the credsidecar is reached through FULL_URI"
		}
		return "no credential source: AWS_CONTAINER_CREDENTIALS_FULL_URI is not set in this container, so the credsidecar was not injected into this workload (or its env vars were dropped)"
	}
	uri := t.FullURI
	if t.RelativeURI != "" {
		return "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI is set and wins over AWS_CONTAINER_CREDENTIALS_FULL_URI in most SDKs: remove it"
	}
	if u, perr := url.Parse(uri); perr == nil && u.Hostname() != "127.0.0.1" && u.Hostname() != "::1" && strings.Contains(err.Error(), "host") {
		return fmt.Sprintf("the SDK refuses %s: plain-http credential endpoints must be on loopback, use http://127.0.0.1:<port>/v1/credentials", uri)
	}
	switch {
	case t.TokenFile == "" && !t.Token:
		return "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE is not set: point it at the sidecar's --auth-token-file (e.g. /var/run/credsidecar/auth-token)"
	case t.TokenFile != "" && t.statFile != nil && t.statFile(t.TokenFile) != nil:
		return fmt.Sprintf("auth token file %s is missing: the shared emptyDir is not mounted in this container, or the sidecar has not started (it writes the file at start)", t.TokenFile)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("nothing listens at %s: the sidecar is not running or not ready; it must be a native sidecar (initContainers with restartPolicy: Always) so it starts first", uri)
	}
	switch status {
	case 401, 403:
		return "the sidecar rejected the auth token: AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE names a different file than the sidecar's --auth-token-file"
	case 404:
		return fmt.Sprintf("the sidecar does not serve %s: the path must be /v1/credentials", uri)
	case 503:
		return "the sidecar has no valid credentials yet: its STS AssumeRoleWithWebIdentity is failing; the sidecar's log names the STS error (trust policy sub/aud condition, OIDC provider, token audience)"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Sprintf("%s did not answer in time: the sidecar is overloaded or stuck", uri)
	}
	return fmt.Sprintf("could not get credentials from %s", uri)
}

// where renders " in <region>" or " at <endpoint>" for bucket messages.
func (t target) where() string {
	if t.Endpoint != "" {
		return " at " + t.Endpoint
	}
	return " in " + t.Region
}
