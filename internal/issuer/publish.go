package issuer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/credsidecar/credsidecar/internal/clock"
)

// S3API is the part of the S3 client publish uses; *s3.Client implements it.
type S3API interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	GetBucketPolicy(ctx context.Context, in *s3.GetBucketPolicyInput, opts ...func(*s3.Options)) (*s3.GetBucketPolicyOutput, error)
	PutBucketPolicy(ctx context.Context, in *s3.PutBucketPolicyInput, opts ...func(*s3.Options)) (*s3.PutBucketPolicyOutput, error)
}

// CacheControl is sent with both documents: STS and the SDKs cache the JWKS anyway, and a key
// added is visible within five minutes.
const CacheControl = "public, max-age=300"

// Publisher publishes one cluster's issuer documents to one bucket.
type Publisher struct {
	Kube            *Kube
	S3              S3API
	Bucket, Prefix  string
	PublicURL       string
	SetBucketPolicy bool
	// Public fetches the published documents anonymously; it trusts the system's roots (and
	// SSL_CERT_FILE), as STS trusts public CAs.
	Public *http.Client
	Log    *slog.Logger
}

// Result is what one publish did.
type Result struct {
	Docs *Documents
	// Uploaded lists the object keys written; empty when the bucket was already current.
	Uploaded []string
	// PolicyUpdated is true when the bucket policy was written.
	PolicyUpdated bool
}

// Publish reads the documents from the API server, uploads those that changed, sets the bucket
// policy when asked, and fetches both from the public URL to compare them with what it uploaded.
func (p *Publisher) Publish(ctx context.Context) (*Result, error) {
	disc, err := p.Kube.Get(ctx, DiscoveryPath)
	if err != nil {
		return nil, err
	}
	jwks, err := p.Kube.Get(ctx, JWKSPath)
	if err != nil {
		return nil, err
	}
	docs, err := Rewrite(disc, jwks, p.PublicURL)
	if err != nil {
		return nil, err
	}
	res := &Result{Docs: docs}
	for _, d := range []struct {
		path string
		body []byte
	}{{DiscoveryPath, docs.Discovery}, {JWKSPath, docs.JWKS}} {
		key := objectKey(p.Prefix, d.path)
		current, err := p.get(ctx, key)
		if err != nil {
			return nil, err
		}
		if current != nil && SameJSON(current, d.body) {
			continue
		}
		_, err = p.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(p.Bucket), Key: aws.String(key),
			Body: strings.NewReader(string(d.body)), ContentType: aws.String("application/json"),
			CacheControl: aws.String(CacheControl)})
		if err != nil {
			return nil, fmt.Errorf("upload s3://%s/%s: %w", p.Bucket, key, err)
		}
		res.Uploaded = append(res.Uploaded, key)
	}
	if p.SetBucketPolicy {
		if res.PolicyUpdated, err = p.setPolicy(ctx); err != nil {
			return nil, err
		}
	}
	if err := p.verify(ctx, docs); err != nil {
		return res, err
	}
	return res, nil
}

// get returns an object's content, or nil when it does not exist.
func (p *Publisher) get(ctx context.Context, key string) ([]byte, error) {
	out, err := p.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(p.Bucket), Key: aws.String(key)})
	if err != nil {
		var ae smithy.APIError
		if errors.As(err, &ae) && (ae.ErrorCode() == "NoSuchKey" || ae.ErrorCode() == "NotFound") {
			return nil, nil
		}
		return nil, fmt.Errorf("read s3://%s/%s: %w", p.Bucket, key, err)
	}
	defer out.Body.Close()
	return io.ReadAll(io.LimitReader(out.Body, maxDocument))
}

func (p *Publisher) setPolicy(ctx context.Context) (bool, error) {
	var current []byte
	out, err := p.S3.GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: aws.String(p.Bucket)})
	switch {
	case err == nil:
		current = []byte(aws.ToString(out.Policy))
	default:
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() != "NoSuchBucketPolicy" {
			return false, fmt.Errorf("read the policy of bucket %s: %w", p.Bucket, err)
		}
	}
	policy, changed, err := MergePolicy(current, p.Bucket, p.Prefix)
	if err != nil || !changed {
		return false, err
	}
	if _, err := p.S3.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String(p.Bucket),
		Policy: aws.String(string(policy))}); err != nil {
		return false, fmt.Errorf("set the policy of bucket %s: %w", p.Bucket, err)
	}
	return true, nil
}

// verify fetches both documents from the public URL anonymously and compares them with docs.
func (p *Publisher) verify(ctx context.Context, docs *Documents) error {
	base := strings.TrimSuffix(p.PublicURL, "/")
	for _, d := range []struct {
		path string
		want []byte
	}{{DiscoveryPath, docs.Discovery}, {JWKSPath, docs.JWKS}} {
		got, err := FetchPublic(ctx, p.Public, base+d.path)
		var se *StatusError
		switch {
		case errors.As(err, &se) && (se.Code == http.StatusForbidden || se.Code == http.StatusUnauthorized):
			return fmt.Errorf("uploaded, but STS could not read it: %w; allow anonymous s3:GetObject on the two objects "+
				"(--set-bucket-policy does, and the bucket's Block Public Access must allow a public policy)", err)
		case err != nil:
			return fmt.Errorf("uploaded, but STS could not read it: %w", err)
		case !SameJSON(got, d.want):
			return fmt.Errorf("%s%s serves another document than was uploaded: is --public-url the bucket and prefix "+
				"(a CDN in front may still cache the old one)?", base, d.path)
		}
	}
	return nil
}

// NextSteps writes what is left to do, copy-pasteable: the API server flags and the IAM OIDC
// provider, and a warning when the API server's tokens still carry another issuer.
func NextSteps(w io.Writer, docs *Documents, publicURL, audience string) {
	publicURL = strings.TrimSuffix(publicURL, "/")
	fmt.Fprintf(w, "Published %s%s and %s%s (keys: %s).\n\n", publicURL, DiscoveryPath, publicURL, JWKSPath,
		strings.Join(docs.Kids, ", "))
	if docs.APIIssuer != publicURL {
		fmt.Fprintf(w, "WARNING: the API server's issuer is %s, not %s: its tokens carry iss=%s, which STS cannot\n"+
			"verify against the published documents. Restart the API server with these flags (the public URL first:\n"+
			"new tokens carry it; the old issuer second, so tokens issued before stay valid until they expire):\n\n",
			docs.APIIssuer, publicURL, docs.APIIssuer)
		fmt.Fprintf(w, "  --service-account-issuer=%s\n  --service-account-issuer=%s\n  --service-account-jwks-uri=%s%s\n\n",
			publicURL, docs.APIIssuer, publicURL, JWKSPath)
	} else {
		fmt.Fprintf(w, "The API server's issuer is the public URL. Its flags, for reference:\n\n"+
			"  --service-account-issuer=%s\n  --service-account-jwks-uri=%s%s\n\n", publicURL, publicURL, JWKSPath)
	}
	if audience == "" {
		audience = publicURL + "/"
	}
	fmt.Fprintf(w, "Register the issuer with IAM once (the audience is what the projected tokens carry):\n\n"+
		"  aws iam create-open-id-connect-provider --url %s --client-id-list %s\n\n", publicURL, audience)
	fmt.Fprintf(w, "Keep it current when the signing key rotates: run this command again (the CronJob in\n"+
		"manifests/issuer-publish, or --watch), after adding the new key to --service-account-key-file and before\n"+
		"making it the signing key.\n")
}

// Watch publishes now and then every interval until ctx is done, logging each change: a key
// added to the API server's JWKS is published within one interval. Failures are logged and
// retried at the next interval; Watch returns nil when ctx is done.
func (p *Publisher) Watch(ctx context.Context, clk clock.Clock, interval time.Duration, published func(*Result, error)) error {
	t := clk.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
		}
		res, err := p.Publish(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			p.Log.Error("publish issuer failed; retrying", "error", err.Error(), "retry_in", interval.String())
		case len(res.Uploaded) > 0 || res.PolicyUpdated:
			p.Log.Info("issuer published", "uploaded", res.Uploaded, "policy_updated", res.PolicyUpdated, "kids", res.Docs.Kids)
		default:
			p.Log.Debug("issuer unchanged", "kids", res.Docs.Kids)
		}
		if published != nil {
			published(res, err)
		}
		t.Reset(interval)
	}
}
