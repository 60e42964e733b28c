// Package roles tests several roles in one pod on real parts: SeaweedFS as STS and S3 with two
// roles that trust the same service account and allow different actions, a third whose trust
// policy names another service account, one sidecar serving them all, and real SDK clients.
package roles

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/credsidecar/credsidecar/internal/config"
	"github.com/credsidecar/credsidecar/internal/creds"
	"github.com/credsidecar/credsidecar/internal/testkit/await"
	"github.com/credsidecar/credsidecar/internal/testkit/podenv"
	"github.com/credsidecar/credsidecar/internal/testkit/testbed"
)

const guard = 30 * time.Second

// The roles SeaweedFS knows besides the default one: reader may only read the bucket, writer
// may only write to it, and stranger trusts another service account.
var (
	readerRole   = testbed.WebIdentityRole("reader-role", testbed.Subject(testbed.DefaultNamespace, testbed.DefaultServiceAccount), "read-only")
	writerRole   = testbed.WebIdentityRole("writer-role", testbed.Subject(testbed.DefaultNamespace, testbed.DefaultServiceAccount), "write-only")
	strangerRole = testbed.WebIdentityRole("stranger-role", testbed.Subject(testbed.DefaultNamespace, "someone-else"), "read-only")
	// chainedRole is assumed with the reader role's session: a role in "another account" reached
	// by chaining, for a named role's --role-chain-role-arn.
	chainedRole = testbed.ChainedRole("chained-reader", "reader-role", "read-only")
)

func policy(name string, actions ...string) testbed.Policy {
	return testbed.Policy{Name: name, Document: testbed.PolicyDocument{Version: "2012-10-17", Statement: []testbed.Statement{{
		Effect: "Allow", Action: actions,
		Resource: []string{"arn:aws:s3:::" + testbed.DefaultBucket, "arn:aws:s3:::" + testbed.DefaultBucket + "/*"},
	}}}}
}

func TestMain(m *testing.M) {
	os.Exit(podenv.Main(m, podenv.Options{Guard: guard,
		ExtraRoles:    []testbed.Role{readerRole, writerRole, strangerRole, chainedRole},
		ExtraPolicies: []testbed.Policy{policy("read-only", "s3:GetObject", "s3:ListBucket"), policy("write-only", "s3:PutObject")},
	}))
}

// sdkConfig is what an app container's Go SDK v2 builds from its pod variables: the container
// endpoint at url with the auth token file, nothing else.
func sdkConfig(t *testing.T, s *podenv.Sidecar, url string) aws.Config {
	t.Helper()
	t.Setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", url)
	t.Setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", s.AuthTokenFile)
	for _, v := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
		"AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_AUTHORIZATION_TOKEN"} {
		t.Setenv(v, "")
	}
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(testbed.Region))
	if err != nil {
		t.Fatalf("LoadDefaultConfig: %v", err)
	}
	return cfg
}

// app is one container's clients.
type app struct {
	s3  *s3.Client
	sts *sts.Client
}

func newApp(t *testing.T, w *podenv.World, s *podenv.Sidecar, url string) app {
	cfg := sdkConfig(t, s, url)
	return app{
		s3: s3.NewFromConfig(cfg, func(o *s3.Options) {
			o.BaseEndpoint, o.UsePathStyle = aws.String(w.Weed.Endpoint()), true
		}),
		sts: sts.NewFromConfig(cfg, func(o *sts.Options) { o.BaseEndpoint = aws.String(w.Weed.Endpoint()) }),
	}
}

func code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	if err != nil {
		return "error: " + err.Error()
	}
	return "ok"
}

// TestTwoRolesOnePod: two containers of one pod, each pointed at its own role; each can do what
// its role allows and is refused the other's action; GetCallerIdentity names each role; a third
// role whose trust policy rejects the token is reported, and leaves the others served.
func TestTwoRolesOnePod(t *testing.T) {
	w := podenv.Shared(t)
	s := w.StartSidecar(t, podenv.SidecarOptions{Roles: []config.Role{
		{Name: "reader", ARN: readerRole.RoleArn}, {Name: "writer", ARN: writerRole.RoleArn},
		{Name: "stranger", ARN: strangerRole.RoleArn},
	}})
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	for _, name := range []string{"reader", "writer"} {
		if s.App.Manager(name).Wait(ctx) == nil {
			t.Fatalf("role %s never served: %v", name, s.App.Manager(name).LastError())
		}
	}
	reader := newApp(t, w, s, s.URL+"/reader")
	writer := newApp(t, w, s, s.URL+"/writer")

	for name, a := range map[string]app{"reader": reader, "writer": writer} {
		id, err := a.sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		if err != nil {
			t.Fatalf("%s: GetCallerIdentity: %v", name, err)
		}
		if want := "assumed-role/" + name + "-role/"; !strings.Contains(aws.ToString(id.Arn), want) {
			t.Fatalf("%s: GetCallerIdentity says %s, want an ARN with %s", name, aws.ToString(id.Arn), want)
		}
	}

	key := fmt.Sprintf("roles/%d.txt", time.Now().UnixNano())
	body := []byte("written through the writer role")
	_, err := writer.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(testbed.DefaultBucket), Key: aws.String(key),
		Body: bytes.NewReader(body)})
	if err != nil {
		t.Fatalf("writer: PutObject: %v", err)
	}
	got, err := reader.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(testbed.DefaultBucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("reader: GetObject: %v", err)
	}
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(got.Body)
	got.Body.Close()
	if !bytes.Equal(buf.Bytes(), body) {
		t.Fatalf("reader read %q, want %q", buf.Bytes(), body)
	}
	_, err = reader.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(testbed.DefaultBucket), Key: aws.String(key + ".reader"),
		Body: bytes.NewReader(body)})
	if c := code(err); c != "AccessDenied" {
		t.Fatalf("reader: PutObject answered %s, want AccessDenied", c)
	}
	_, err = writer.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(testbed.DefaultBucket), Key: aws.String(key)})
	if c := code(err); c != "AccessDenied" {
		t.Fatalf("writer: GetObject answered %s, want AccessDenied", c)
	}

	// The stranger role's trust policy names another service account: refused, explained, and
	// the others stay served; /readyz names it.
	if s.App.Manager("stranger").Servable() != nil {
		t.Fatal("stranger served although its trust policy names another service account")
	}
	if c := creds.ErrorCode(s.App.Manager("stranger").LastError()); c != "AccessDenied" {
		t.Fatalf("stranger's last error %v, want AccessDenied", s.App.Manager("stranger").LastError())
	}
	if a := s.Get(t, s.Auth); a.Status != 200 {
		t.Fatalf("the unnamed role answered %d beside the refused role", a.Status)
	}
	status, text := s.Do(t, "GET", s.Addrs.MetricsURL()+"/readyz", nil)
	if status != 503 || text != "not ready: no servable credentials for role stranger\n" {
		t.Fatalf("/readyz: %d %q", status, text)
	}
	metrics := s.Metrics(t)
	for _, want := range []string{`credsidecar_ready{role="reader"} 1`, `credsidecar_ready{role="writer"} 1`,
		`credsidecar_ready{role="stranger"} 0`, `credsidecar_ready{role=""} 1`,
		`credsidecar_credentials_expiry_timestamp_seconds{role="writer"}`,
		// Which role STS refuses, and why, for the alert: the others' calls succeed.
		`credsidecar_sts_requests_total{code="AccessDenied",result="error",role="stranger"}`,
		`credsidecar_sts_requests_total{code="",result="success",role="reader"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if !strings.Contains(s.Logs.String(), `"role":"stranger"`) {
		t.Error("the refused role's failure is not logged with its name")
	}
}

// countingSTS counts the web-identity calls per role and holds each for delay: a WAN round trip
// to AWS STS, so that the clients of a cold start arrive while the first calls are in flight.
// It stands in for nothing: every call goes on to SeaweedFS.
type countingSTS struct {
	creds.STSAPI
	delay time.Duration
	mu    sync.Mutex
	calls map[string]int
}

func (c *countingSTS) AssumeRoleWithWebIdentity(ctx context.Context, in *sts.AssumeRoleWithWebIdentityInput,
	opts ...func(*sts.Options)) (*sts.AssumeRoleWithWebIdentityOutput, error) {
	c.mu.Lock()
	c.calls[aws.ToString(in.RoleArn)]++
	c.mu.Unlock()
	select {
	case <-time.After(c.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return c.STSAPI.AssumeRoleWithWebIdentity(ctx, in, opts...)
}

// TestColdStartSplitAcrossRoles: 1000 clients arrive at a cold sidecar, split across three
// roles; every one gets its own role's credentials, and STS sees exactly one call per role.
// A client the cold-start wait (server.DefaultColdStartWait) answers 503 CredentialsUnavailable
// asks again, as every SDK's container provider does: under the race detector on two cores the
// first calls can outlast that wait, which is the endpoint working as designed, and the retries
// must not reach STS.
func TestColdStartSplitAcrossRoles(t *testing.T) {
	w := podenv.Shared(t)
	counter := &countingSTS{delay: 100 * time.Millisecond, calls: map[string]int{}}
	s := w.StartSidecar(t, podenv.SidecarOptions{ColdStart: true,
		Roles: []config.Role{{Name: "reader", ARN: readerRole.RoleArn}, {Name: "writer", ARN: writerRole.RoleArn}},
		STS:   func(api creds.STSAPI) creds.STSAPI { counter.STSAPI = api; return counter },
	})
	urls := map[string]string{"": s.URL, "reader": s.URL + "/reader", "writer": s.URL + "/writer"}
	arns := map[string]string{"": testbed.DefaultRoleARN, "reader": readerRole.RoleArn, "writer": writerRole.RoleArn}
	names := []string{"", "reader", "writer"}
	const clients = 1000
	deadline := time.Now().Add(guard)
	var retried atomic.Int32
	keys := make([]string, clients)
	errs := make([]error, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				a, err := podenv.Get(s.HTTP, urls[names[i%3]], s.Auth)
				switch {
				case err != nil:
					errs[i] = err
				case a.Status == 200:
					keys[i] = a.Creds.AccessKeyID + " " + a.Creds.RoleARN
				case a.Status == 503 && a.Code == "CredentialsUnavailable" && time.Now().Before(deadline):
					retried.Add(1)
					continue
				default:
					errs[i] = fmt.Errorf("status %d: %s", a.Status, a.Body)
				}
				return
			}
		}()
	}
	wg.Wait()
	failed := 0
	for i, err := range errs {
		if err != nil {
			if failed == 0 {
				t.Errorf("client %d (role %q): %v", i, names[i%3], err)
			}
			failed++
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d cold-start clients got no credentials (%d cold-start 503s retried)", failed, clients, retried.Load())
	}
	t.Logf("%d cold-start 503s retried", retried.Load())
	for i, k := range keys {
		if want := arns[names[i%3]]; !strings.HasSuffix(k, " "+want) {
			t.Fatalf("client %d asked for role %q and got credentials of %s", i, names[i%3], k)
		}
	}
	counter.mu.Lock()
	defer counter.mu.Unlock()
	for _, name := range names {
		if n := counter.calls[arns[name]]; n != 1 {
			t.Errorf("role %q: %d STS calls for %d cold-start clients, want 1", name, n, clients/3)
		}
	}
	if len(counter.calls) != 3 {
		t.Errorf("STS calls for %d roles, want 3: %v", len(counter.calls), counter.calls)
	}
}

// TestOnlyNamedRoles: a sidecar without --role-arn serves its named roles; /v1/credentials says
// there is no unnamed role and how to ask for a named one; the credentials file holds a profile
// per named role, which the Go SDK reads.
func TestOnlyNamedRoles(t *testing.T) {
	w := podenv.Shared(t)
	file := t.TempDir() + "/credentials"
	s := w.StartSidecar(t, podenv.SidecarOptions{NoUnnamedRole: true, CredentialsFile: file,
		Roles: []config.Role{{Name: "reader", ARN: readerRole.RoleArn}, {Name: "writer", ARN: writerRole.RoleArn}}})
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	if !s.App.WaitReady(ctx) {
		t.Fatal("the named roles never became servable")
	}
	a, err := podenv.Get(s.HTTP, s.URL, s.Auth)
	if err != nil {
		t.Fatal(err)
	}
	if a.Status != 404 || !strings.Contains(string(a.Body), "this sidecar has no unnamed role (--role-arn); its roles are reader, writer") {
		t.Fatalf("/v1/credentials without an unnamed role: %d %s", a.Status, a.Body)
	}
	if s.App.Manager("") != nil {
		t.Fatal("a manager for the unnamed role exists without --role-arn")
	}
	// The file is written after the roles are servable: wait for both profiles, then read each as
	// the SDK does.
	await.File(t, guard, file, "holding a profile per role", func(b []byte) bool {
		return strings.Contains(string(b), "[reader]") && strings.Contains(string(b), "[writer]")
	})
	for name, role := range map[string]string{"reader": readerRole.RoleArn, "writer": writerRole.RoleArn} {
		cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(testbed.Region),
			awsconfig.WithSharedConfigFiles([]string{}), awsconfig.WithSharedCredentialsFiles([]string{file}),
			awsconfig.WithSharedConfigProfile(name))
		if err != nil {
			t.Fatal(err)
		}
		id, err := sts.NewFromConfig(cfg, func(o *sts.Options) { o.BaseEndpoint = aws.String(w.Weed.Endpoint()) }).
			GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		if err != nil {
			t.Fatalf("profile %s: GetCallerIdentity: %v", name, err)
		}
		if want := "assumed-role/" + strings.TrimPrefix(role, "arn:aws:iam::"+testbed.AccountID+":role/") + "/"; !strings.Contains(aws.ToString(id.Arn), want) {
			t.Fatalf("profile %s is %s, want an ARN with %s", name, aws.ToString(id.Arn), want)
		}
	}
}

// TestNamedRoleChains: a named role with its own chain (the sidecar's --role-chain-role-arn)
// serves the last hop's credentials at its path, while the unnamed role serves its own.
func TestNamedRoleChains(t *testing.T) {
	w := podenv.Shared(t)
	s := w.StartSidecar(t, podenv.SidecarOptions{Roles: []config.Role{
		{Name: "far", ARN: readerRole.RoleArn, ChainRoleARNs: []string{chainedRole.RoleArn}},
	}})
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	if !s.App.WaitReady(ctx) {
		t.Fatalf("the chained role never became servable: %v", s.App.Manager("far").LastError())
	}
	far := newApp(t, w, s, s.URL+"/far")
	id, err := far.sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatalf("GetCallerIdentity through the chained role: %v", err)
	}
	if !strings.Contains(aws.ToString(id.Arn), "assumed-role/chained-reader/") {
		t.Fatalf("the named role with a chain is %s, want the chain's last role chained-reader", aws.ToString(id.Arn))
	}
	if got := s.Served(t).RoleARN; got != testbed.DefaultRoleARN {
		t.Fatalf("the unnamed role serves %s beside the chained named role, want %s", got, testbed.DefaultRoleARN)
	}
}
