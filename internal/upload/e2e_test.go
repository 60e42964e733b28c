package upload

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/endpointcreds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/credsidecar/credsidecar/internal/testkit/testbed"
)

// isolateAWSEnv clears every AWS_* variable for the test and points the SDK away from the
// machine's shared config and from EC2 IMDS (which is not on loopback), so only what the test
// sets is seen. The AWS SDK reads the process environment, hence t.Setenv.
func isolateAWSEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "AWS_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "no-config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "no-credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// logLines decodes the uploader's JSON log.
func logLines(t *testing.T, stderr string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(stderr))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	return lines
}

func findLine(lines []map[string]any, msg string) map[string]any {
	for _, l := range lines {
		if l["msg"] == msg {
			return l
		}
	}
	return nil
}

// noRetries makes SDK calls fail on the first error, so fault tests take no backoff time.
func noRetries() []func(*config.LoadOptions) error {
	return []func(*config.LoadOptions) error{
		config.WithRetryMaxAttempts(1),
		config.WithEndpointCredentialOptions(func(o *endpointcreds.Options) { o.Retryer = aws.NopRetryer{} }),
	}
}

type runResult struct {
	code           int
	stdout, stderr string
	lines          []map[string]any
}

func runMain(t *testing.T, args []string, awsOpts []func(*config.LoadOptions) error) runResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Main(t.Context(), Options{
		Version: "e2e", Args: args, Getenv: os.Getenv, Stdout: &stdout, Stderr: &stderr, AWSConfig: awsOpts,
	})
	r := runResult{code: code, stdout: stdout.String(), stderr: stderr.String()}
	if code != ExitConfig {
		r.lines = logLines(t, r.stderr)
	}
	t.Logf("exit %d, stdout %q, log:\n%s", code, r.stdout, r.stderr)
	return r
}

// repoPermissionPolicy is manifests/iam/permission-policy.json for bucket, as a SeaweedFS policy:
// the e2e runs with exactly the permissions the project tells users to grant.
func repoPermissionPolicy(t *testing.T, bucket string) testbed.Policy {
	t.Helper()
	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(root, "manifests", "iam", "permission-policy.json"))
	if err != nil {
		t.Fatal(err)
	}
	doc := strings.ReplaceAll(string(raw), "${BUCKET}", bucket)
	p := testbed.Policy{Name: testbed.DefaultPolicyName}
	dec := json.NewDecoder(strings.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p.Document); err != nil {
		t.Fatalf("permission-policy.json: %v", err)
	}
	return p
}

func TestUploadAgainstSeaweedFS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts SeaweedFS")
	}
	const forbidden = "forbidden-bucket"
	iss := testbed.StartIssuerForTest(t, testbed.IssuerOptions{})
	iam := testbed.DefaultIAMConfig(iss, testbed.DefaultBucket, "")
	iam.Policies = []testbed.Policy{repoPermissionPolicy(t, testbed.DefaultBucket)}
	w := testbed.StartSeaweedFSForTest(t, testbed.SeaweedFSOptions{Issuer: iss, IAM: &iam, ExtraBuckets: []string{forbidden}})

	// The web-identity exchange the sidecar would make; its credentials reach the uploader
	// through the environment here (the sidecar path has its own end-to-end tests).
	tok, err := iss.Mint(testbed.TokenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := w.STSClient().AssumeRoleWithWebIdentity(t.Context(), &sts.AssumeRoleWithWebIdentityInput{
		RoleArn: aws.String(w.RoleARN()), RoleSessionName: aws.String("upload-e2e"), WebIdentityToken: aws.String(tok),
	})
	if err != nil {
		t.Fatalf("AssumeRoleWithWebIdentity: %v", err)
	}
	isolateAWSEnv(t)
	t.Setenv("AWS_ACCESS_KEY_ID", aws.ToString(out.Credentials.AccessKeyId))
	t.Setenv("AWS_SECRET_ACCESS_KEY", aws.ToString(out.Credentials.SecretAccessKey))
	t.Setenv("AWS_SESSION_TOKEN", aws.ToString(out.Credentials.SessionToken))
	// Test inputs live here, outside the scratch directory below.
	files := t.TempDir()
	// Nothing may land on local disk: point every scratch location at empty directories.
	scratch := t.TempDir()
	t.Setenv("TMPDIR", scratch)
	t.Setenv("HOME", scratch)
	t.Setenv("POD_NAME", "s3-upload-test-x7k2p")
	t.Setenv("POD_NAMESPACE", "default")

	admin := w.S3Client(w.AdminCredentials())
	base := []string{"--endpoint-url", w.Endpoint(), "--sts-endpoint-url", w.Endpoint(), "--region", testbed.Region}

	t.Run("generated test file", func(t *testing.T) {
		r := runMain(t, append(base, "--bucket", w.Bucket()), nil)
		if r.code != ExitOK {
			t.Fatalf("exit %d", r.code)
		}
		url := strings.TrimSpace(r.stdout)
		key, ok := strings.CutPrefix(url, "s3://"+w.Bucket()+"/uploads/aks-oidc-test-")
		if !ok || !strings.HasSuffix(key, ".txt") {
			t.Fatalf("stdout %q is not the s3:// URL of a default key", r.stdout)
		}
		for _, msg := range []string{"start", "credentials resolved", "identity verified", "target", "upload started", "upload verified", "upload succeeded", "end"} {
			if findLine(r.lines, msg) == nil {
				t.Errorf("no %q log line", msg)
			}
		}
		id := findLine(r.lines, "identity verified")
		if id["account"] != testbed.AccountID || id["role_arn"] != testbed.DefaultRoleARN {
			t.Errorf("identity line %v, want account %s role %s", id, testbed.AccountID, testbed.DefaultRoleARN)
		}
		if ok := findLine(r.lines, "upload succeeded"); ok == nil || ok["url"] != url {
			t.Errorf("success line %v does not carry the URL %s", ok, url)
		}
		if strings.Contains(r.stderr, os.Getenv("AWS_SECRET_ACCESS_KEY")) || strings.Contains(r.stderr, os.Getenv("AWS_SESSION_TOKEN")) {
			t.Error("a secret reached the log")
		}
		obj, err := admin.GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(w.Bucket()), Key: aws.String(strings.TrimPrefix(url, "s3://"+w.Bucket()+"/"))})
		if err != nil {
			t.Fatalf("read back: %v", err)
		}
		body, _ := io.ReadAll(obj.Body)
		obj.Body.Close()
		for _, want := range []string{"pod: s3-upload-test-x7k2p", "namespace: default", url} {
			if !bytes.Contains(body, []byte(want)) {
				t.Errorf("object lacks %q:\n%s", want, body)
			}
		}
	})

	t.Run("static keys shadowing the sidecar are called out", func(t *testing.T) {
		t.Setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:9910/v1/credentials")
		r := runMain(t, append(base, "--bucket", w.Bucket(), "--key", "e2e/shadowed.txt"), nil)
		if r.code != ExitOK {
			t.Fatalf("exit %d", r.code)
		}
		for _, l := range r.lines {
			if l["level"] == "WARN" && strings.Contains(l["msg"].(string), "shadows the sidecar") && l["source"] == "EnvConfigCredentials" {
				return
			}
		}
		t.Error("no warning that AWS_ACCESS_KEY_ID shadows the container endpoint")
	})

	t.Run("multipart file", func(t *testing.T) {
		// 40 MiB of incompressible bytes in 5 MiB parts: eight UploadPart calls.
		data := make([]byte, 40*MiB)
		rnd := rand.NewChaCha8([32]byte{1})
		rnd.Read(data)
		path := filepath.Join(files, "payload.bin")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		r := runMain(t, append(base, "--bucket", w.Bucket(), "--file", path, "--key", "e2e/payload.bin", "--part-size", "5MiB", "--concurrency", "3"), nil)
		if r.code != ExitOK {
			t.Fatalf("exit %d", r.code)
		}
		if got := strings.TrimSpace(r.stdout); got != "s3://"+w.Bucket()+"/e2e/payload.bin" {
			t.Errorf("stdout %q", got)
		}
		if st := findLine(r.lines, "upload started"); st["multipart"] != true || st["bytes"] != float64(40*MiB) {
			t.Errorf("upload started line %v, want multipart of %d bytes", st, 40*MiB)
		}
		v := findLine(r.lines, "upload verified")
		if v == nil || v["checksum_type"] != "FULL_OBJECT" {
			t.Errorf("verified line %v, want a FULL_OBJECT checksum", v)
		}
		head, err := admin.HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: aws.String(w.Bucket()), Key: aws.String("e2e/payload.bin")})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToInt64(head.ContentLength) != 40*MiB || !strings.HasSuffix(strings.Trim(aws.ToString(head.ETag), `"`), "-8") {
			t.Errorf("stored %d bytes, ETag %s; want %d bytes in 8 parts", aws.ToInt64(head.ContentLength), aws.ToString(head.ETag), 40*MiB)
		}
		obj, err := admin.GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(w.Bucket()), Key: aws.String("e2e/payload.bin")})
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		io.Copy(h, obj.Body)
		obj.Body.Close()
		if want := sha256.Sum256(data); !bytes.Equal(h.Sum(nil), want[:]) {
			t.Error("stored bytes differ from the file")
		}
	})

	t.Run("memory does not grow with the file", func(t *testing.T) {
		// Allocation over a whole run, for a file 4x larger: a streaming upload allocates
		// about (concurrency+2) part buffers either way; buffering the file would add 48 MiB.
		allocs := map[int64]uint64{}
		for _, size := range []int64{16 * MiB, 64 * MiB} {
			path := filepath.Join(files, fmt.Sprintf("sparse-%d.bin", size))
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Truncate(size); err != nil { // sparse: no memory or disk spent here
				t.Fatal(err)
			}
			f.Close()
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			r := runMain(t, append(base, "--bucket", w.Bucket(), "--file", path, "--key", "e2e/sparse.bin", "--part-size", "5MiB", "--concurrency", "2"), nil)
			runtime.ReadMemStats(&after)
			if r.code != ExitOK {
				t.Fatalf("exit %d", r.code)
			}
			allocs[size] = after.TotalAlloc - before.TotalAlloc
			t.Logf("%d MiB file: %d MiB allocated", size/MiB, allocs[size]/uint64(MiB))
		}
		if growth := int64(allocs[64*MiB]) - int64(allocs[16*MiB]); growth > 12*MiB {
			t.Errorf("allocation grew by %d MiB for 48 MiB more data: the upload is not streaming", growth/MiB)
		}
	})

	t.Run("forbidden bucket is AccessDenied", func(t *testing.T) {
		r := runMain(t, append(base, "--bucket", forbidden), noRetries())
		if r.code != ExitFailed {
			t.Fatalf("exit %d, want %d", r.code, ExitFailed)
		}
		f := findLine(r.lines, "upload failed")
		if f == nil || f["step"] != StepUpload || f["code"] != "AccessDenied" {
			t.Fatalf("failure line %v, want step upload code AccessDenied", f)
		}
		if cause, _ := f["cause"].(string); !strings.Contains(cause, "s3:PutObject on arn:aws:s3:::"+forbidden+"/*") {
			t.Errorf("cause %q does not name the missing permission", cause)
		}
		if r.stdout != "" {
			t.Errorf("stdout %q on failure, want nothing", r.stdout)
		}
	})

	t.Run("forbidden bucket, multipart", func(t *testing.T) {
		path := filepath.Join(files, "big.bin")
		if err := os.WriteFile(path, make([]byte, 6*MiB), 0o600); err != nil {
			t.Fatal(err)
		}
		r := runMain(t, append(base, "--bucket", forbidden, "--file", path, "--part-size", "5MiB"), noRetries())
		f := findLine(r.lines, "upload failed")
		if r.code != ExitFailed || f == nil || f["code"] != "AccessDenied" || f["operation"] != "CreateMultipartUpload" {
			t.Fatalf("exit %d, failure line %v; want AccessDenied on CreateMultipartUpload", r.code, f)
		}
	})

	t.Run("bad part size is a configuration error", func(t *testing.T) {
		r := runMain(t, append(base, "--bucket", w.Bucket(), "--part-size", "1MiB"), nil)
		if r.code != ExitConfig || !strings.Contains(r.stderr, "--part-size / UPLOAD_PART_SIZE") {
			t.Fatalf("exit %d stderr %q, want %d naming the flag", r.code, r.stderr, ExitConfig)
		}
	})

	t.Run("missing file is a configuration error", func(t *testing.T) {
		r := runMain(t, append(base, "--bucket", w.Bucket(), "--file", filepath.Join(files, "nope")), nil)
		if r.code != ExitConfig || !strings.Contains(r.stderr, "--file / UPLOAD_FILE") {
			t.Fatalf("exit %d stderr %q, want %d naming the flag", r.code, r.stderr, ExitConfig)
		}
	})

	entries, err := os.ReadDir(scratch)
	if err != nil || len(entries) != 0 {
		t.Errorf("the uploader left %d entries in TMPDIR/HOME (%v)", len(entries), err)
	}
}

// TestCredentialFailures runs Main against a credentials endpoint that answers with the fault a
// sidecar gives when it cannot serve (a fault injector, not a sidecar: it never hands out
// credentials), and without any endpoint at all. No AWS call is reached, so no S3 is needed.
func TestCredentialFailures(t *testing.T) {
	isolateAWSEnv(t)
	tokenFile := filepath.Join(t.TempDir(), "auth-token")
	if err := os.WriteFile(tokenFile, []byte("right-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	sidecar := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("Authorization") != "right-token" {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"code":"Unauthorized","message":"bad token","Code":"Unauthorized","Message":"bad token"}`)
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"code":"CredentialsUnavailable","message":"no credentials yet","Code":"CredentialsUnavailable","Message":"no credentials yet"}`)
	}))
	t.Cleanup(sidecar.Close)
	wrongToken := filepath.Join(t.TempDir(), "other-token")
	if err := os.WriteFile(wrongToken, []byte("wrong-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	tests := []struct {
		name      string
		env       map[string]string
		wantCode  string
		wantCause string
	}{
		{
			name:      "no sidecar env",
			wantCause: "AWS_CONTAINER_CREDENTIALS_FULL_URI is not set",
		},
		{
			name:      "sidecar without credentials",
			env:       map[string]string{"AWS_CONTAINER_CREDENTIALS_FULL_URI": sidecar.URL + "/v1/credentials", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": tokenFile},
			wantCode:  "CredentialsUnavailable",
			wantCause: "STS AssumeRoleWithWebIdentity is failing",
		},
		{
			name:      "wrong token file",
			env:       map[string]string{"AWS_CONTAINER_CREDENTIALS_FULL_URI": sidecar.URL + "/v1/credentials", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": wrongToken},
			wantCode:  "Unauthorized",
			wantCause: "rejected the auth token",
		},
		{
			name:      "token file missing",
			env:       map[string]string{"AWS_CONTAINER_CREDENTIALS_FULL_URI": sidecar.URL + "/v1/credentials", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": tokenFile + ".missing"},
			wantCause: "is missing",
		},
		{
			name:      "sidecar not listening",
			env:       map[string]string{"AWS_CONTAINER_CREDENTIALS_FULL_URI": closedURL + "/v1/credentials", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": tokenFile},
			wantCause: "nothing listens at",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			r := runMain(t, []string{"--bucket", "some-bucket", "--endpoint-url", "http://127.0.0.1:1", "--sts-endpoint-url", "http://127.0.0.1:1"}, noRetries())
			if r.code != ExitFailed {
				t.Fatalf("exit %d, want %d", r.code, ExitFailed)
			}
			f := findLine(r.lines, "upload failed")
			if f == nil || f["step"] != StepCredentials {
				t.Fatalf("failure line %v, want step credentials", f)
			}
			if code, _ := f["code"].(string); code != tt.wantCode {
				t.Errorf("code %q, want %q", code, tt.wantCode)
			}
			if cause, _ := f["cause"].(string); !strings.Contains(cause, tt.wantCause) {
				t.Errorf("cause %q lacks %q", cause, tt.wantCause)
			}
			if strings.Contains(r.stderr, "right-token") || strings.Contains(r.stderr, "wrong-token") {
				t.Error("the auth token reached the log")
			}
		})
	}
}

// The uploader must not outlive its context: an interrupted run fails with exit 1.
func TestInterruptedBeforeStart(t *testing.T) {
	isolateAWSEnv(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var stdout, stderr bytes.Buffer
	code := Main(ctx, Options{Args: []string{"--bucket", "b-1", "--endpoint-url", "http://127.0.0.1:1", "--sts-endpoint-url", "http://127.0.0.1:1"},
		Getenv: os.Getenv, Stdout: &stdout, Stderr: &stderr, AWSConfig: noRetries()})
	if code != ExitFailed || !strings.Contains(stderr.String(), "interrupted") {
		t.Fatalf("exit %d, log %s", code, stderr.String())
	}
}
