package imds

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	awsimds "github.com/aws/aws-sdk-go-v2/feature/ec2/imds"

	"github.com/credsidecar/credsidecar/internal/testkit/sdkclient"
)

// The tests here fetch credentials from the endpoint with the real SDKs' IMDS providers: the Go
// SDK v2 in process, botocore and the JavaScript SDK v3 as subprocesses running the scripts in
// testdata (which the end-to-end tests reuse against SeaweedFS).

func TestGoSDKv2Provider(t *testing.T) {
	c := realLookingCreds(t, time.Now(), 3*time.Hour)
	_, ts := newTestServer(t, newTestSource(t, c))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	client := awsimds.New(awsimds.Options{Endpoint: ts.URL})
	got, err := ec2rolecreds.New(func(o *ec2rolecreds.Options) { o.Client = client }).Retrieve(ctx)
	if err != nil {
		t.Fatalf("ec2rolecreds Retrieve: %v", err)
	}
	if got.AccessKeyID != c.AccessKeyID || got.SecretAccessKey != c.SecretAccessKey || got.SessionToken != c.SessionToken {
		t.Fatal("ec2rolecreds got other credentials than the source holds")
	}
	// The provider caps the expiry at an hour from now to re-fetch sooner; it must never be later
	// than what was served.
	if !got.CanExpire || got.Expires.After(c.Expiration) || time.Until(got.Expires) < 50*time.Minute {
		t.Errorf("expiry %v (can expire %v), want at most %v and about an hour away", got.Expires, got.CanExpire, c.Expiration)
	}

	region, err := client.GetRegion(ctx, nil)
	if err != nil || region.Region != testRegion {
		t.Errorf("GetRegion = %v, %v; want %s", region, err, testRegion)
	}
	doc, err := client.GetInstanceIdentityDocument(ctx, nil)
	if err != nil || doc.AccountID != testAccount || doc.AvailabilityZone != testRegion+"a" || doc.PendingTime.IsZero() {
		t.Errorf("GetInstanceIdentityDocument = %+v, %v", doc, err)
	}
	info, err := client.GetIAMInfo(ctx, nil)
	if err != nil || info.InstanceProfileArn != "arn:aws:iam::"+testAccount+":instance-profile/"+testRole ||
		info.InstanceProfileID == "" || info.LastUpdated.IsZero() {
		t.Errorf("GetIAMInfo = %+v, %v", info, err)
	}
}

// TestGoSDKv2RetriesUnavailable shows why "no credentials yet" is a 503: the Go SDK retries
// it (and then succeeds once there are credentials), while a 404, which real IMDS sends when
// no role is attached, ends the attempt at once.
func TestGoSDKv2RetriesUnavailable(t *testing.T) {
	src := newTestSource(t, nil)
	s, err := New(src, testRegion, WithStartupWait(0))
	if err != nil {
		t.Fatal(err)
	}
	var listed, fetched atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/latest/meta-data/iam/security-credentials/":
			if listed.Add(1) == 2 {
				src.Set(realLookingCreds(t, time.Now(), time.Hour)) // ready after one 503
			}
		case "/latest/meta-data/iam/security-credentials/" + testRole:
			fetched.Add(1)
		}
		s.Handler().ServeHTTP(w, r)
	}))
	defer ts.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	noDelay := retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
	client := awsimds.New(awsimds.Options{Endpoint: ts.URL, DisableDefaultMaxBackoff: true, Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
		o.Backoff = noDelay
	})})

	if _, err := ec2rolecreds.New(func(o *ec2rolecreds.Options) { o.Client = client }).Retrieve(ctx); err != nil {
		t.Fatalf("Retrieve across a 503: %v", err)
	}
	if listed.Load() != 2 || fetched.Load() != 1 {
		t.Fatalf("role list asked %d times, credentials %d; want 2 (one 503, one retry) and 1", listed.Load(), fetched.Load())
	}

	_, err = client.GetMetadata(ctx, &awsimds.GetMetadataInput{Path: "iam/security-credentials/nobody"})
	var status interface{ HTTPStatusCode() int }
	if !errors.As(err, &status) || status.HTTPStatusCode() != http.StatusNotFound {
		t.Fatalf("unknown role: %v, want a 404", err)
	}
}

// TestGoSDKv2DefaultChain loads the Go SDK's default configuration with nothing but
// AWS_EC2_METADATA_SERVICE_ENDPOINT set, as a pod would, and takes region and credentials from
// the endpoint.
func TestGoSDKv2DefaultChain(t *testing.T) {
	c := realLookingCreds(t, time.Now(), 3*time.Hour)
	_, ts := newTestServer(t, newTestSource(t, c))
	sdkclient.IsolateEnv(t)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "false") // the one source under test
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", ts.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	cfg, err := config.LoadDefaultConfig(ctx, config.WithEC2IMDSRegion())
	if err != nil {
		t.Fatalf("LoadDefaultConfig: %v", err)
	}
	if cfg.Region != testRegion {
		t.Errorf("region from IMDS = %q, want %q", cfg.Region, testRegion)
	}
	got, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		t.Fatalf("default chain Retrieve: %v", err)
	}
	if got.AccessKeyID != c.AccessKeyID || got.SecretAccessKey != c.SecretAccessKey || got.SessionToken != c.SessionToken {
		t.Fatal("default chain got other credentials than the source holds")
	}
	if !strings.Contains(got.Source, ec2rolecreds.ProviderName) {
		t.Errorf("credentials source %q, want the EC2 role provider", got.Source)
	}
}

func TestBotocoreProvider(t *testing.T) {
	py := sdkclient.Python(t)
	c := realLookingCreds(t, time.Now(), 3*time.Hour)
	_, ts := newTestServer(t, newTestSource(t, c))
	out := sdkclient.RunJSON(t, py, []string{"testdata/imds_boto3.py"}, map[string]string{
		"AWS_EC2_METADATA_DISABLED":         "false",
		"AWS_EC2_METADATA_SERVICE_ENDPOINT": ts.URL,
		"EXPECT_CREDS_SHA256":               credsDigest(c),
	})
	want := map[string]any{
		"provider":     "iam-role",
		"region":       testRegion, // from placement/availability-zone/, minus the zone letter
		"expiration":   c.Expiration.Format(timeFormat),
		"key_id_last4": c.AccessKeyID[len(c.AccessKeyID)-4:],
		"creds_match":  true,
	}
	checkOutput(t, out, want)
}

func TestJavaScriptProvider(t *testing.T) {
	node, modules := sdkclient.Node(t)
	c := realLookingCreds(t, time.Now(), 3*time.Hour)
	_, ts := newTestServer(t, newTestSource(t, c))
	out := sdkclient.RunJSON(t, node, []string{"testdata/imds_js.cjs"}, map[string]string{
		"AWS_EC2_METADATA_DISABLED":         "false",
		"AWS_EC2_METADATA_SERVICE_ENDPOINT": ts.URL,
		"EXPECT_CREDS_SHA256":               credsDigest(c),
		"NODE_PATH":                         modules,
	})
	want := map[string]any{
		"provider":     "fromInstanceMetadata",
		"expiration":   c.Expiration.Format(timeFormat),
		"key_id_last4": c.AccessKeyID[len(c.AccessKeyID)-4:],
		"account":      testAccount,
		"creds_match":  true,
	}
	checkOutput(t, out, want)
}

func checkOutput(t *testing.T, got, want map[string]any) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
}
