package issuer

import (
	"context"
	"errors"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/endpointcreds"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// credentialsFrom is the AWS SDK's default chain for the places a publisher runs, in the SDK's
// order: static keys in the environment (CI, or a workstation after `aws configure
// export-credentials --format env`), a web-identity token (IRSA-style pods), and the container
// endpoint (a pod with the credsidecar sidecar). It is built by hand because
// aws-sdk-go-v2/config, which also reads profiles and SSO caches, costs the sidecar binary
// 1.5 MiB of resident memory at start (its services' endpoint tables), which `serve` would pay
// for nothing.
func credentialsFrom(getenv func(string) string, region string) (aws.CredentialsProvider, string, error) {
	if id, secret := getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_SECRET_ACCESS_KEY"); id != "" && secret != "" {
		return credentials.NewStaticCredentialsProvider(id, secret, getenv("AWS_SESSION_TOKEN")), "AWS_ACCESS_KEY_ID", nil
	}
	if file, role := getenv("AWS_WEB_IDENTITY_TOKEN_FILE"), getenv("AWS_ROLE_ARN"); file != "" && role != "" {
		client := sts.New(sts.Options{Region: region, BaseEndpoint: endpointOr(getenv("AWS_ENDPOINT_URL_STS"), getenv("AWS_ENDPOINT_URL"))})
		return stscreds.NewWebIdentityRoleProvider(client, role, stscreds.IdentityTokenFile(file), func(o *stscreds.WebIdentityRoleOptions) {
			o.RoleSessionName = "credsidecar-issuer-publish"
		}), "AWS_WEB_IDENTITY_TOKEN_FILE", nil
	}
	uri := getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI")
	if rel := getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"); uri == "" && rel != "" {
		uri = "http://169.254.170.2" + rel
	}
	if uri != "" {
		tokenFile, token := getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"), getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN")
		return endpointcreds.New(uri, func(o *endpointcreds.Options) {
			o.HTTPClient = &http.Client{Timeout: 5 * time.Second}
			switch {
			case tokenFile != "":
				// Read at every fetch, as the SDKs do: the sidecar may rotate it.
				o.AuthorizationTokenProvider = endpointcreds.TokenProviderFunc(func() (string, error) {
					b, err := os.ReadFile(tokenFile)
					return strings.TrimSpace(string(b)), err
				})
			case token != "":
				o.AuthorizationToken = token
			}
		}), "AWS_CONTAINER_CREDENTIALS_FULL_URI", nil
	}
	return nil, "", errors.New("no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (from a profile or SSO: " +
		`eval "$(aws configure export-credentials --format env)"), or run in a pod with the credsidecar sidecar`)
}

func endpointOr(values ...string) *string {
	for _, v := range values {
		if v != "" {
			return aws.String(v)
		}
	}
	return nil
}

// retrieve checks that the chain yields credentials before anything is read from the API server.
func retrieve(ctx context.Context, p aws.CredentialsProvider, from string) error {
	if _, err := p.Retrieve(ctx); err != nil {
		return errors.New("AWS credentials from " + from + ": " + err.Error())
	}
	return nil
}
