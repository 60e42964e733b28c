package testbed

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// TestKubeAPI starts a real API server and proves what the webhook and issuer tests rely on: it
// signs TokenRequest tokens with exactly the audience asked for, anonymous clients can read its
// discovery document and JWKS (as STS does), and SeaweedFS trusting its issuer exchanges such a
// token for credentials that can write to the bucket.
func TestKubeAPI(t *testing.T) {
	k := StartKubeAPIForTest(t, KubeAPIOptions{})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	err := k.CreateServiceAccount(ctx, DefaultNamespace, DefaultServiceAccount, map[string]string{"example.com/x": "y"})
	if err != nil {
		t.Fatal(err)
	}
	var ae *APIError
	err = k.CreateServiceAccount(ctx, DefaultNamespace, DefaultServiceAccount, nil)
	if !errors.As(err, &ae) || ae.Code != http.StatusConflict || ae.Reason != "AlreadyExists" {
		t.Errorf("second create = %v, want an APIError 409 AlreadyExists", err)
	}
	audience := k.Issuer() + "/"
	token, err := k.TokenRequest(ctx, DefaultNamespace, DefaultServiceAccount, []string{audience}, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	header, claims, err := ParseUnverified(token)
	if err != nil {
		t.Fatal(err)
	}
	if claims.Issuer != k.Issuer() || claims.Subject != Subject(DefaultNamespace, DefaultServiceAccount) ||
		!slices.Equal(claims.Audience, []string{audience}) {
		t.Errorf("token iss %q sub %q aud %q; want %q, %q, [%q]", claims.Issuer, claims.Subject, claims.Audience,
			k.Issuer(), Subject(DefaultNamespace, DefaultServiceAccount), audience)
	}

	// Anonymous, as STS: no Authorization header, only the CA.
	pem, err := os.ReadFile(k.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("%s holds no certificate", k.CAFile())
	}
	anon := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	var discovery struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	getJSON(t, anon, k.Issuer()+"/.well-known/openid-configuration", &discovery)
	if discovery.Issuer != k.Issuer() || discovery.JWKSURI != k.Issuer()+"/openid/v1/jwks" {
		t.Errorf("discovery issuer %q jwks_uri %q, want %q and %q", discovery.Issuer, discovery.JWKSURI,
			k.Issuer(), k.Issuer()+"/openid/v1/jwks")
	}
	var jwks JWKS
	getJSON(t, anon, discovery.JWKSURI, &jwks)
	if !slices.ContainsFunc(jwks.Keys, func(j JWK) bool { return j.Kid == header.Kid }) {
		t.Errorf("JWKS %+v lacks the token's kid %q", jwks.Keys, header.Kid)
	}

	weed := StartSeaweedFSForTest(t, SeaweedFSOptions{IAM: ptr(KubeAPIIAMConfig(k, DefaultBucket, audience))})
	out, err := weed.STSClient().AssumeRoleWithWebIdentity(ctx, &sts.AssumeRoleWithWebIdentityInput{
		RoleArn:          aws.String(DefaultRoleARN),
		RoleSessionName:  aws.String("kubeapi-test"),
		WebIdentityToken: aws.String(token),
	})
	if err != nil {
		t.Fatalf("AssumeRoleWithWebIdentity with the API server's token: %v%s", err, weed.LogTail())
	}
	c := out.Credentials
	s3c := weed.S3Client(credentials.NewStaticCredentialsProvider(aws.ToString(c.AccessKeyId),
		aws.ToString(c.SecretAccessKey), aws.ToString(c.SessionToken)))
	if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(DefaultBucket), Key: aws.String("kubeapi.txt"),
		Body: strings.NewReader("from a kube-apiserver token")}); err != nil {
		t.Errorf("PutObject with the exchanged credentials: %v", err)
	}

	// Another service account's token is refused by the role's trust policy.
	if err := k.CreateServiceAccount(ctx, DefaultNamespace, "other", nil); err != nil {
		t.Fatal(err)
	}
	other, err := k.TokenRequest(ctx, DefaultNamespace, "other", []string{audience}, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	_, err = weed.STSClient().AssumeRoleWithWebIdentity(ctx, &sts.AssumeRoleWithWebIdentityInput{
		RoleArn: aws.String(DefaultRoleARN), RoleSessionName: aws.String("kubeapi-other"), WebIdentityToken: aws.String(other),
	})
	if code, _ := apiError(t, err); code != "AccessDenied" {
		t.Errorf("other service account's token: %s, want AccessDenied", code)
	}
}

func ptr[T any](v T) *T { return &v }
