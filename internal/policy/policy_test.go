package policy

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/credsidecar/credsidecar/internal/config"
	"github.com/credsidecar/credsidecar/internal/testkit/goldenfile"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	goldenfile.Check(t, filepath.Join("testdata", name), got, *update)
}

const (
	aksIssuer = "https://eastus.oic.prod-aks.azure.com/8c2f1a3e-0000-4000-8000-000000000001/5d6e7f80-0000-4000-8000-000000000002/"
	account   = "111122223333"
)

func TestMainGolden(t *testing.T) {
	base := []string{"--issuer", aksIssuer, "--namespace", "default", "--service-account", "workload-sa", "--account", account}
	tests := []struct {
		name   string
		args   []string
		golden string
		files  []string // written into --write-dir, compared with testdata/<golden>.<file>
	}{
		{name: "trust only", args: base, golden: "trust.golden"},
		{name: "with bucket", args: append(base[:len(base):len(base)], "--bucket", "my-upload-bucket"), golden: "bucket.golden"},
		{name: "json with bucket", args: append(base[:len(base):len(base)], "--bucket", "my-upload-bucket", "--output", "json"), golden: "bucket-json.golden"},
		{
			name: "custom audience role and partition",
			args: []string{"--issuer", "https://oidc.example.com/cluster", "--namespace", "payments", "--service-account", "uploader.v2",
				"--account", "444455556666", "--audience", "sts.amazonaws.com", "--role-name", "payments-uploader",
				"--policy-name", "uploads", "--bucket", "payments.uploads", "--partition", "aws-us-gov"},
			golden: "custom.golden",
		},
		{
			name: "named roles beside the unnamed one",
			args: append(base[:len(base):len(base)], "--role-name", "app-role", "--role-name", "reader=bucket-reader",
				"--role-name", "writer=bucket-writer", "--bucket", "my-upload-bucket"),
			golden: "several-roles.golden",
		},
		{
			name: "named roles only, json",
			args: append(base[:len(base):len(base)], "--role-name", "reader=bucket-reader", "--role-name", "writer=bucket-writer",
				"--output", "json"),
			golden: "several-roles-json.golden",
		},
		{
			name:   "write dir",
			args:   append(base[:len(base):len(base)], "--bucket", "my-upload-bucket", "--write-dir", "$DIR"),
			golden: "write-dir.golden",
			files:  []string{TrustPolicyFile, PermissionPolicyFile},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			args := make([]string, len(tt.args))
			for i, a := range tt.args {
				args[i] = strings.ReplaceAll(a, "$DIR", dir)
			}
			var stdout, stderr bytes.Buffer
			if code := Main(args, &stdout, &stderr); code != 0 {
				t.Fatalf("Main = %d, stderr: %s", code, stderr.String())
			}
			if stderr.Len() != 0 {
				t.Errorf("stderr not empty: %s", stderr.String())
			}
			got := bytes.ReplaceAll(stdout.Bytes(), []byte(dir), []byte("$DIR"))
			golden(t, tt.golden, got)
			if strings.Contains(tt.golden, "json") {
				var out Output
				if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
					t.Fatalf("--output json is not JSON: %v", err)
				}
			}
			for _, f := range tt.files {
				b, err := os.ReadFile(filepath.Join(dir, f))
				if err != nil {
					t.Fatal(err)
				}
				if !json.Valid(b) {
					t.Errorf("%s is not valid JSON", f)
				}
				golden(t, strings.TrimSuffix(tt.golden, ".golden")+"."+f+".golden", b)
			}
		})
	}
}

func TestMainRejectsBadInput(t *testing.T) {
	ok := map[string]string{"issuer": aksIssuer, "namespace": "default", "service-account": "workload-sa", "account": account}
	tests := []struct {
		name     string
		override map[string]string // flag -> value; "" removes the flag
		extra    []string
		wantFlag string // every problem line names it
		wantText string
	}{
		{name: "account too short", override: map[string]string{"account": "12345"}, wantFlag: "--account", wantText: "12-digit"},
		{name: "account with dashes", override: map[string]string{"account": "1111-2222-3333"}, wantFlag: "--account", wantText: "12-digit"},
		{name: "account missing", override: map[string]string{"account": ""}, wantFlag: "--account", wantText: "required"},
		{name: "issuer plain http", override: map[string]string{"issuer": "http://oidc.example.com/x/"}, wantFlag: "--issuer", wantText: "https"},
		{name: "issuer without scheme", override: map[string]string{"issuer": "oidc.example.com/x/"}, wantFlag: "--issuer", wantText: "https"},
		{name: "issuer with query", override: map[string]string{"issuer": "https://oidc.example.com/x?a=b"}, wantFlag: "--issuer", wantText: "query"},
		{name: "issuer missing", override: map[string]string{"issuer": ""}, wantFlag: "--issuer", wantText: "required"},
		{name: "namespace uppercase", override: map[string]string{"namespace": "Default"}, wantFlag: "--namespace", wantText: "DNS-1123"},
		{name: "namespace with dot", override: map[string]string{"namespace": "a.b"}, wantFlag: "--namespace", wantText: "DNS-1123"},
		{name: "namespace too long", override: map[string]string{"namespace": strings.Repeat("a", 64)}, wantFlag: "--namespace", wantText: "DNS-1123"},
		{name: "service account underscore", override: map[string]string{"service-account": "workload_sa"}, wantFlag: "--service-account", wantText: "DNS-1123"},
		{name: "service account trailing dash", override: map[string]string{"service-account": "sa-"}, wantFlag: "--service-account", wantText: "DNS-1123"},
		{name: "bucket uppercase", override: map[string]string{}, extra: []string{"--bucket", "My_Bucket"}, wantFlag: "--bucket", wantText: "bucket name"},
		{name: "role name with slash", extra: []string{"--role-name", "a/b"}, wantFlag: "--role-name", wantText: "IAM role name"},
		{name: "sidecar role name uppercase", extra: []string{"--role-name", "Reader=ReaderRole"}, wantFlag: "--role-name", wantText: "sidecar's role name"},
		{name: "named role's IAM name with slash", extra: []string{"--role-name", "reader=a/b"}, wantFlag: "--role-name", wantText: "IAM role name"},
		{name: "role named twice", extra: []string{"--role-name", "reader=A", "--role-name", "reader=B"}, wantFlag: "--role-name", wantText: "named twice"},
		{name: "IAM role given twice", extra: []string{"--role-name", "A", "--role-name", "reader=A"}, wantFlag: "--role-name", wantText: "given twice"},
		{name: "two unnamed roles", extra: []string{"--role-name", "A", "--role-name", "B"}, wantFlag: "-role-name", wantText: "name the others NAME=ROLE"},
		{name: "too many roles", extra: manyRoles(17), wantFlag: "--role-name", wantText: "at most 16"},
		{name: "audience with space", extra: []string{"--audience", "a b"}, wantFlag: "--audience", wantText: "without spaces"},
		{name: "output yaml", extra: []string{"--output", "yaml"}, wantFlag: "--output", wantText: "text or json"},
		{name: "partition", extra: []string{"--partition", "aws-eu"}, wantFlag: "--partition", wantText: "aws-cn"},
		{name: "unknown flag", extra: []string{"--bukket", "x"}, wantFlag: "-bukket", wantText: "not defined"},
		{name: "positional argument", extra: []string{"extra"}, wantFlag: "\"extra\"", wantText: "flags only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var args []string
			for _, f := range []string{"issuer", "namespace", "service-account", "account"} {
				v, overridden := tt.override[f]
				if !overridden {
					v = ok[f]
				}
				if v != "" {
					args = append(args, "--"+f, v)
				}
			}
			args = append(args, tt.extra...)
			var stdout, stderr bytes.Buffer
			if code := Main(args, &stdout, &stderr); code != 2 {
				t.Fatalf("Main = %d, want 2; stderr: %s", code, stderr.String())
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout not empty on bad input: %s", stdout.String())
			}
			msg := stderr.String()
			if !strings.Contains(msg, tt.wantFlag) || !strings.Contains(msg, tt.wantText) {
				t.Errorf("stderr %q: want it to name %s and say %q", msg, tt.wantFlag, tt.wantText)
			}
			if n := strings.Count(msg, "\n"); n != 1 {
				t.Errorf("stderr has %d lines, want one problem line: %q", n, msg)
			}
		})
	}
}

// manyRoles is n --role-name NAME=ROLE flags.
func manyRoles(n int) []string {
	var args []string
	for i := range n {
		args = append(args, "--role-name", fmt.Sprintf("r%d=Role%d", i, i))
	}
	return args
}

func TestMainHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"--help"}, &stdout, &stderr); code != 0 {
		t.Fatalf("Main(--help) = %d", code)
	}
	for _, want := range []string{"-issuer", "-write-dir", DefaultRoleName, "trailing slash"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, stdout.String())
		}
	}
}

func TestMainAllowsLoopbackHTTPIssuer(t *testing.T) {
	for _, iss := range []string{"http://127.0.0.1:38211/a/b/", "http://[::1]:8080/", "http://localhost:9/x"} {
		var stdout, stderr bytes.Buffer
		args := []string{"--issuer", iss, "--namespace", "ns", "--service-account", "sa", "--account", account}
		if code := Main(args, &stdout, &stderr); code != 0 {
			t.Errorf("issuer %s: Main = %d, stderr %s", iss, code, stderr.String())
		}
	}
}

func TestMainWriteDirFailure(t *testing.T) {
	blocker := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	args := []string{"--issuer", aksIssuer, "--namespace", "ns", "--service-account", "sa", "--account", account, "--write-dir", filepath.Join(blocker, "sub")}
	if code := Main(args, &stdout, &stderr); code != 1 {
		t.Fatalf("Main = %d, want 1", code)
	}
	if !strings.Contains(stderr.String(), "write policy files") {
		t.Errorf("stderr %q does not name the operation", stderr.String())
	}
}

func TestProviderPathAndAudience(t *testing.T) {
	tests := []struct {
		name, issuer, wantPath, wantAudience string
	}{
		{"aks with slash", "https://eastus.oic.prod-aks.azure.com/t/c/", "eastus.oic.prod-aks.azure.com/t/c", "https://eastus.oic.prod-aks.azure.com/t/c/"},
		{"without slash", "https://oidc.example.com/id/ABC", "oidc.example.com/id/ABC", "https://oidc.example.com/id/ABC/"},
		{"host only", "https://issuer.example.com", "issuer.example.com", "https://issuer.example.com/"},
		{"several slashes", "https://issuer.example.com/x//", "issuer.example.com/x", "https://issuer.example.com/x/"},
		{"loopback http with port", "http://127.0.0.1:4321/p/", "127.0.0.1:4321/p", "http://127.0.0.1:4321/p/"},
		{"upper-case scheme", "HTTPS://issuer.example.com/", "issuer.example.com", "HTTPS://issuer.example.com/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ProviderPath(tt.issuer); got != tt.wantPath {
				t.Errorf("ProviderPath(%q) = %q, want %q", tt.issuer, got, tt.wantPath)
			}
			if got := DefaultAudience(tt.issuer); got != tt.wantAudience {
				t.Errorf("DefaultAudience(%q) = %q, want %q", tt.issuer, got, tt.wantAudience)
			}
		})
	}
}

func TestS3Statements(t *testing.T) {
	tests := []struct {
		name    string
		actions []string
		want    string
	}{
		{"list only", []string{ActionListBucket}, `[{"Sid":"ListBucket","Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::b1"}]`},
		{"put and delete", []string{ActionPutObject, ActionDeleteObject}, `[{"Sid":"ObjectAccess","Effect":"Allow","Action":["s3:PutObject","s3:DeleteObject"],"Resource":"arn:aws:s3:::b1/*"}]`},
		{"mixed", []string{ActionListBucket, ActionPutObject}, `[{"Sid":"ObjectAccess","Effect":"Allow","Action":"s3:PutObject","Resource":"arn:aws:s3:::b1/*"},{"Sid":"ListBucket","Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::b1"}]`},
		{"none", nil, `null`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(S3Statements("", "b1", tt.actions...))
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Errorf("got  %s\nwant %s", b, tt.want)
			}
		})
	}
}

func TestShellQuote(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"url", "https://h.example.com/a/b/", "https://h.example.com/a/b/"},
		{"empty", "", "''"},
		{"ampersand", "a&b", "'a&b'"},
		{"single quote", "it's", `'it'\''s'`},
		{"space", "a b", "'a b'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ShellQuote(tt.in); got != tt.want {
				t.Errorf("ShellQuote(%q) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}

// FuzzValidate feeds arbitrary flag values: Validate must not panic, and whatever it accepts
// must render to valid JSON whose condition keys carry the provider path.
func FuzzValidate(f *testing.F) {
	f.Add(aksIssuer, "default", "workload-sa", account, "", "bucket-1")
	f.Add("http://127.0.0.1:1/", "a", "b.c", "000000000000", "aud", "")
	f.Add("https://x/\"y", "n", "s", "123456789012", "a\"b", "")
	f.Fuzz(func(t *testing.T, issuer, ns, sa, acct, aud, bucket string) {
		in := Input{Issuer: issuer, Namespace: ns, ServiceAccount: sa, AccountID: acct, Audience: aud, Bucket: bucket}
		if in.Validate() != nil {
			return
		}
		b, err := MarshalIndent(Build(in, ""))
		if err != nil {
			t.Fatalf("encode accepted input: %v", err)
		}
		var back Output
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("output of accepted input is not JSON: %v\n%s", err, b)
		}
		cond := back.TrustPolicy.Statement[0].Condition["StringEquals"]
		if len(cond) != 2 || cond[0].Key != ProviderPath(issuer)+":sub" || cond[1].Value != in.WithDefaults().Audience {
			t.Fatalf("conditions did not survive a round trip: %+v", cond)
		}
	})
}

// TestSidecarRolesParse: the NAME=ARN list printed for CREDSIDECAR_ROLES and the webhook's
// credsidecar.io/roles annotation is what the sidecar's own parser takes, role for role.
func TestSidecarRolesParse(t *testing.T) {
	in := Input{Issuer: aksIssuer, Namespace: "default", ServiceAccount: "workload-sa", AccountID: account,
		Roles: []SidecarRole{{Name: "reader", RoleName: "bucket-reader"}, {Name: "writer", RoleName: "bucket-writer"}}}
	if err := in.Validate(); err != nil {
		t.Fatal(err)
	}
	out := Build(in, "")
	if out.RoleARN != "" {
		t.Errorf("named roles only: role_arn = %q, want none (the sidecar then has no unnamed role)", out.RoleARN)
	}
	roles, err := config.ParseRoles(strings.Split(out.SidecarRoles, ","))
	if err != nil {
		t.Fatalf("the sidecar refuses %q: %v", out.SidecarRoles, err)
	}
	if len(roles) != len(in.Roles) {
		t.Fatalf("the sidecar reads %d roles from %q, want %d", len(roles), out.SidecarRoles, len(in.Roles))
	}
	for i, r := range roles {
		if want := RoleARN("", account, in.Roles[i].RoleName); r.Name != in.Roles[i].Name || r.ARN != want {
			t.Errorf("role %d: the sidecar reads %s=%s, want %s=%s", i, r.Name, r.ARN, in.Roles[i].Name, want)
		}
	}
	if got := strings.Count(strings.Join(out.Commands, "\n"), "create-role "); got != 2 {
		t.Errorf("%d create-role commands, want one per role (2):\n%s", got, strings.Join(out.Commands, "\n"))
	}
}
