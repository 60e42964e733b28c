package diagnose

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/credsidecar/credsidecar/internal/findings"
	"github.com/credsidecar/credsidecar/internal/policy"
	"github.com/credsidecar/credsidecar/internal/testkit/testbed"
)

// deniedBucket exists on the test bed but the role's permission policy does not name it.
const deniedBucket = "denied-bucket"

// bed is the one issuer and SeaweedFS instance every test-bed case of this package shares.
type bed struct {
	iss  *testbed.Issuer
	weed *testbed.SeaweedFS
}

// env is the pod's environment for a check against the bed with the token at tokenFile.
func (b *bed) env(tokenFile string) map[string]string {
	return map[string]string{
		"AWS_ROLE_ARN":                b.weed.RoleARN(),
		"AWS_WEB_IDENTITY_TOKEN_FILE": tokenFile,
		"AWS_REGION":                  testbed.Region,
		"AWS_ENDPOINT_URL":            b.weed.Endpoint(), // STS and S3, as for the uploader
		"S3_USE_PATH_STYLE":           "true",
	}
}

// projected writes a token the way the kubelet does (..data symlink swap) and returns its path.
func (b *bed) projected(t *testing.T, req testbed.TokenRequest) string {
	t.Helper()
	return testbed.NewProjectorForTest(t, testbed.ProjectorOptions{Minter: b.iss.Minter(req)}).Path()
}

// copied writes a token into a plain file, as someone who copied a token would.
func (b *bed) copied(t *testing.T, req testbed.TokenRequest) string {
	t.Helper()
	tok, err := b.iss.Mint(req)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, filepath.Join(t.TempDir(), "token"), tok)
}

// run runs `sidecar check --output json` and returns the decoded report and the exit code. It
// fails t if the output contains the token or any of its parts.
func run(t *testing.T, env map[string]string, args ...string) (*Report, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Main(t.Context(), append([]string{"--output", "json"}, args...), envFunc(env), &stdout, &stderr)
	if stderr.Len() != 0 {
		t.Errorf("stderr: %s", stderr.String())
	}
	var r Report
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("output is not the JSON report: %v\n%s", err, stdout.String())
	}
	if tok, err := os.ReadFile(env["AWS_WEB_IDENTITY_TOKEN_FILE"]); err == nil && len(tok) > 0 {
		for _, part := range strings.Split(strings.TrimSpace(string(tok)), ".") {
			if len(part) >= 8 && strings.Contains(stdout.String(), part) {
				t.Errorf("the report contains part of the token")
			}
		}
	}
	if t.Failed() {
		t.Logf("report:\n%s", stdout.String())
	}
	return &r, code
}

// find returns the finding with id, failing t when there is none.
func find(t *testing.T, r *Report, id string) findings.Finding {
	t.Helper()
	for _, f := range r.Findings {
		if f.ID == id {
			return f
		}
	}
	t.Fatalf("no %s finding; findings: %+v", id, r.Findings)
	return findings.Finding{}
}

func contains(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s %q lacks %q", what, s, sub)
		}
	}
}

// TestCheckOnTestbed reproduces each diagnosis against real parts: tokens from the test bed's
// issuer, and SeaweedFS's own STS and S3 answers.
func TestCheckOnTestbed(t *testing.T) {
	if testing.Short() {
		t.Skip("starts SeaweedFS")
	}
	iss := testbed.StartIssuerForTest(t, testbed.IssuerOptions{})
	b := &bed{iss: iss, weed: testbed.StartSeaweedFSForTest(t, testbed.SeaweedFSOptions{Issuer: iss, ExtraBuckets: []string{deniedBucket}})}
	issPath := policy.ProviderPath(iss.URL())

	t.Run("healthy projected token, S3 probe passes and cleans up", func(t *testing.T) {
		r, code := run(t, b.env(b.projected(t, testbed.TokenRequest{})), "--probe-s3", b.weed.Bucket())
		if code != 0 || !r.OK || len(r.Findings) != 0 {
			t.Fatalf("exit %d, findings %+v", code, r.Findings)
		}
		if !r.STS.OK || r.STS.CallerAccount != testbed.AccountID || !strings.HasPrefix(r.STS.AccessKeyID, "****") {
			t.Errorf("sts result %+v", r.STS)
		}
		if r.Token.Subject != testbed.Subject(testbed.DefaultNamespace, testbed.DefaultServiceAccount) || r.Token.Issuer != iss.URL() {
			t.Errorf("token summary %+v", r.Token)
		}
		for _, a := range r.S3.Actions {
			if !a.OK {
				t.Errorf("%s failed: %s %s", a.Action, a.Code, a.Message)
			}
		}
		_, err := b.weed.S3Client(b.weed.AdminCredentials()).HeadObject(t.Context(), &s3.HeadObjectInput{
			Bucket: aws.String(b.weed.Bucket()), Key: aws.String(r.S3.Key),
		})
		var apiErr smithy.APIError
		if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "NotFound" {
			t.Errorf("probe object %s still there or unknown: %v", r.S3.Key, err)
		}
	})

	// Case 1: the variable and the volumeMount disagree.
	t.Run("1 token file missing", func(t *testing.T) {
		tokenPath := b.projected(t, testbed.TokenRequest{})
		wrong := filepath.Join(filepath.Dir(tokenPath), "azure-identity-token")
		r, code := run(t, b.env(wrong))
		f := find(t, r, findings.IDTokenMissing)
		if code != 1 || r.STS.Called {
			t.Errorf("exit %d, sts called %v", code, r.STS.Called)
		}
		contains(t, "what", f.What, "AWS_WEB_IDENTITY_TOKEN_FILE="+wrong)
		contains(t, "fix", f.Fix, "AWS_WEB_IDENTITY_TOKEN_FILE to "+tokenPath, "mountPath: "+filepath.Dir(tokenPath), "path: azure-identity-token")
	})

	// Case 2: the token was projected without `audience:`.
	t.Run("2 multiple audiences, one of them registered", func(t *testing.T) {
		r, code := run(t, b.env(b.projected(t, testbed.TokenRequest{Audiences: iss.ClusterAudiences()})))
		f := find(t, r, findings.IDTokenMultipleAudiences)
		// SeaweedFS accepts a token when any audience is a client id; AWS's :aud condition does not,
		// hence a warning that does not fail the check.
		if f.Severity != findings.SeverityWarning || code != 0 || !r.STS.OK {
			t.Errorf("severity %s, exit %d, sts ok %v", f.Severity, code, r.STS.OK)
		}
		contains(t, "fix", f.Fix, "audience: "+iss.Audience())
	})
	t.Run("2 multiple audiences, none registered", func(t *testing.T) {
		r, code := run(t, b.env(b.projected(t, testbed.TokenRequest{Audiences: iss.ClusterAudiences()[1:]})))
		f := find(t, r, findings.IDTokenMultipleAudiences)
		if f.Severity != findings.SeverityError || code != 1 {
			t.Errorf("severity %s, exit %d", f.Severity, code)
		}
		contains(t, "fix", f.Fix, "audience: "+iss.Audience())
		contains(t, "sts fix", find(t, r, findings.IDSTSInvalidToken).Fix, "audience: "+iss.Audience(), "--client-id-list "+iss.Audience())
	})

	// Case 3: audience and issuer differ by the trailing slash.
	t.Run("3 audience without the trailing slash", func(t *testing.T) {
		noSlash := strings.TrimSuffix(iss.URL(), "/")
		r, code := run(t, b.env(b.projected(t, testbed.TokenRequest{Audiences: []string{noSlash}})))
		f := find(t, r, findings.IDAudienceTrailingSlash)
		if f.Severity != findings.SeverityError || code != 1 || r.STS.Code != "InvalidParameterValue" {
			t.Errorf("severity %s, exit %d, sts code %s", f.Severity, code, r.STS.Code)
		}
		contains(t, "fix", f.Fix, "audience: "+iss.URL(), "exactly "+noSlash)
	})

	// Case 4: a copied token that nobody rotates.
	t.Run("4 token expired", func(t *testing.T) {
		r, code := run(t, b.env(b.copied(t, testbed.TokenRequest{IssuedAt: time.Now().Add(-2 * time.Hour)})))
		f := find(t, r, findings.IDTokenExpired)
		if code != 1 || r.STS.Code != "ExpiredTokenException" {
			t.Errorf("exit %d, sts code %s", code, r.STS.Code)
		}
		contains(t, "fix", f.Fix, "projected volume", "audience: \""+iss.Audience()+"\"")
		for _, g := range r.Findings {
			if g.ID == findings.IDSTSExpiredToken {
				t.Errorf("STS's verdict repeats token-expired: %+v", g)
			}
		}
	})
	t.Run("4 token past its rotation point", func(t *testing.T) {
		r, code := run(t, b.env(b.copied(t, testbed.TokenRequest{IssuedAt: time.Now().Add(-55 * time.Minute)})))
		f := find(t, r, findings.IDTokenExpiring)
		if f.Severity != findings.SeverityWarning || code != 0 || !r.STS.OK {
			t.Errorf("severity %s, exit %d, sts ok %v", f.Severity, code, r.STS.OK)
		}
		contains(t, "fix", f.Fix, "projected volume", "expirationSeconds")
	})

	// Case 5: STS does not accept the token itself (AWS: InvalidIdentityToken).
	for _, tc := range []struct {
		name string
		req  testbed.TokenRequest
		aud  string
	}{
		{name: "audience not a client id", req: testbed.TokenRequest{Audiences: []string{"sts.amazonaws.com"}}, aud: "sts.amazonaws.com"},
		{name: "signature from a key the issuer does not publish", req: testbed.TokenRequest{Key: testbed.ForeignKeyCurrentKID}, aud: iss.Audience()},
		{name: "signing key unknown to the JWKS", req: testbed.TokenRequest{Key: testbed.ForeignKey}, aud: iss.Audience()},
	} {
		t.Run("5 "+tc.name, func(t *testing.T) {
			r, code := run(t, b.env(b.projected(t, tc.req)))
			f := find(t, r, findings.IDSTSInvalidToken)
			if code != 1 {
				t.Errorf("exit %d", code)
			}
			contains(t, "fix", f.Fix, "aws iam create-open-id-connect-provider --url "+iss.URL()+" --client-id-list "+tc.aud,
				"--client-id "+tc.aud, "JWKS")
		})
	}

	// Case 5b: the issuer's documents as STS fetches them: the key missing from the JWKS, a
	// discovery document for another issuer, an issuer nobody serves.
	t.Run("5b token key missing from the published JWKS", func(t *testing.T) {
		r, _ := run(t, b.env(b.projected(t, testbed.TokenRequest{Key: testbed.ForeignKey})))
		f := find(t, r, findings.IDIssuerKeyMissing)
		contains(t, "what", f.What, "which the JWKS at "+iss.URL())
		contains(t, "fix", f.Fix, "sidecar issuer publish", "--service-account-key-file")
	})
	t.Run("5b discovery document of another issuer", func(t *testing.T) {
		noSlash := strings.TrimSuffix(iss.URL(), "/")
		r, code := run(t, b.env(b.copied(t, testbed.TokenRequest{Issuer: noSlash})))
		f := find(t, r, findings.IDIssuerMismatch)
		if code != 1 || f.Severity != findings.SeverityError {
			t.Errorf("exit %d, severity %s", code, f.Severity)
		}
		contains(t, "what", f.What, `names issuer "`+iss.URL()+`"; the token's iss is "`+noSlash+`"`)
		contains(t, "fix", f.Fix, "--public-url "+noSlash)
	})
	t.Run("5b issuer nobody serves", func(t *testing.T) {
		gone := "http://" + testbed.ClosedAddr(t)
		r, code := run(t, b.env(b.copied(t, testbed.TokenRequest{Issuer: gone + "/cluster/"})))
		f := find(t, r, findings.IDIssuerUnreachable)
		if code != 1 {
			t.Errorf("exit %d", code)
		}
		contains(t, "what", f.What, "GET "+gone+"/cluster/.well-known/openid-configuration", "connection refused")
		contains(t, "fix", f.Fix, "sidecar issuer publish --bucket")
	})

	// Case 6: the trust policy names another service account.
	t.Run("6 trust policy denies the service account", func(t *testing.T) {
		r, code := run(t, b.env(b.projected(t, testbed.TokenRequest{ServiceAccount: "other-sa"})), "--probe-s3", b.weed.Bucket())
		f := find(t, r, findings.IDSTSAccessDenied)
		if code != 1 || r.STS.Code != "AccessDenied" || r.S3 == nil || r.S3.Skipped == "" || len(r.S3.Actions) != 0 {
			t.Errorf("exit %d, sts code %s, s3 %+v", code, r.STS.Code, r.S3)
		}
		contains(t, "fix", f.Fix,
			`"`+issPath+`:sub": "system:serviceaccount:default:other-sa"`,
			`"`+issPath+`:aud": "`+iss.Audience()+`"`,
			"--namespace default --service-account other-sa --account "+testbed.AccountID)
	})

	// Case 7: credentials work, the bucket is not in the permission policy.
	t.Run("7 S3 access denied", func(t *testing.T) {
		r, code := run(t, b.env(b.projected(t, testbed.TokenRequest{})), "--probe-s3", deniedBucket)
		f := find(t, r, findings.IDS3AccessDenied)
		if code != 1 || !r.STS.OK {
			t.Errorf("exit %d, sts ok %v", code, r.STS.OK)
		}
		contains(t, "what", f.What, "s3:ListBucket", "s3:PutObject", "s3:DeleteObject", deniedBucket)
		contains(t, "fix", f.Fix, `"Resource":"arn:aws:s3:::`+deniedBucket+`/*"`, `"Resource":"arn:aws:s3:::`+deniedBucket+`"`, "--bucket "+deniedBucket)
	})

	// Case 8: STS cannot be reached at all.
	t.Run("8 closed port", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		endpoint := "http://" + ln.Addr().String()
		ln.Close()
		env := b.env(b.projected(t, testbed.TokenRequest{}))
		env["AWS_ENDPOINT_URL"] = endpoint
		r, code := run(t, env, "--timeout", "5s")
		f := find(t, r, findings.IDSTSUnreachable)
		if code != 1 || r.STS.Code != "NoAnswer" {
			t.Errorf("exit %d, sts code %s", code, r.STS.Code)
		}
		contains(t, "what", f.What, endpoint+" (region "+testbed.Region+")", "refused")
		contains(t, "fix", f.Fix, ln.Addr().String(), "AWS_ENDPOINT_URL_STS")
	})
	t.Run("8 untrusted TLS certificate", func(t *testing.T) {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			t.Error("the check sent a request past an untrusted certificate")
		}))
		srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is the point
		srv.StartTLS()
		defer srv.Close()
		env := b.env(b.projected(t, testbed.TokenRequest{}))
		env["AWS_ENDPOINT_URL_STS"] = srv.URL
		r, code := run(t, env, "--timeout", "5s")
		f := find(t, r, findings.IDSTSUnreachable)
		if code != 1 {
			t.Errorf("exit %d", code)
		}
		contains(t, "what", f.What, srv.URL+" (region "+testbed.Region+")", "TLS", "unknown authority")
		contains(t, "fix", f.Fix, strings.TrimPrefix(srv.URL, "https://"), "SSL_CERT_FILE")
	})

	t.Run("several roles: one report each, a refused one fails the check", func(t *testing.T) {
		env := b.env(b.projected(t, testbed.TokenRequest{}))
		env["CREDSIDECAR_ROLES"] = "again=" + b.weed.RoleARN() + ",missing=" + testbed.RoleARN("no-such-role")
		var stdout, stderr bytes.Buffer
		code := Main(t.Context(), []string{"--output", "json"}, envFunc(env), &stdout, &stderr)
		if code != 1 || stderr.Len() != 0 {
			t.Fatalf("exit %d (want 1), stderr %s", code, stderr.String())
		}
		dec := json.NewDecoder(&stdout)
		var reports []Report
		for dec.More() {
			var r Report
			if err := dec.Decode(&r); err != nil {
				t.Fatalf("output is not one JSON report per role: %v", err)
			}
			reports = append(reports, r)
		}
		if len(reports) != 3 {
			t.Fatalf("%d reports, want 3 (the unnamed role, again, missing)", len(reports))
		}
		for i, want := range []struct {
			role, arn string
			ok        bool
		}{{"", b.weed.RoleARN(), true}, {"again", b.weed.RoleARN(), true}, {"missing", testbed.RoleARN("no-such-role"), false}} {
			r := reports[i]
			if r.Role != want.role || r.RoleARN != want.arn || r.OK != want.ok || r.STS.OK != want.ok {
				t.Errorf("report %d: role %q %s, ok %v, sts ok %v; want %q %s, ok %v", i, r.Role, r.RoleARN, r.OK, r.STS.OK,
					want.role, want.arn, want.ok)
			}
		}
		if len(reports[2].Findings) == 0 {
			t.Error("the refused role's report has no finding")
		}
		stdout.Reset()
		Main(t.Context(), nil, envFunc(env), &stdout, &stderr)
		contains(t, "text report", stdout.String(), "== the unnamed role (--role-arn) ==", "== role again (--role again=...) ==",
			"== role missing (--role missing=...) ==", testbed.RoleARN("no-such-role")+" (missing)", "FAIL:")
	})
}
