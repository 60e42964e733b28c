package modes

//lint:file-ignore SA1019 the deprecated v1 SDK is used on purpose: apps still ship it, and its container-credentials client must work against the sidecar.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	"github.com/aws/aws-sdk-go-v2/credentials/endpointcreds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	awsv1 "github.com/aws/aws-sdk-go/aws"
	endpointcredsv1 "github.com/aws/aws-sdk-go/aws/credentials/endpointcreds"
	"github.com/aws/aws-sdk-go/aws/session"
	s3v1 "github.com/aws/aws-sdk-go/service/s3"
	stsv1 "github.com/aws/aws-sdk-go/service/sts"

	"github.com/credsidecar/credsidecar/internal/creds"
	"github.com/credsidecar/credsidecar/internal/findings"
	"github.com/credsidecar/credsidecar/internal/imds"
	"github.com/credsidecar/credsidecar/internal/testkit/await"
	"github.com/credsidecar/credsidecar/internal/testkit/podenv"
	"github.com/credsidecar/credsidecar/internal/testkit/testbed"
)

// TestModes runs every mode against the one SeaweedFS of the package. Each mode has a sidecar
// of its own (they are cheap; SeaweedFS is not), so they do not depend on each other's state.
func TestModes(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: no SeaweedFS and no SDK subprocesses")
	}
	e := newEnv(t)
	bin := e.startBuild(t) // in the background while the other modes run
	modes := []struct {
		name string
		run  func(*testing.T, *env)
	}{
		{name: "instance metadata", run: testIMDS},
		{name: "legacy token", run: testLegacyToken},
		{name: "credentials file", run: testCredentialsFile},
		{name: "role chaining", run: testChaining},
		{name: "token warnings", run: testTokenWarnings},
		{name: "credential process", run: func(t *testing.T, e *env) { testCredentialProcess(t, e, bin) }},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) { m.run(t, e) })
	}
}

// Apps that only speak EC2 instance metadata find the credentials with nothing but
// AWS_EC2_METADATA_SERVICE_ENDPOINT, use them against STS and S3, and cannot skip IMDSv2.
func testIMDS(t *testing.T, e *env) {
	s := e.w.StartSidecar(t, podenv.SidecarOptions{IMDS: true})
	// Every SDK gets the documented value, with the trailing slash old botocore needs.
	url := s.Addrs.IMDSURL()
	if !strings.HasPrefix(url, "http://127.0.0.1:") || !strings.HasSuffix(url, "/") {
		t.Fatalf("IMDS URL %q, want http://127.0.0.1:<port>/", url)
	}
	served := s.Served(t)

	t.Run("aws-sdk-go-v2", func(t *testing.T) {
		key := objectKey(t.Name())
		e.isolateAWSEnv(t, map[string]string{"AWS_EC2_METADATA_SERVICE_ENDPOINT": url})
		ctx, cancel := context.WithTimeout(t.Context(), guard)
		defer cancel()
		cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithEC2IMDSRegion())
		if err != nil {
			t.Fatalf("load default config: %v", err)
		}
		if cfg.Region != testbed.Region {
			t.Errorf("region from instance metadata = %q, want %q", cfg.Region, testbed.Region)
		}
		c, err := cfg.Credentials.Retrieve(ctx)
		if err != nil {
			t.Fatalf("retrieve credentials: %v", err)
		}
		if !strings.Contains(c.Source, ec2rolecreds.ProviderName) || c.AccessKeyID != served.AccessKeyID {
			t.Errorf("credentials from %q with key %s, want %s's, key %s", c.Source, creds.MaskKeyID(c.AccessKeyID),
				ec2rolecreds.ProviderName, creds.MaskKeyID(served.AccessKeyID))
		}
		arn, etag := useGoV2(t, e, cfg, key)
		checkRole(t, arn, testbed.DefaultRoleName)
		e.checkObject(t, key, etag)
	})

	t.Run("boto3", func(t *testing.T) {
		key := objectKey(t.Name())
		got := e.runScript(t, map[string]string{
			"AWS_EC2_METADATA_SERVICE_ENDPOINT": url,
			"AWS_CONFIG_FILE":                   e.absent("config"),
			"AWS_SHARED_CREDENTIALS_FILE":       e.absent("credentials"),
			"EXPECT_CREDS_SHA256":               served.Digest(),
			"E2E_ENDPOINT":                      e.weed.Endpoint(),
			"E2E_BUCKET":                        e.weed.Bucket(),
			"E2E_KEY":                           key,
		}, python(t), e.script("internal/imds/testdata/imds_boto3.py"))
		checkClient(t, got, "iam-role", testbed.DefaultRoleName)
		e.checkObject(t, key, got.ETag)
	})

	t.Run("javascript v3", func(t *testing.T) {
		node, modules := e.node(t)
		key := objectKey(t.Name())
		got := e.runScript(t, map[string]string{
			"AWS_EC2_METADATA_SERVICE_ENDPOINT": url,
			"AWS_REGION":                        testbed.Region,
			"AWS_CONFIG_FILE":                   e.absent("config"),
			"AWS_SHARED_CREDENTIALS_FILE":       e.absent("credentials"),
			"NODE_PATH":                         modules,
			"EXPECT_CREDS_SHA256":               served.Digest(),
			"E2E_ENDPOINT":                      e.weed.Endpoint(),
			"E2E_BUCKET":                        e.weed.Bucket(),
			"E2E_KEY":                           key,
		}, node, e.script("internal/imds/testdata/imds_js.cjs"))
		checkClient(t, got, "fromInstanceMetadata", testbed.DefaultRoleName)
		e.checkObject(t, key, got.ETag)
	})

	t.Run("IMDSv1 refused", func(t *testing.T) {
		const path = "/latest/meta-data/iam/security-credentials/"
		status, _ := s.Do(t, http.MethodGet, url+path, nil)
		if status != http.StatusUnauthorized {
			t.Fatalf("GET %s without a session token = %d, want 401", path, status)
		}
		status, token := s.Do(t, http.MethodPut, url+"/latest/api/token", map[string]string{imds.TTLHeader: "60"})
		if status != http.StatusOK || token == "" {
			t.Fatalf("PUT /latest/api/token = %d", status)
		}
		status, role := s.Do(t, http.MethodGet, url+path, map[string]string{imds.TokenHeader: token})
		if status != http.StatusOK || role != testbed.DefaultRoleName {
			t.Fatalf("GET %s with a session token = %d %q, want 200 %s", path, status, role, testbed.DefaultRoleName)
		}
	})
}

// In the legacy token mode the auth token is a Kubernetes Secret: mounted into the sidecar as
// a file (so it exists, non-empty, before the sidecar starts) and given to the apps as the
// value AWS_CONTAINER_AUTHORIZATION_TOKEN, all that older SDKs read.
func testLegacyToken(t *testing.T, e *env) {
	token := randomToken(t)
	vol, err := testbed.NewSecretVolume(t.TempDir(), map[string]string{"token": token})
	if err != nil {
		t.Fatal(err)
	}
	s := e.w.StartSidecar(t, podenv.SidecarOptions{AuthTokenFile: vol.Path("token")})
	if got := s.AuthToken(t); got != token {
		t.Fatal("the sidecar replaced the Secret's token")
	}
	if n := s.Logs.Count("loaded auth token", nil); n != 1 || s.Logs.Count("generated auth token", nil) != 0 {
		t.Fatalf("the sidecar did not load the Secret's token (%d loaded lines); logs:\n%s", n, s.Logs.String())
	}
	served := s.Served(t)
	vars := func(key string) map[string]string {
		return map[string]string{
			"AWS_CONTAINER_CREDENTIALS_FULL_URI": s.Addrs.CredentialsURL(),
			"AWS_CONTAINER_AUTHORIZATION_TOKEN":  token,
			"AWS_REGION":                         testbed.Region,
			"AWS_DEFAULT_REGION":                 testbed.Region,
			"AWS_CONFIG_FILE":                    e.absent("config"),
			"AWS_SHARED_CREDENTIALS_FILE":        e.absent("credentials"),
			"AWS_EC2_METADATA_DISABLED":          "true",
			"E2E_ENDPOINT":                       e.weed.Endpoint(),
			"E2E_BUCKET":                         e.weed.Bucket(),
			"E2E_KEY":                            key,
		}
	}

	t.Run("boto3", func(t *testing.T) {
		key := objectKey(t.Name())
		got := e.runScript(t, vars(key), python(t), e.script("internal/modes/testdata/container_boto3.py"))
		checkClient(t, got, "container-role", testbed.DefaultRoleName)
		if got.KeyIDLast4 != last4(served.AccessKeyID) {
			t.Errorf("boto3's key ends in %q, the endpoint serves %s", got.KeyIDLast4, creds.MaskKeyID(served.AccessKeyID))
		}
		e.checkObject(t, key, got.ETag)
	})

	t.Run("aws-sdk-go", func(t *testing.T) {
		key := objectKey(t.Name())
		e.isolateAWSEnv(t, vars(key))
		ctx, cancel := context.WithTimeout(t.Context(), guard)
		defer cancel()
		sess, err := session.NewSession()
		if err != nil {
			t.Fatalf("new session: %v", err)
		}
		v, err := sess.Config.Credentials.GetWithContext(ctx)
		if err != nil {
			t.Fatalf("get credentials: %v", err)
		}
		if v.ProviderName != endpointcredsv1.ProviderName || v.AccessKeyID != served.AccessKeyID {
			t.Errorf("credentials from %q with key %s, want %s's, key %s", v.ProviderName, creds.MaskKeyID(v.AccessKeyID),
				endpointcredsv1.ProviderName, creds.MaskKeyID(served.AccessKeyID))
		}
		endpoint := awsv1.String(e.weed.Endpoint())
		id, err := stsv1.New(sess, &awsv1.Config{Endpoint: endpoint}).GetCallerIdentityWithContext(ctx, &stsv1.GetCallerIdentityInput{})
		if err != nil {
			t.Fatalf("GetCallerIdentity: %v", err)
		}
		checkRole(t, awsv1.StringValue(id.Arn), testbed.DefaultRoleName)
		put, err := s3v1.New(sess, &awsv1.Config{Endpoint: endpoint, S3ForcePathStyle: awsv1.Bool(true)}).
			PutObjectWithContext(ctx, &s3v1.PutObjectInput{
				Bucket: awsv1.String(e.weed.Bucket()), Key: awsv1.String(key),
				Body: strings.NewReader("written by aws-sdk-go through credsidecar\n"),
			})
		if err != nil {
			t.Fatalf("PutObject: %v", err)
		}
		e.checkObject(t, key, awsv1.StringValue(put.ETag))
	})

	t.Run("other token refused", func(t *testing.T) {
		status, _ := s.Do(t, http.MethodGet, s.Addrs.CredentialsURL(), map[string]string{"Authorization": randomToken(t)})
		if status != http.StatusUnauthorized {
			t.Fatalf("credentials with another token = %d, want 401", status)
		}
	})

	t.Run("Secret rotation", func(t *testing.T) { testLegacyRotation(t, e, s, vol, token, vars) })
}

// testLegacyRotation rotates the Secret under a running sidecar, as `kubectl create secret
// --dry-run=client -o yaml | kubectl apply -f -` and the kubelet's ..data swap would: the sidecar
// adopts the new token without a restart, refuses the old one, and an app reading the token from
// the file (AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE) keeps getting credentials, while one given the
// value needs the new value, i.e. a restart (docs/modes.md).
func testLegacyRotation(t *testing.T, e *env, s *podenv.Sidecar, vol *testbed.SecretVolume, old string, vars func(string) map[string]string) {
	// The file-reading app: aws-sdk-go-v2's default chain, loaded once and kept across the
	// rotation, as a long-running process would.
	e.isolateAWSEnv(t, map[string]string{
		"AWS_CONTAINER_CREDENTIALS_FULL_URI":     s.URL,
		"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": vol.Path("token"),
		"AWS_REGION":                             testbed.Region,
	})
	ctx, cancel := context.WithTimeout(t.Context(), guard)
	defer cancel()
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatalf("load default config: %v", err)
	}
	cache, ok := cfg.Credentials.(*aws.CredentialsCache)
	if !ok {
		t.Fatalf("default credentials are a %T, want the SDK's *aws.CredentialsCache", cfg.Credentials)
	}
	retrieve := func(when string) aws.Credentials {
		t.Helper()
		// Invalidate makes the next Retrieve fetch from the endpoint, as expiry would: the SDK
		// reads the token file again for that fetch.
		cache.Invalidate()
		c, err := cache.Retrieve(ctx)
		if err != nil {
			t.Fatalf("%s: retrieve credentials with the token file: %v", when, err)
		}
		if c.Source != endpointcreds.ProviderName {
			t.Fatalf("%s: credentials from %q, want the container endpoint's", when, c.Source)
		}
		return c
	}
	retrieve("before the rotation")

	const changed = "auth token changed, now expecting the new one"
	before := s.Logs.Count(changed, nil)
	rotated := randomToken(t)
	if err := vol.Write(map[string]string{"token": rotated}); err != nil {
		t.Fatalf("rotate the Secret: %v", err)
	}
	// The sidecar watches the volume's directory, so the ..data swap alone wakes it; no clock
	// moves here.
	s.Logs.WaitCount(t, guard, before+1, changed, map[string]string{"path": vol.Path("token")})

	if a := s.Get(t, old); a.Status != http.StatusUnauthorized {
		t.Errorf("credentials with the old token after the rotation = %d, want 401", a.Status)
	}
	if a := s.Get(t, rotated); a.Status != http.StatusOK || a.Creds.AccessKeyID == "" {
		t.Errorf("credentials with the new token = %d, want 200 with credentials", a.Status)
	}

	c := retrieve("after the rotation")
	if served := s.Served(t); c.AccessKeyID != served.AccessKeyID {
		t.Errorf("the file-reading app got key %s, the endpoint serves %s", creds.MaskKeyID(c.AccessKeyID), creds.MaskKeyID(served.AccessKeyID))
	}
	key := objectKey(t.Name())
	arn, etag := useGoV2(t, e, cfg, key)
	checkRole(t, arn, testbed.DefaultRoleName)
	e.checkObject(t, key, etag)

	// An app given the value works again once restarted with the new one.
	key = objectKey(t.Name() + " boto3")
	v := vars(key)
	v["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = rotated
	got := e.runScript(t, v, python(t), e.script("internal/modes/testdata/container_boto3.py"))
	checkClient(t, got, "container-role", testbed.DefaultRoleName)
	e.checkObject(t, key, got.ETag)

	s.Logs.MustNotContain(t, "old auth token", old)
	s.Logs.MustNotContain(t, "new auth token", rotated)
}

// The AWS CLI runs the built `sidecar credential-process` from a profile's credential_process
// line and signs with what it prints. The binary gets there as in a pod: `sidecar install`
// copies it into a directory standing for the shared emptyDir.
func testCredentialProcess(t *testing.T, e *env, b *build) {
	s := e.w.StartSidecar(t, podenv.SidecarOptions{})
	shared := t.TempDir()
	if out, err := exec.Command(b.wait(t), "install", shared).CombinedOutput(); err != nil {
		t.Fatalf("sidecar install %s: %v\n%s", shared, err, out)
	}
	bin := filepath.Join(shared, "sidecar")
	cli := awsCLI(t, python(t))
	if strings.ContainsAny(bin+s.AuthTokenFile, " '\"\\") {
		t.Fatalf("paths need quoting in credential_process: %q %q", bin, s.AuthTokenFile)
	}
	cfg := filepath.Join(t.TempDir(), "config")
	body := fmt.Sprintf("[profile app]\ncredential_process = %s credential-process --endpoint %s --auth-token-file %s\nregion = %s\n",
		bin, s.Addrs.CredentialsURL(), s.AuthTokenFile, testbed.Region)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	before := credentialRequests(t, s)
	stdout, stderr, err := e.runClient(t, map[string]string{
		"AWS_CONFIG_FILE":             cfg,
		"AWS_SHARED_CREDENTIALS_FILE": e.absent("credentials"),
		"AWS_EC2_METADATA_DISABLED":   "true",
	}, cli, "sts", "get-caller-identity", "--profile", "app", "--endpoint-url", e.weed.Endpoint(), "--output", "json")
	if err != nil {
		t.Fatalf("aws sts get-caller-identity: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	var id struct{ Arn, Account, UserId string }
	if err := json.Unmarshal([]byte(stdout), &id); err != nil {
		t.Fatalf("aws sts get-caller-identity printed %q: %v", stdout, err)
	}
	t.Logf("aws sts get-caller-identity: %s", id.Arn)
	checkRole(t, id.Arn, testbed.DefaultRoleName)
	if after := credentialRequests(t, s); after <= before {
		t.Errorf("the credentials endpoint answered %d requests before and %d after: the CLI did not go through the sidecar", before, after)
	}
}

// The credentials file holds what the endpoint serves, real SDKs read it, every refresh
// rewrites it, and a reader never catches it half-written.
func testCredentialsFile(t *testing.T, e *env) {
	path := filepath.Join(t.TempDir(), "credentials")
	s := e.w.StartSidecar(t, podenv.SidecarOptions{
		// The refreshes below move the sidecar's clock hours ahead of the wall clock that the
		// token and SeaweedFS's credentials live by, so both must outlast that: a day-long token
		// and 12 h sessions. With the window at its largest, the first refresh comes 66 min in
		// and every later one a minute after the previous (the manager's floor), so 100 of them
		// take under 3 h of fake time.
		Token:           testbed.TokenRequest{Lifetime: 24 * time.Hour},
		CredentialsFile: path,
		Duration:        12 * time.Hour,
		RefreshWindow:   10*time.Hour + 54*time.Minute,
		Creds:           []creds.Option{creds.WithRand(func() float64 { return 0 })},
	})
	first := s.Served(t)
	waitForKey(t, path, first.AccessKeyID)
	if fi, err := os.Stat(path); err != nil {
		t.Fatal(err)
	} else if fi.Mode().Perm() != 0o640 {
		t.Errorf("file mode %v, want 0640 like the auth token", fi.Mode().Perm())
	}

	boto3 := func(t *testing.T, want podenv.Creds) {
		got := e.runScript(t, map[string]string{
			"AWS_SHARED_CREDENTIALS_FILE": path,
			"AWS_CONFIG_FILE":             e.absent("config"),
			"AWS_DEFAULT_REGION":          testbed.Region,
			"AWS_EC2_METADATA_DISABLED":   "true",
			"EXPECT_CREDS_SHA256":         want.Digest(),
			"E2E_ENDPOINT":                e.weed.Endpoint(),
		}, python(t), e.script("internal/credfile/testdata/credfile_boto3.py"))
		checkClient(t, got, "shared-credentials-file", testbed.DefaultRoleName)
	}
	t.Run("boto3", func(t *testing.T) { boto3(t, first) })

	t.Run("aws-sdk-go-v2", func(t *testing.T) {
		e.isolateAWSEnv(t, map[string]string{"AWS_SHARED_CREDENTIALS_FILE": path})
		ctx, cancel := context.WithTimeout(t.Context(), guard)
		defer cancel()
		cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(testbed.Region))
		if err != nil {
			t.Fatalf("load default config: %v", err)
		}
		c, err := cfg.Credentials.Retrieve(ctx)
		if err != nil {
			t.Fatalf("retrieve credentials: %v", err)
		}
		if !strings.Contains(c.Source, "SharedConfigCredentials") || c.AccessKeyID != first.AccessKeyID ||
			c.SecretAccessKey != first.SecretAccessKey || c.SessionToken != first.Token {
			t.Errorf("credentials from %q with key %s, want the file's (key %s)", c.Source, creds.MaskKeyID(c.AccessKeyID),
				creds.MaskKeyID(first.AccessKeyID))
		}
		id, err := sts.NewFromConfig(cfg, func(o *sts.Options) { o.BaseEndpoint = aws.String(e.weed.Endpoint()) }).
			GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		if err != nil {
			t.Fatalf("GetCallerIdentity: %v", err)
		}
		checkRole(t, aws.ToString(id.Arn), testbed.DefaultRoleName)
	})

	t.Run("refresh rewrites it", func(t *testing.T) {
		s.AdvanceUntilUpdated(t)
		now := s.Served(t)
		if now.AccessKeyID == first.AccessKeyID {
			t.Fatal("the endpoint serves the same key after a refresh")
		}
		waitForKey(t, path, now.AccessKeyID)
		boto3(t, now)
	})

	t.Run("readers never see half a file", func(t *testing.T) {
		r := startReader(t, path)
		served := map[string]podenv.Creds{}
		cur := s.Served(t)
		served[cur.AccessKeyID] = cur
		const refreshes = 100
		for range refreshes {
			s.AdvanceUntilUpdated(t)
			cur = s.Served(t)
			served[cur.AccessKeyID] = cur
			waitForKey(t, path, cur.AccessKeyID)
		}
		seen := r.stop(t)
		if len(served) != refreshes+1 {
			t.Fatalf("%d distinct credentials served over %d refreshes, want %d", len(served), refreshes, refreshes+1)
		}
		for id, c := range seen {
			want, ok := served[id]
			if !ok || c.SecretAccessKey != want.SecretAccessKey || c.Token != want.Token {
				t.Fatalf("a read found key %s with a secret and token the endpoint never served with it", creds.MaskKeyID(id))
			}
		}
		t.Logf("%d reads with the SDK's loader saw %d of the %d generations written", r.reads.Load(), len(seen), len(served))
		if len(seen) < 2 {
			t.Errorf("the reader saw %d generations: it did not overlap the rewrites", len(seen))
		}
	})
}

// With --chain-role-arn the endpoint serves the chained role: the app's GetCallerIdentity
// names it, and its permissions are the chained role's.
func testChaining(t *testing.T, e *env) {
	chained := testbed.RoleARN(chainedRole)
	s := e.w.StartSidecar(t, podenv.SidecarOptions{ChainRoleARNs: []string{chained}})
	served := s.Served(t)
	if served.RoleARN != chained {
		t.Errorf("served RoleArn %s, want the chained role %s", served.RoleARN, chained)
	}
	if left := time.Until(served.Expiration); left > creds.MaxChainedDuration+time.Minute {
		t.Errorf("chained credentials live %v, longer than the 1 h AWS grants a chained session", left)
	}

	key := objectKey(t.Name())
	e.isolateAWSEnv(t, map[string]string{
		"AWS_CONTAINER_CREDENTIALS_FULL_URI":     s.Addrs.CredentialsURL(),
		"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": s.AuthTokenFile,
		"AWS_REGION":                             testbed.Region,
	})
	ctx, cancel := context.WithTimeout(t.Context(), guard)
	defer cancel()
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatalf("load default config: %v", err)
	}
	c, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		t.Fatalf("retrieve credentials: %v", err)
	}
	if c.Source != endpointcreds.ProviderName || c.AccessKeyID != served.AccessKeyID {
		t.Errorf("credentials from %q, key %s; want the container endpoint's, key %s", c.Source,
			creds.MaskKeyID(c.AccessKeyID), creds.MaskKeyID(served.AccessKeyID))
	}
	arn, etag := useGoV2(t, e, cfg, key)
	t.Logf("GetCallerIdentity through the endpoint: %s", arn)
	checkRole(t, arn, chainedRole)
	e.checkObject(t, key, etag)
	// Both hops were STS calls, and both are counted.
	if m := s.Metrics(t); !strings.Contains(m, `credsidecar_sts_requests_total{code="",result="success",role=""} 2`+"\n") {
		t.Errorf("metrics do not count the two calls of the chain:\n%s", grepLines(m, "credsidecar_sts_requests_total"))
	}
	s.Logs.WaitCount(t, guard, 1, "fetched credentials", nil)
	if !strings.Contains(s.Logs.String(), `"role_arn":"`+chained+`"`) {
		t.Error("the fetch log does not name the chained role")
	}
}

// A token with several audiences (projected without `audience:`) is warned about once when it
// is first read, not again at the next STS call, and once more after a rotation to another
// such token.
func testTokenWarnings(t *testing.T, e *env) {
	s := e.w.StartSidecar(t, podenv.SidecarOptions{
		// SeaweedFS accepts the token because one of its audiences is the provider's client id;
		// AWS would refuse it, which is why the warning matters.
		Token: testbed.TokenRequest{Audiences: e.iss.ClusterAudiences()},
		Creds: []creds.Option{creds.WithRand(func() float64 { return 0 })},
	})
	warning := map[string]string{"id": findings.IDTokenMultipleAudiences, "level": "WARN"}
	s.Logs.WaitCount(t, guard, 1, "token problem", warning)
	for _, line := range strings.Split(s.Logs.String(), "\n") {
		if strings.Contains(line, findings.IDTokenMultipleAudiences) {
			for _, k := range []string{`"what":"the token has 3 audiences`, `"why":"`, `"fix":"set ` + "`audience: "} {
				if !strings.Contains(line, k) {
					t.Errorf("the warning lacks %s: %s", k, line)
				}
			}
		}
	}
	count := func() int { return s.Logs.Count("token problem", warning) }

	s.AdvanceUntilUpdated(t)
	if n := len(s.Events.Calls()); n != 2 {
		t.Fatalf("%d STS calls, want 2", n)
	}
	if n := count(); n != 1 {
		t.Fatalf("%d warnings after two STS calls with the same token, want 1", n)
	}

	reloads := len(s.Events.Reloads())
	if err := s.Proj.Rotate(); err != nil {
		t.Fatalf("rotate the token: %v", err)
	}
	s.Events.WaitFor(t, guard, "TokenReloaded for the rotated token", func() bool { return len(s.Events.Reloads()) > reloads })
	s.Logs.WaitCount(t, guard, 2, "token problem", warning)
	s.AdvanceUntilUpdated(t)
	if n := len(s.Events.Calls()); n != 3 {
		t.Fatalf("%d STS calls, want 3", n)
	}
	if n := count(); n != 2 {
		t.Fatalf("%d warnings after a rotation and another STS call, want 2 (one per token)", n)
	}
}

// useGoV2 calls GetCallerIdentity and PutObject(key) with cfg, against SeaweedFS.
func useGoV2(t *testing.T, e *env, cfg aws.Config, key string) (arn, etag string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), guard)
	defer cancel()
	endpoint := aws.String(e.weed.Endpoint())
	id, err := sts.NewFromConfig(cfg, func(o *sts.Options) { o.BaseEndpoint = endpoint }).
		GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatalf("GetCallerIdentity: %v", err)
	}
	put, err := s3.NewFromConfig(cfg, func(o *s3.Options) { o.BaseEndpoint, o.UsePathStyle = endpoint, true }).
		PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(e.weed.Bucket()), Key: aws.String(key),
			Body: strings.NewReader("written by aws-sdk-go-v2 through credsidecar\n"),
		})
	if err != nil {
		t.Fatalf("PutObject: %v", err)
	}
	return aws.ToString(id.Arn), aws.ToString(put.ETag)
}

// checkRole asserts that arn is a session of role.
func checkRole(t *testing.T, arn, role string) {
	t.Helper()
	if !strings.Contains(arn, ":assumed-role/"+role+"/") {
		t.Errorf("GetCallerIdentity ARN %q is not a session of %s", arn, role)
	}
}

// checkClient asserts what a script reports: the provider it used, that its credentials are
// the served ones where it compared them, and the role it acted as.
func checkClient(t *testing.T, got clientResult, provider, role string) {
	t.Helper()
	if got.Provider != provider {
		t.Errorf("credential provider %q, want %q", got.Provider, provider)
	}
	if got.CredsMatch != nil && !*got.CredsMatch {
		t.Error("the client's credentials are not the ones the sidecar serves")
	}
	checkRole(t, got.ARN, role)
}

var credentialRequestsLine = regexp.MustCompile(`(?m)^credsidecar_http_requests_total\{code="200",endpoint="credentials"\} (\d+)$`)

// credentialRequests is how many credential requests the endpoint of s answered with 200.
func credentialRequests(t *testing.T, s *podenv.Sidecar) int {
	t.Helper()
	m := credentialRequestsLine.FindStringSubmatch(s.Metrics(t))
	if m == nil {
		return 0
	}
	var n int
	fmt.Sscan(m[1], &n)
	return n
}

func grepLines(text, prefix string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

var keyLine = regexp.MustCompile(`(?m)^aws_access_key_id = (\S+)$`)

// waitForKey waits, on file events rather than by polling, until the credentials file at path
// holds the access key id want.
func waitForKey(t *testing.T, path, want string) {
	t.Helper()
	await.File(t, guard, path, "holding key "+creds.MaskKeyID(want), func(b []byte) bool {
		m := keyLine.FindSubmatch(b)
		return m != nil && string(m[1]) == want
	})
}

// reader reads the credentials file in a loop with aws-sdk-go-v2's own shared-config loader,
// as a short-lived process would, and records every key, secret and token it finds together.
type reader struct {
	stopped chan struct{}
	done    chan error
	reads   atomic.Int64
	seen    map[string]aws.Credentials // by access key id; the reader's own until done
}

func startReader(t *testing.T, path string) *reader {
	t.Helper()
	r := &reader{stopped: make(chan struct{}), done: make(chan error, 1), seen: map[string]aws.Credentials{}}
	go func() {
		ctx := context.Background()
		for {
			select {
			case <-r.stopped:
				r.done <- nil
				return
			default:
			}
			n := r.reads.Add(1)
			sc, err := awsconfig.LoadSharedConfigProfile(ctx, "default", func(o *awsconfig.LoadSharedConfigOptions) {
				o.CredentialsFiles, o.ConfigFiles = []string{path}, []string{}
			})
			if err != nil {
				r.done <- fmt.Errorf("read %d: %w", n, err)
				return
			}
			c := sc.Credentials
			if c.AccessKeyID == "" || c.SecretAccessKey == "" || c.SessionToken == "" {
				r.done <- fmt.Errorf("read %d: key id, secret or token missing", n)
				return
			}
			if prev, ok := r.seen[c.AccessKeyID]; ok && (prev.SecretAccessKey != c.SecretAccessKey || prev.SessionToken != c.SessionToken) {
				r.done <- fmt.Errorf("read %d: key %s came with another secret or token than before", n, creds.MaskKeyID(c.AccessKeyID))
				return
			}
			r.seen[c.AccessKeyID] = c
		}
	}()
	t.Cleanup(func() {
		select {
		case <-r.stopped:
		default:
			close(r.stopped)
		}
	})
	return r
}

// stop ends the loop and returns what it saw; a failed read fails t.
func (r *reader) stop(t *testing.T) map[string]podenv.Creds {
	t.Helper()
	close(r.stopped)
	if err := await.Receive(t, guard, r.done, "the reader's end"); err != nil {
		t.Fatal(err)
	}
	out := map[string]podenv.Creds{}
	for id, c := range r.seen {
		out[id] = podenv.Creds{AccessKeyID: id, SecretAccessKey: c.SecretAccessKey, Token: c.SessionToken}
	}
	return out
}

// build is the sidecar binary, built once in the background for the credential_process test.
type build struct {
	done chan struct{}
	path string
	out  []byte
	err  error
}

// startBuild runs `go build ./cmd/sidecar` (with -race when the tests have it, so the build
// reuses the packages the test build compiled) into a temporary directory.
func (e *env) startBuild(t *testing.T) *build {
	t.Helper()
	b := &build{done: make(chan struct{}), path: filepath.Join(t.TempDir(), "sidecar")}
	goTool, err := exec.LookPath("go")
	if err != nil {
		b.err = fmt.Errorf("find the go command: %w", err)
		close(b.done)
		return b
	}
	args := []string{"build", "-o", b.path}
	if raceEnabled {
		args = append(args, "-race")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	cmd := exec.CommandContext(ctx, goTool, append(args, "./cmd/sidecar")...)
	cmd.Dir = e.root
	go func() {
		defer close(b.done)
		defer cancel()
		b.out, b.err = cmd.CombinedOutput()
	}()
	t.Cleanup(func() {
		cancel()
		await.Receive(t, guard, b.done, "go build's end after cancel")
	})
	return b
}

// wait returns the binary's path once it is built.
func (b *build) wait(t *testing.T) string {
	t.Helper()
	start := time.Now()
	select {
	case <-b.done:
	case <-time.After(5 * time.Minute):
		t.Fatal("go build ./cmd/sidecar did not finish within 5 min")
	}
	if b.err != nil {
		t.Fatalf("go build ./cmd/sidecar: %v\n%s", b.err, b.out)
	}
	t.Logf("sidecar binary ready after waiting %v", time.Since(start).Round(time.Millisecond))
	return b.path
}
