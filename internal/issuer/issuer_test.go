package issuer

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const apiDiscovery = `{"issuer":"https://10.0.0.1:6443","jwks_uri":"https://10.0.0.1:6443/openid/v1/jwks",` +
	`"response_types_supported":["id_token"],"subject_types_supported":["public"],"id_token_signing_alg_values_supported":["RS256"]}`

const apiJWKS = `{"keys":[{"use":"sig","kty":"RSA","kid":"k1","alg":"RS256","n":"AQAB","e":"AQAB"}]}`

func TestRewrite(t *testing.T) {
	d, err := Rewrite([]byte(apiDiscovery), []byte(apiJWKS), "https://bucket.s3.eu-west-1.amazonaws.com/prod/")
	if err != nil {
		t.Fatal(err)
	}
	var disc map[string]any
	if err := json.Unmarshal(d.Discovery, &disc); err != nil {
		t.Fatal(err)
	}
	if disc["issuer"] != "https://bucket.s3.eu-west-1.amazonaws.com/prod" ||
		disc["jwks_uri"] != "https://bucket.s3.eu-west-1.amazonaws.com/prod/openid/v1/jwks" {
		t.Errorf("issuer %v, jwks_uri %v", disc["issuer"], disc["jwks_uri"])
	}
	if algs, _ := disc["id_token_signing_alg_values_supported"].([]any); len(algs) != 1 || algs[0] != "RS256" {
		t.Errorf("the other fields were not kept: %v", disc)
	}
	if d.APIIssuer != "https://10.0.0.1:6443" || strings.Join(d.Kids, ",") != "k1" || !SameJSON(d.JWKS, []byte(apiJWKS)) {
		t.Errorf("documents %+v", d)
	}
}

func TestRewriteRefuses(t *testing.T) {
	tests := []struct{ name, disc, jwks, want string }{
		{"private RSA key", apiDiscovery, `{"keys":[{"kty":"RSA","kid":"k9","n":"x","e":"AQAB","d":"secret"}]}`,
			`key k9 of the JWKS carries private key material ("d"): refusing to publish it`},
		{"symmetric key", apiDiscovery, `{"keys":[{"kty":"oct","kid":"s1","k":"c2VjcmV0"}]}`, `key s1 of the JWKS carries private key material ("k")`},
		{"key without kid", apiDiscovery, `{"keys":[{"kty":"RSA","n":"x","e":"AQAB"}]}`, "key 0 of the JWKS has no kid"},
		{"no keys", apiDiscovery, `{"keys":[]}`, "holds no keys"},
		{"JWKS not JSON", apiDiscovery, `<html>`, "the API server's JWKS is not JSON"},
		{"discovery without issuer", `{"jwks_uri":"x"}`, apiJWKS, "has no issuer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Rewrite([]byte(tt.disc), []byte(tt.jwks), "https://b.example/p")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestMergePolicy(t *testing.T) {
	other := `{"Version":"2012-10-17","Statement":[{"Sid":"Backups","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"s3:PutObject","Resource":"arn:aws:s3:::b/backups/*"}]}`
	merged, changed, err := MergePolicy([]byte(other), "b", "clusters/a/")
	if err != nil || !changed {
		t.Fatalf("merge into another policy: changed %v, %v", changed, err)
	}
	var doc struct{ Statement []map[string]any }
	if err := json.Unmarshal(merged, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Statement) != 2 || doc.Statement[0]["Sid"] != "Backups" || doc.Statement[1]["Sid"] != PolicySid {
		t.Fatalf("statements %v, want Backups kept and ours added", doc.Statement)
	}
	res, _ := doc.Statement[1]["Resource"].([]any)
	if doc.Statement[1]["Principal"] != "*" || len(res) != 2 || res[0] != "arn:aws:s3:::b/clusters/a/.well-known/openid-configuration" ||
		res[1] != "arn:aws:s3:::b/clusters/a/openid/v1/jwks" {
		t.Errorf("our statement %v, want public read of the two objects only", doc.Statement[1])
	}
	if again, changed, err := MergePolicy(merged, "b", "clusters/a"); err != nil || changed || !bytes.Equal(again, merged) {
		t.Errorf("merging twice changed the policy (changed %v, %v)", changed, err)
	}
	moved, changed, err := MergePolicy(merged, "b", "clusters/b")
	if err != nil || !changed || strings.Count(string(moved), PolicySid) != 1 || !strings.Contains(string(moved), "clusters/b/openid") {
		t.Errorf("a new prefix must replace our statement, not add one: %s (%v)", moved, err)
	}
	if fresh, changed, err := MergePolicy(nil, "b", ""); err != nil || !changed || !strings.Contains(string(fresh), `"arn:aws:s3:::b/openid/v1/jwks"`) {
		t.Errorf("no policy yet: %s (%v, %v)", fresh, changed, err)
	}
	if _, _, err := MergePolicy([]byte("{"), "b", ""); err == nil {
		t.Error("a policy that is not JSON was merged")
	}
}

func TestDefaultPublicURL(t *testing.T) {
	for _, tt := range []struct{ bucket, region, prefix, want string }{
		{"b", "eu-west-1", "prod/", "https://b.s3.eu-west-1.amazonaws.com/prod"},
		{"b", "us-east-1", "", "https://b.s3.amazonaws.com"},
		{"b", "", "/a/b/", "https://b.s3.amazonaws.com/a/b"},
	} {
		if got := DefaultPublicURL(tt.bucket, tt.region, tt.prefix); got != tt.want {
			t.Errorf("DefaultPublicURL(%q, %q, %q) = %q, want %q", tt.bucket, tt.region, tt.prefix, got, tt.want)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no bucket", []string{"--region", "eu-west-1"}, nil, `--bucket (CREDSIDECAR_ISSUER_BUCKET) = "": required`},
		{"no region", []string{"--bucket", "b"}, nil, `--region (AWS_REGION or AWS_DEFAULT_REGION) = "": required unless --endpoint-url`},
		{"bad region", []string{"--bucket", "b"}, map[string]string{"AWS_REGION": "EU"}, `--region (AWS_REGION) = "EU": not a region name`},
		{"plain http public URL", []string{"--bucket", "b", "--region", "eu-west-1", "--public-url", "http://b.example/x"}, nil,
			`--public-url (CREDSIDECAR_ISSUER_PUBLIC_URL) = "http://b.example/x": must be an https URL`},
		{"short interval", []string{"--bucket", "b", "--region", "eu-west-1", "--interval", "10ms"}, nil,
			`--interval (CREDSIDECAR_ISSUER_INTERVAL) = "10ms": must be a duration of at least 1s`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := Main(context.Background(), append([]string{"publish"}, tt.args...), env(tt.env), &stdout, &stderr); code != 2 {
				t.Fatalf("exit %d, want 2; stderr %s", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Fatalf("stderr %q lacks %q", stderr.String(), tt.want)
			}
		})
	}
	v, err := parse([]string{"--bucket", "b", "--prefix", "kind"}, env(map[string]string{"AWS_DEFAULT_REGION": "ap-northeast-2"}))
	if err != nil || v.publicURL != "https://b.s3.ap-northeast-2.amazonaws.com/kind" {
		t.Errorf("default public URL %q (%v)", v.publicURL, err)
	}
}

// TestLoadKube: a kubeconfig's current context, its token file relative to the kubeconfig; an
// exec plugin alone is refused with what to use instead. (TestPublishOnRealParts reads a real
// API server through a kubeconfig with a CA and a token.)
func TestLoadKube(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("token", "tok-123\n")
	cfg := write("config", `apiVersion: v1
clusters:
- name: other
  cluster: {server: https://other.example}
- name: kind
  cluster: {server: https://127.0.0.1:6443, insecure-skip-tls-verify: true}
users:
- name: me
  user: {tokenFile: token}
- name: plugin
  user: {exec: {command: aws}}
contexts:
- name: kind
  context: {cluster: kind, user: me}
- name: eks
  context: {cluster: other, user: plugin}
current-context: kind
`)
	k, err := LoadKube(cfg, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if k.Server != "https://127.0.0.1:6443" || k.TokenFile != filepath.Join(dir, "token") || k.From != "kubeconfig "+cfg+", context kind" {
		t.Fatalf("kube %+v", k)
	}
	exec := write("exec", strings.Replace(mustRead(t, cfg), "current-context: kind", "current-context: eks", 1))
	if _, err := LoadKube(exec, func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "exec plugin") {
		t.Fatalf("an exec-plugin user: %v, want it refused naming the plugin", err)
	}
	if _, err := LoadKube("", func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "neither --kubeconfig nor KUBECONFIG") {
		t.Fatalf("no API server at all: %v", err)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCredentialsFrom: the default chain's order for the places a publisher runs, and an error
// saying what to set when none applies.
func TestCredentialsFrom(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"static keys first", map[string]string{"AWS_ACCESS_KEY_ID": "AKIA", "AWS_SECRET_ACCESS_KEY": "s",
			"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:9910/v1/credentials"}, "AWS_ACCESS_KEY_ID"},
		{"web identity before the container endpoint", map[string]string{"AWS_WEB_IDENTITY_TOKEN_FILE": "/t", "AWS_ROLE_ARN": "arn:aws:iam::111122223333:role/r",
			"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:9910/v1/credentials"}, "AWS_WEB_IDENTITY_TOKEN_FILE"},
		{"the sidecar's endpoint", map[string]string{"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:9910/v1/credentials",
			"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": "/var/run/credsidecar/auth-token"}, "AWS_CONTAINER_CREDENTIALS_FULL_URI"},
		{"a key id without its secret is no credentials", map[string]string{"AWS_ACCESS_KEY_ID": "AKIA"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, from, err := credentialsFrom(func(k string) string { return tt.env[k] }, "eu-west-1")
			switch {
			case tt.want == "" && (err == nil || !strings.Contains(err.Error(), "aws configure export-credentials")):
				t.Fatalf("error %v, want one saying how to get credentials", err)
			case tt.want != "" && (err != nil || from != tt.want):
				t.Fatalf("chain picked %q (%v), want %q", from, err, tt.want)
			}
		})
	}
}

// TestNextSteps: when the API server still signs with another issuer, the output warns and
// gives the flags to restart it with, the public URL first and the old issuer kept second.
func TestNextSteps(t *testing.T) {
	d, err := Rewrite([]byte(apiDiscovery), []byte(apiJWKS), "https://b.s3.eu-west-1.amazonaws.com/kind")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	NextSteps(&out, d, "https://b.s3.eu-west-1.amazonaws.com/kind", "")
	want := "WARNING: the API server's issuer is https://10.0.0.1:6443, not https://b.s3.eu-west-1.amazonaws.com/kind"
	flags := "  --service-account-issuer=https://b.s3.eu-west-1.amazonaws.com/kind\n" +
		"  --service-account-issuer=https://10.0.0.1:6443\n" +
		"  --service-account-jwks-uri=https://b.s3.eu-west-1.amazonaws.com/kind/openid/v1/jwks\n"
	iam := "aws iam create-open-id-connect-provider --url https://b.s3.eu-west-1.amazonaws.com/kind --client-id-list https://b.s3.eu-west-1.amazonaws.com/kind/\n"
	for _, w := range []string{want, flags, iam} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("next steps lack %q:\n%s", w, out.String())
		}
	}
}
