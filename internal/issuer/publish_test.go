package issuer

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/credsidecar/credsidecar/internal/app"
	"github.com/credsidecar/credsidecar/internal/clock"
	"github.com/credsidecar/credsidecar/internal/config"
	"github.com/credsidecar/credsidecar/internal/testkit/await"
	"github.com/credsidecar/credsidecar/internal/testkit/sidecartest"
	"github.com/credsidecar/credsidecar/internal/testkit/testbed"
)

const guard = 90 * time.Second

// s3Cert is the certificate SeaweedFS serves https with, made before any test runs: its CA is
// SSL_CERT_FILE, the system roots of this test binary, as a public CA is AWS STS's and the
// publisher's (Go loads the system roots once, at first use).
var s3Cert *testbed.ServingCert

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "credsidecar-issuer-")
	if err == nil {
		s3Cert, err = testbed.NewServingCert(dir, "s3")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("SSL_CERT_FILE", s3Cert.CAFile)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// kidOf is the key id in a JWT's header.
func kidOf(t *testing.T, jwt string) string {
	t.Helper()
	head, err := base64.RawURLEncoding.DecodeString(strings.Split(jwt, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h struct{ Kid string }
	if err := json.Unmarshal(head, &h); err != nil {
		t.Fatal(err)
	}
	return h.Kid
}

// TestPublishOnRealParts: a real kube-apiserver whose issuer is a SeaweedFS bucket's https URL;
// `sidecar issuer publish` uploads its documents there and opens them to anonymous readers;
// SeaweedFS's STS, trusting that issuer, fetches them like AWS STS and admits the API server's
// tokens, which go through the sidecar to an S3 upload. Then the signing key rotates: a token
// signed with the new key is refused until publish runs again, and admitted after.
func TestPublishOnRealParts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*guard)
	defer cancel()
	port, err := testbed.PickPort()
	if err != nil {
		t.Fatal(err)
	}
	const prefix = "clusters/kind-a"
	publicURL := fmt.Sprintf("https://127.0.0.1:%d/%s/%s", port, testbed.DefaultBucket, prefix)
	audience := publicURL + "/"

	kube, err := testbed.StartKubeAPI(ctx, testbed.KubeAPIOptions{Issuer: publicURL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kube.Close() })
	iam := testbed.PublishedIssuerIAMConfig(publicURL, s3Cert.CAFile, testbed.DefaultBucket, audience)
	weed := testbed.StartSeaweedFSForTest(t, testbed.SeaweedFSOptions{IAM: &iam, TLS: s3Cert, HTTPSPort: port})
	admin, err := weed.AdminCredentials().Retrieve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The publisher's S3 credentials come from the default chain, as in a pod from the sidecar.
	t.Setenv("AWS_ACCESS_KEY_ID", admin.AccessKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", admin.SecretAccessKey)
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := kube.WriteKubeconfig(kubeconfig); err != nil {
		t.Fatal(err)
	}
	publish := func(t *testing.T) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		code := Main(ctx, []string{"publish", "--bucket", testbed.DefaultBucket, "--prefix", prefix,
			"--endpoint-url", weed.Endpoint(), "--path-style", "--public-url", publicURL, "--kubeconfig", kubeconfig,
			"--set-bucket-policy", "--audience", audience}, os.Getenv, &stdout, &stderr)
		if code != 0 {
			t.Fatalf("issuer publish: exit %d\n%s%s", code, stderr.String(), stdout.String())
		}
		return stdout.String()
	}

	out := publish(t)
	for _, want := range []string{
		"Uploaded s3://credsidecar-test/clusters/kind-a/.well-known/openid-configuration",
		"Uploaded s3://credsidecar-test/clusters/kind-a/openid/v1/jwks",
		"Added statement " + PolicySid + " to the policy of bucket credsidecar-test.",
		"The API server's issuer is the public URL.",
		"--service-account-jwks-uri=" + publicURL + "/openid/v1/jwks",
		"aws iam create-open-id-connect-provider --url " + publicURL + " --client-id-list " + audience,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("publish output lacks %q:\n%s", want, out)
		}
	}
	if out := publish(t); !strings.Contains(out, "nothing uploaded") || strings.Contains(out, "Added statement") {
		t.Errorf("a second publish with nothing changed wrote something:\n%s", out)
	}

	// A token of the API server, exchanged by the sidecar, used by an SDK for an upload.
	if err := kube.CreateServiceAccount(ctx, testbed.DefaultNamespace, testbed.DefaultServiceAccount, nil); err != nil {
		t.Fatal(err)
	}
	token := func() string {
		tok, err := kube.TokenRequest(ctx, testbed.DefaultNamespace, testbed.DefaultServiceAccount, []string{audience}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	first := token()
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(first), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Defaults()
	cfg.RoleARN, cfg.TokenFile, cfg.Region, cfg.STSEndpoint = weed.RoleARN(), tokenFile, testbed.Region, weed.Endpoint()
	cfg.Listen, cfg.MetricsListen, cfg.AuthTokenFile = "127.0.0.1:0", "127.0.0.1:0", filepath.Join(t.TempDir(), "auth-token")
	sc := sidecartest.Start(t, cfg, app.Options{}, guard, sidecartest.Ready)
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	t.Setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", sc.Addrs().CredentialsURL())
	t.Setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", cfg.AuthTokenFile)
	sdk, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(testbed.Region))
	if err != nil {
		t.Fatal(err)
	}
	client := s3.NewFromConfig(sdk, func(o *s3.Options) { o.BaseEndpoint, o.UsePathStyle = aws.String(weed.Endpoint()), true })
	if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(testbed.DefaultBucket), Key: aws.String("uploads/kind-a.txt"),
		Body: strings.NewReader("uploaded by a pod of a cluster whose issuer lives in a bucket")}); err != nil {
		t.Fatalf("upload through the sidecar with the published issuer: %v", err)
	}

	// Rotation: the API server signs with a new key and still accepts the old one.
	if err := kube.RotateSigningKey(ctx); err != nil {
		t.Fatal(err)
	}
	second := token()
	if kidOf(t, second) == kidOf(t, first) {
		t.Fatal("the rotated API server signed with the old key")
	}
	exchange := func(tok string) error {
		_, err := weed.STSClient().AssumeRoleWithWebIdentity(ctx, &sts.AssumeRoleWithWebIdentityInput{
			RoleArn: aws.String(weed.RoleARN()), RoleSessionName: aws.String("issuer-test"), WebIdentityToken: aws.String(tok)})
		return err
	}
	if err := exchange(second); err == nil {
		t.Fatal("STS admitted a token signed with a key the published JWKS lacks")
	}
	// The publisher again with its own credentials (the app's role may not touch bucket policies).
	t.Setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "")
	t.Setenv("AWS_ACCESS_KEY_ID", admin.AccessKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", admin.SecretAccessKey)
	// --watch, on a fake clock: it publishes at once (the JWKS gained a key: only it is uploaded),
	// then every interval (nothing changed: nothing uploaded).
	v, err := parse([]string{"--bucket", testbed.DefaultBucket, "--prefix", prefix, "--endpoint-url", weed.Endpoint(),
		"--path-style", "--public-url", publicURL, "--kubeconfig", kubeconfig}, os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	p, err := newPublisher(ctx, v, os.Getenv, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(time.Now())
	results := make(chan *Result, 4)
	wctx, stop := context.WithCancel(ctx)
	watched := make(chan error, 1)
	go func() {
		watched <- p.Watch(wctx, clk, time.Minute, func(r *Result, err error) {
			if err != nil {
				t.Errorf("watch: %v", err)
			}
			results <- r
		})
	}()
	await.Timers(t, guard, clk, 1)
	clk.AdvanceToNext()
	if r := await.Receive(t, guard, results, "the watch's first publish"); strings.Join(r.Uploaded, ",") != prefix+"/openid/v1/jwks" {
		t.Errorf("after the rotation the watch uploaded %v, want only the JWKS", r.Uploaded)
	}
	await.Timers(t, guard, clk, 1)
	clk.Advance(time.Minute)
	if r := await.Receive(t, guard, results, "the watch's publish a minute later"); len(r.Uploaded) != 0 || len(r.Docs.Kids) != 2 {
		t.Errorf("a minute later, nothing changed: uploaded %v, kids %v", r.Uploaded, r.Docs.Kids)
	}
	stop()
	if err := await.Receive(t, guard, watched, "the watch's return"); err != nil {
		t.Fatal(err)
	}
	if err := exchange(second); err != nil {
		t.Fatalf("STS refused a token signed with the new key after publish: %v", err)
	}
	if err := exchange(first); err != nil {
		t.Fatalf("STS refused a token signed with the old key, which the API server still accepts: %v", err)
	}
}
