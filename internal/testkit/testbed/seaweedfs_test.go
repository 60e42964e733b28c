package testbed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
)

const (
	otherBucket = "other-bucket"
	chainedRole = "AKS-S3-Chained-Role"
)

// apiError returns the AWS error code and HTTP status of err, or fails t.
func apiError(t *testing.T, err error) (string, int) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("error %v is not an AWS API error", err)
	}
	status := 0
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	return ae.ErrorCode(), status
}

func sessionCreds(out *sts.AssumeRoleWithWebIdentityOutput) aws.CredentialsProvider {
	c := out.Credentials
	return credentials.NewStaticCredentialsProvider(aws.ToString(c.AccessKeyId), aws.ToString(c.SecretAccessKey), aws.ToString(c.SessionToken))
}

// TestSeaweedFSWebIdentityEndToEnd runs one SeaweedFS for every case: starting one costs seconds.
func TestSeaweedFSWebIdentityEndToEnd(t *testing.T) {
	iss := StartIssuerForTest(t, IssuerOptions{})
	w := StartSeaweedFSForTest(t, SeaweedFSOptions{
		Issuer:       iss,
		ExtraBuckets: []string{otherBucket},
		ExtraRoles:   []Role{ChainedRole(chainedRole, DefaultRoleName, DefaultPolicyName)},
	})
	ctx := t.Context()
	mint := func(t *testing.T, req TokenRequest) string {
		t.Helper()
		tok, err := iss.Mint(req)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	assume := func(token string) (*sts.AssumeRoleWithWebIdentityOutput, error) {
		return w.STSClient().AssumeRoleWithWebIdentity(ctx, &sts.AssumeRoleWithWebIdentityInput{
			RoleArn:          aws.String(w.RoleARN()),
			RoleSessionName:  aws.String("default.s3-access-pod"),
			WebIdentityToken: aws.String(token),
		})
	}
	mustAssume := func(t *testing.T, token string) *sts.AssumeRoleWithWebIdentityOutput {
		t.Helper()
		out, err := assume(token)
		if err != nil {
			t.Fatalf("AssumeRoleWithWebIdentity: %v", err)
		}
		c := out.Credentials
		if aws.ToString(c.AccessKeyId) == "" || aws.ToString(c.SecretAccessKey) == "" || aws.ToString(c.SessionToken) == "" {
			t.Fatal("credentials incomplete")
		}
		if until := time.Until(aws.ToTime(c.Expiration)); until < 50*time.Minute || until > 61*time.Minute {
			t.Errorf("credentials expire in %s, want the 1 h default", until)
		}
		return out
	}
	putGet := func(t *testing.T, creds aws.CredentialsProvider, key string) {
		t.Helper()
		client := w.S3Client(creds)
		body := "hello from " + key
		if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(w.Bucket()), Key: aws.String(key), Body: strings.NewReader(body)}); err != nil {
			t.Fatalf("PutObject on the allowed bucket: %v", err)
		}
		got, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(w.Bucket()), Key: aws.String(key)})
		if err != nil {
			t.Fatalf("GetObject on the allowed bucket: %v", err)
		}
		defer got.Body.Close()
		b, err := io.ReadAll(got.Body)
		if err != nil || string(b) != body {
			t.Fatalf("GetObject body = %q (%v), want %q", b, err, body)
		}
	}

	t.Run("token to S3 through AssumeRoleWithWebIdentity", func(t *testing.T) {
		out := mustAssume(t, mint(t, TokenRequest{}))
		if got := aws.ToString(out.SubjectFromWebIdentityToken); got != Subject(DefaultNamespace, DefaultServiceAccount) {
			t.Errorf("SubjectFromWebIdentityToken = %q", got)
		}
		putGet(t, sessionCreds(out), "web-identity.txt")

		_, err := w.S3Client(sessionCreds(out)).PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(otherBucket), Key: aws.String("x.txt"), Body: strings.NewReader("x"),
		})
		if err == nil {
			t.Fatal("PutObject on a bucket the policy does not name succeeded")
		}
		if code, status := apiError(t, err); code != "AccessDenied" || status != 403 {
			t.Errorf("PutObject on %s: %s (%d), want AccessDenied (403)", otherBucket, code, status)
		}

		// The admin identity sees what the session wrote: the object is really there.
		obj, err := w.S3Client(w.AdminCredentials()).HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(w.Bucket()), Key: aws.String("web-identity.txt")})
		if err != nil || aws.ToInt64(obj.ContentLength) != int64(len("hello from web-identity.txt")) {
			t.Errorf("HeadObject as admin: %v, length %d", err, aws.ToInt64(obj.ContentLength))
		}
	})

	t.Run("https issuer through tlsCaCert", func(t *testing.T) {
		out := mustAssume(t, mint(t, TokenRequest{Issuer: iss.HTTPSURL(), Audiences: []string{iss.HTTPSAudience()}}))
		putGet(t, sessionCreds(out), "web-identity-tls.txt")
	})

	t.Run("cluster default token with three audiences", func(t *testing.T) {
		// One of the three is the issuer URL, which the provider accepts: AKS's default token is
		// good enough for SeaweedFS when the registered audience is the issuer URL.
		mustAssume(t, mint(t, TokenRequest{Audiences: iss.ClusterAudiences()}))
	})

	t.Run("projected token", func(t *testing.T) {
		p := NewProjectorForTest(t, ProjectorOptions{Minter: iss.Minter(TokenRequest{Lifetime: 10 * time.Minute})})
		tok, err := os.ReadFile(p.Path())
		if err != nil {
			t.Fatal(err)
		}
		mustAssume(t, string(tok))
	})

	// What SeaweedFS answers where AWS STS would answer the code in aws: asserted exactly, so a
	// SeaweedFS upgrade that changes them is noticed.
	refused := []struct {
		name       string
		req        TokenRequest
		wantCode   string
		wantStatus int
		aws        string
	}{
		{name: "other service account", req: TokenRequest{ServiceAccount: "other-sa"}, wantCode: "AccessDenied", wantStatus: 403, aws: "AccessDenied"},
		{name: "expired", req: TokenRequest{Expiry: time.Now().Add(-time.Minute)}, wantCode: "ExpiredTokenException", wantStatus: 400, aws: "ExpiredTokenException"},
		{name: "wrong audience", req: TokenRequest{Audiences: []string{"sts.amazonaws.com"}}, wantCode: "InvalidParameterValue", wantStatus: 400, aws: "InvalidIdentityToken"},
		{name: "foreign key, own kid", req: TokenRequest{Key: ForeignKey}, wantCode: "AccessDenied", wantStatus: 403, aws: "InvalidIdentityToken"},
		{name: "foreign key, published kid", req: TokenRequest{Key: ForeignKeyCurrentKID}, wantCode: "InvalidParameterValue", wantStatus: 400, aws: "InvalidIdentityToken"},
	}
	for _, tt := range refused {
		t.Run("refused/"+tt.name, func(t *testing.T) {
			_, err := assume(mint(t, tt.req))
			if err == nil {
				t.Fatal("STS accepted the token")
			}
			if code, status := apiError(t, err); code != tt.wantCode || status != tt.wantStatus {
				t.Errorf("STS answered %s (%d), want %s (%d) (AWS answers %s)", code, status, tt.wantCode, tt.wantStatus, tt.aws)
			}
		})
	}

	t.Run("role chaining", func(t *testing.T) {
		out := mustAssume(t, mint(t, TokenRequest{}))
		client := sts.New(sts.Options{Region: Region, BaseEndpoint: aws.String(w.Endpoint()), Credentials: sessionCreds(out)})
		chained, err := client.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(RoleARN(chainedRole)), RoleSessionName: aws.String("chained")})
		if err != nil {
			t.Fatalf("AssumeRole %s from a web-identity session: %v", chainedRole, err)
		}
		if got := aws.ToString(chained.AssumedRoleUser.Arn); !strings.Contains(got, ":assumed-role/"+chainedRole+"/chained") {
			t.Errorf("chained ARN = %q", got)
		}
		c := chained.Credentials
		putGet(t, credentials.NewStaticCredentialsProvider(aws.ToString(c.AccessKeyId), aws.ToString(c.SecretAccessKey), aws.ToString(c.SessionToken)), "chained.txt")
	})

	t.Run("issuer key rotation", func(t *testing.T) {
		before := mint(t, TokenRequest{})
		mustAssume(t, before) // SeaweedFS now holds the JWKS with the old key only
		if _, err := iss.RotateKey(); err != nil {
			t.Fatal(err)
		}
		// An unknown kid makes SeaweedFS fetch the JWKS again.
		mustAssume(t, mint(t, TokenRequest{}))
		mustAssume(t, before)
	})

	t.Run("close leaves nothing behind", func(t *testing.T) {
		pid, dir := w.Pid(), w.Dir()
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if processAlive(pid) {
			t.Errorf("weed pid %d still exists after Close", pid)
		}
		for i, f := range weedPortFlags() {
			ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(w.ports[i]))
			if err != nil {
				t.Errorf("port %d (-%s) still taken after Close: %v", w.ports[i], f, err)
				continue
			}
			ln.Close()
		}
		sockets := 0
		for i, f := range weedPortFlags() {
			if sock := grpcSocket(f, w.ports[i]); sock != "" {
				sockets++
				if _, err := os.Lstat(sock); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s left behind: %v", sock, err)
				}
			}
		}
		if sockets != 5 {
			t.Errorf("checked %d gRPC sockets, want master, volume, filer, s3 and admin", sockets)
		}
		if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s left behind: %v", dir, err)
		}
		if err := w.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})
}

func TestStartSeaweedFSFailures(t *testing.T) {
	iss := StartIssuerForTest(t, IssuerOptions{})
	tests := []struct {
		name string
		opts SeaweedFSOptions
		want string
	}{
		{name: "no issuer", opts: SeaweedFSOptions{}, want: "Issuer or IAM is required"},
		{name: "binary missing", opts: SeaweedFSOptions{Issuer: iss, Binary: filepath.Join(t.TempDir(), "weed")}, want: "no such file"},
		// A weed that dies at once is retried on new ports, then reported, within the bound.
		{name: "binary exits at once", opts: SeaweedFSOptions{Issuer: iss, Binary: "/bin/false"}, want: "weed exited before it was ready"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmp := t.TempDir()
			tt.opts.TempDir = tmp
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			s, err := StartSeaweedFS(ctx, tt.opts)
			if err == nil {
				s.Close()
				t.Fatal("StartSeaweedFS succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want one containing %q", err, tt.want)
			}
			if left, _ := os.ReadDir(tmp); len(left) != 0 {
				t.Errorf("failed start left %d entries in its temp dir", len(left))
			}
		})
	}
}

func TestFindWeed(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatalf("RepoRoot from the package directory: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "go.mod")); err != nil || modulePath(b) != ModulePath {
		t.Fatalf("RepoRoot = %s, whose go.mod is not module %s", root, ModulePath)
	}

	fakeRoot := t.TempDir()
	os.WriteFile(filepath.Join(fakeRoot, "go.mod"), []byte("module "+ModulePath+"\n\ngo 1.26.0\n"), 0o644)
	nested := filepath.Join(fakeRoot, "tools", "x")
	os.MkdirAll(nested, 0o755)
	os.WriteFile(filepath.Join(fakeRoot, "tools", "go.mod"), []byte("module "+ModulePath+"/tools\n"), 0o644)
	withWeed := t.TempDir()
	os.WriteFile(filepath.Join(withWeed, "go.mod"), []byte("module "+ModulePath+"\n"), 0o644)
	os.MkdirAll(filepath.Join(withWeed, ".cache", "bin"), 0o755)
	os.WriteFile(filepath.Join(withWeed, ".cache", "bin", "weed"), []byte("#!/bin/sh\n"), 0o755)
	outside := t.TempDir()

	tests := []struct {
		name    string
		env     string
		cwd     string
		want    string // path found
		wantErr string
	}{
		{name: "env wins", env: filepath.Join(withWeed, ".cache", "bin", "weed"), cwd: outside, want: filepath.Join(withWeed, ".cache", "bin", "weed")},
		{name: "env names a missing file", env: filepath.Join(outside, "nope"), cwd: withWeed, wantErr: WeedEnv},
		{name: "cache of the module root", cwd: withWeed, want: filepath.Join(withWeed, ".cache", "bin", "weed")},
		{name: "walks past a nested module to the root, which lacks weed", cwd: nested, wantErr: "run `make weed`"},
		{name: "outside the module", cwd: outside, wantErr: "no go.mod of module " + ModulePath},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(WeedEnv, tt.env)
			t.Chdir(tt.cwd)
			got, err := FindWeed()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("FindWeed = %q, %v; want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("FindWeed = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestSweepStaleRemovesLeftoversOfKilledRuns(t *testing.T) {
	done := exec.Command("true")
	if err := done.Run(); err != nil {
		t.Fatal(err)
	}
	deadPid := done.ProcessState.Pid()

	ports, err := pickPorts(len(weedPortFlags()))
	if err != nil {
		t.Fatal(err)
	}
	// A socket like the one weed's master leaves at /tmp when killed.
	sock := grpcSocket("master.port.grpc", ports[3])
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	t.Cleanup(func() { os.Remove(sock) })

	portList := make([]string, len(ports))
	for i, p := range ports {
		portList[i] = strconv.Itoa(p)
	}
	instance := func(owner, weed int) string {
		dir, err := os.MkdirTemp("", "credsidecar-weed-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		body := fmt.Sprintf("%d %d %s\n", owner, weed, strings.Join(portList, ","))
		if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	killed := instance(deadPid, deadPid)
	running := instance(os.Getppid(), deadPid)
	weedAlive := instance(deadPid, os.Getppid())

	sweepStale(slog.New(slog.DiscardHandler))

	if _, err := os.Stat(killed); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("directory of a killed run kept: %v", err)
	}
	if _, err := os.Lstat(sock); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket of a killed run kept: %v", err)
	}
	for name, dir := range map[string]string{"owner alive": running, "weed alive": weedAlive} {
		if _, err := os.Stat(dir); err != nil {
			t.Errorf("%s: directory removed: %v", name, err)
		}
	}
}
