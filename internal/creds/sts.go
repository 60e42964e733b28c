package creds

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// STSAPI is the one STS call the Manager makes.
type STSAPI interface {
	AssumeRoleWithWebIdentity(ctx context.Context, in *sts.AssumeRoleWithWebIdentityInput, optFns ...func(*sts.Options)) (*sts.AssumeRoleWithWebIdentityOutput, error)
}

var _ STSAPI = (*sts.Client)(nil)

// NewSTSClient returns an STS client for region, or for endpoint when it is not empty.
// It is built from explicit options only, so the sidecar's own environment and shared config
// (which may carry AWS_ROLE_ARN, keys or endpoint overrides meant for someone else) play no
// part. AssumeRoleWithWebIdentity is unsigned, hence anonymous credentials. The SDK's retries
// are off: the Manager's backoff decides, and counts, every attempt.
func NewSTSClient(region, endpoint string) *sts.Client {
	opts := sts.Options{
		Region:           region,
		Credentials:      aws.AnonymousCredentials{},
		Retryer:          aws.NopRetryer{},
		RetryMaxAttempts: 1,
	}
	if endpoint != "" {
		opts.BaseEndpoint = aws.String(endpoint)
	}
	return sts.New(opts)
}
