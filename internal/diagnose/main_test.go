package diagnose

import (
	"bytes"
	"encoding/json"
	"flag"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/credsidecar/credsidecar/internal/findings"
	"github.com/credsidecar/credsidecar/internal/testkit/goldenfile"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	goldenfile.Check(t, filepath.Join("testdata", name), got, *update)
}

func envFunc(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

func TestParseArgs(t *testing.T) {
	base := map[string]string{
		"AWS_ROLE_ARN":                testRole,
		"AWS_WEB_IDENTITY_TOKEN_FILE": "/var/run/secrets/azure/tokens/azure-identity-token",
		"AWS_REGION":                  "eu-west-1",
	}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		want       Options
		wantOutput string
	}{
		{
			name: "environment only, as in the pod",
			env:  base,
			want: Options{RoleARN: testRole, TokenFile: base["AWS_WEB_IDENTITY_TOKEN_FILE"], TokenFileSource: "AWS_WEB_IDENTITY_TOKEN_FILE",
				Region: "eu-west-1", Duration: time.Hour, Timeout: 10 * time.Second},
			wantOutput: "text",
		},
		{
			name: "flags win over the environment",
			args: []string{"--token-file", "/t", "--region", "us-east-2", "--probe-s3", "b-1", "--output", "json", "--timeout", "3s", "--duration", "2h"},
			env:  with("CREDSIDECAR_CHECK_OUTPUT", "text", "CREDSIDECAR_CHECK_PROBE_S3", "other"),
			want: Options{RoleARN: testRole, TokenFile: "/t", TokenFileSource: "--token-file", Region: "us-east-2",
				Duration: 2 * time.Hour, ProbeBucket: "b-1", Timeout: 3 * time.Second},
			wantOutput: "json",
		},
		{
			name: "S3 and STS endpoints from AWS_ENDPOINT_URL, path style from S3_USE_PATH_STYLE",
			env:  with("AWS_ENDPOINT_URL", "http://127.0.0.1:8333", "S3_USE_PATH_STYLE", "true", "CREDSIDECAR_CHECK_PROBE_S3", "bucket-1"),
			want: Options{RoleARN: testRole, TokenFile: base["AWS_WEB_IDENTITY_TOKEN_FILE"], TokenFileSource: "AWS_WEB_IDENTITY_TOKEN_FILE",
				Region: "eu-west-1", STSEndpoint: "http://127.0.0.1:8333", Duration: time.Hour, ProbeBucket: "bucket-1",
				S3Endpoint: "http://127.0.0.1:8333", S3PathStyle: true, Timeout: 10 * time.Second},
			wantOutput: "text",
		},
		{
			name: "serve and check flags mixed in one command line, a value that looks like a flag kept",
			args: []string{"--output=json", "--session-name", "--probe-s3", "--allow-non-loopback", "-probe-s3", "b-2"},
			env:  base,
			want: Options{RoleARN: testRole, TokenFile: base["AWS_WEB_IDENTITY_TOKEN_FILE"], TokenFileSource: "AWS_WEB_IDENTITY_TOKEN_FILE",
				Region: "eu-west-1", SessionName: "--probe-s3", Duration: time.Hour, Timeout: 10 * time.Second, ProbeBucket: "b-2"},
			wantOutput: "json",
		},
		{
			name: "AWS_ENDPOINT_URL_S3 beats AWS_ENDPOINT_URL; session name from the pod's names",
			env:  with("AWS_ENDPOINT_URL_S3", "https://s3.example.com", "AWS_ENDPOINT_URL", "http://127.0.0.1:1", "POD_NAMESPACE", "ns", "POD_NAME", "p"),
			want: Options{RoleARN: testRole, TokenFile: base["AWS_WEB_IDENTITY_TOKEN_FILE"], TokenFileSource: "AWS_WEB_IDENTITY_TOKEN_FILE",
				Region: "eu-west-1", STSEndpoint: "http://127.0.0.1:1", SessionName: "ns.p", Duration: time.Hour,
				S3Endpoint: "https://s3.example.com", Timeout: 10 * time.Second},
			wantOutput: "text",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, output, err := parseArgs(tt.args, envFunc(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, []Options{tt.want}) || output != tt.wantOutput {
				t.Errorf("got %+v output %s\nwant %+v output %s", got, output, tt.want, tt.wantOutput)
			}
		})
	}
}

func TestMainBadFlags(t *testing.T) {
	env := map[string]string{"AWS_ROLE_ARN": testRole, "AWS_WEB_IDENTITY_TOKEN_FILE": "/t", "AWS_REGION": "eu-west-1"}
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		wants []string // every one must appear on stderr
	}{
		{name: "output", args: []string{"--output", "yaml"}, env: env, wants: []string{"--output", `"yaml"`, "text or json"}},
		{name: "output from the environment names the variable", env: with(env, "CREDSIDECAR_CHECK_OUTPUT", "xml"), wants: []string{"--output (CREDSIDECAR_CHECK_OUTPUT)", `"xml"`}},
		{name: "bucket", args: []string{"--probe-s3", "Bad_Bucket"}, env: env, wants: []string{"--probe-s3", "Bad_Bucket", "bucket name"}},
		{name: "s3 endpoint", args: []string{"--s3-endpoint", "s3.example.com"}, env: env, wants: []string{"--s3-endpoint", "http or https URL"}},
		{name: "path style", env: with(env, "S3_USE_PATH_STYLE", "yes please"), wants: []string{"--s3-path-style (S3_USE_PATH_STYLE)", "true or false"}},
		{name: "timeout", args: []string{"--timeout", "0s"}, env: env, wants: []string{"--timeout", "between"}},
		{name: "unknown flag", args: []string{"--probe", "x"}, env: env, wants: []string{"-probe"}},
		{name: "role missing: serve's validation", env: map[string]string{"AWS_WEB_IDENTITY_TOKEN_FILE": "/t", "AWS_REGION": "eu-west-1"}, wants: []string{"--role-arn", "required"}},
		{name: "region and endpoint missing", env: map[string]string{"AWS_ROLE_ARN": testRole, "AWS_WEB_IDENTITY_TOKEN_FILE": "/t"}, wants: []string{"--region", "required unless --sts-endpoint"}},
		{name: "version", args: []string{"--version"}, env: env, wants: []string{"sidecar --version"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := Main(t.Context(), tt.args, envFunc(tt.env), &stdout, &stderr); code != 2 {
				t.Fatalf("Main = %d, want 2; stdout %s stderr %s", code, stdout.String(), stderr.String())
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout on bad flags: %s", stdout.String())
			}
			for _, w := range tt.wants {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr %q lacks %q", stderr.String(), w)
				}
			}
		})
	}
}

func with(m map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func TestMainHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := Main(t.Context(), []string{"-h"}, envFunc(nil), &stdout, &stderr); code != 0 {
		t.Fatalf("Main(-h) = %d, stderr %s", code, stderr.String())
	}
	for _, w := range []string{"--probe-s3", "--s3-path-style", "S3_USE_PATH_STYLE", "--role-arn", "AWS_WEB_IDENTITY_TOKEN_FILE", "Exit status"} {
		if !strings.Contains(stdout.String(), w) {
			t.Errorf("help lacks %q", w)
		}
	}
}

// TestMainMissingToken runs the whole command without any network: the token check fails first,
// so STS is never called.
func TestMainMissingToken(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "token"), "x")
	env := map[string]string{
		"AWS_ROLE_ARN":                testRole,
		"AWS_WEB_IDENTITY_TOKEN_FILE": filepath.Join(dir, "azure-identity-token"),
		"AWS_ENDPOINT_URL_STS":        "http://127.0.0.1:1",
	}
	t.Run("text", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		if code := Main(t.Context(), nil, envFunc(env), &stdout, &stderr); code != 1 {
			t.Fatalf("Main = %d, want 1; stderr %s", code, stderr.String())
		}
		out := stdout.String()
		for _, w := range []string{"error   token-missing: AWS_WEB_IDENTITY_TOKEN_FILE=" + env["AWS_WEB_IDENTITY_TOKEN_FILE"], "not called", "FAIL: 1 error(s)"} {
			if !strings.Contains(out, w) {
				t.Errorf("output lacks %q:\n%s", w, out)
			}
		}
	})
	t.Run("json", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		if code := Main(t.Context(), []string{"--output", "json"}, envFunc(env), &stdout, &stderr); code != 1 {
			t.Fatalf("Main = %d, want 1; stderr %s", code, stderr.String())
		}
		var r Report
		if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, stdout.String())
		}
		if r.OK || r.STS.Called || r.Token != nil || len(r.Findings) != 1 || r.Findings[0].ID != findings.IDTokenMissing {
			t.Errorf("report %+v", r)
		}
		if !strings.Contains(r.Findings[0].Fix, filepath.Join(dir, "token")) {
			t.Errorf("fix %q does not name the token that is there", r.Findings[0].Fix)
		}
	})
}

// fixedReport is a report as Check builds it, with every section filled, for the format goldens.
func fixedReport() *Report {
	iat := testNow.Add(-51 * time.Minute)
	exp := iat.Add(time.Hour)
	credExp := testNow.Add(time.Hour)
	r := &Report{
		CheckedAt:       testNow,
		TokenFile:       "/var/run/secrets/azure/tokens/azure-identity-token",
		TokenFileSource: "AWS_WEB_IDENTITY_TOKEN_FILE",
		Token: &TokenSummary{
			Issuer: testIssuer, Subject: "system:serviceaccount:default:workload-sa",
			Audience: []string{testIssuer, "https://kubernetes.default.svc.cluster.local"},
			IssuedAt: &iat, ExpiresAt: &exp, LifetimeSeconds: 3600, RemainingSeconds: int64(exp.Sub(testNow) / time.Second),
			Namespace: "default", ServiceAccount: "workload-sa", Pod: "app-7d9c-x2x",
		},
		RoleARN: testRole, Region: "eu-west-1", STSEndpoint: "https://sts.eu-west-1.amazonaws.com",
		SessionName: "default.app-7d9c-x2x", DurationSeconds: 3600,
		STS: STSResult{Called: true, OK: true, AssumedRoleARN: "arn:aws:sts::111122223333:assumed-role/AKS-S3-Access-Role/default.app-7d9c-x2x",
			AccessKeyID: "****WXYZ", Expiration: &credExp,
			CallerARN: "arn:aws:sts::111122223333:assumed-role/AKS-S3-Access-Role/default.app-7d9c-x2x", CallerAccount: "111122223333"},
		S3: &S3Result{Bucket: "my-bucket", Endpoint: "https://my-bucket.s3.eu-west-1.amazonaws.com", Key: "credsidecar-check/20261125T120000Z-000000000000.txt",
			Actions: []S3Action{{Action: "s3:ListBucket", OK: true}, {Action: "s3:PutObject", Code: "AccessDenied", Message: "Access Denied"}, {Action: "s3:DeleteObject", OK: true}}},
	}
	c := claimsAt(51*time.Minute, time.Hour, r.Token.Audience...)
	r.Findings = append(findings.TokenWarnings(c, testNow), s3Findings(r.S3, []error{nil, apiError("PutObject", "AccessDenied", "Access Denied", 403), nil}, testRole, "eu-west-1", time.Second)...)
	r.tally()
	return r
}

func TestReportFormats(t *testing.T) {
	r := fixedReport()
	if r.OK || r.Errors != 1 || r.Warnings != 2 {
		t.Fatalf("tally: ok %v, %d errors, %d warnings", r.OK, r.Errors, r.Warnings)
	}
	var text, js bytes.Buffer
	if err := r.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.txt.golden", text.Bytes())
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.json.golden", js.Bytes())

	// The JSON document's top-level keys are a contract with scripts.
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(js.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range doc {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	wantKeys := []string{"checked_at", "duration_seconds", "errors", "findings", "ok", "region", "role_arn", "s3", "session_name",
		"sts", "sts_endpoint", "token", "token_file", "token_file_source", "warnings"}
	if !reflect.DeepEqual(keys, wantKeys) {
		t.Errorf("keys %q, want %q", keys, wantKeys)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Findings, r.Findings) {
		t.Errorf("findings do not survive a JSON round trip")
	}
}
