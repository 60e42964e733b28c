package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/credsidecar/credsidecar/internal/authtoken"
	"github.com/credsidecar/credsidecar/internal/creds"
	"github.com/credsidecar/credsidecar/internal/server"
)

// fixedSource is a server.Source that always has the same credentials.
type fixedSource struct{ c *creds.Credentials }

func (s fixedSource) Servable() *creds.Credentials            { return s.c }
func (s fixedSource) Wait(context.Context) *creds.Credentials { return s.c }

// TestCredentialProcess runs `sidecar credential-process` through run against the sidecar's
// real credentials endpoint (internal/server with a generated auth token): stdout must carry
// the one JSON document and nothing else, since the SDK parses it whole, and the command must
// start nothing (no serve logs on stderr).
func TestCredentialProcess(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "auth-token")
	auth, err := authtoken.Load(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	c := &creds.Credentials{
		AccessKeyID: "ASIAEXAMPLEKEY12345", SecretAccessKey: "secret/example/key+value", SessionToken: "IQoJb3JpZ2luX2VjExampleSessionToken",
		Expiration: time.Now().Add(time.Hour).UTC().Truncate(time.Second), AccountID: "123456789012",
		RoleARN: "arn:aws:iam::123456789012:role/app",
	}
	ts := httptest.NewServer(server.NewCredentials(fixedSource{c}, auth, server.WithColdStartWait(0)))
	defer ts.Close()

	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		wantCode int
		// wantStderr starts the first line of stderr on failure.
		wantStderr string
	}{
		{name: "flags", args: []string{"credential-process", "--endpoint", ts.URL + server.CredentialsPath, "--auth-token-file", tokenFile}},
		{name: "the container-credentials variables", args: []string{"credential-process"}, env: map[string]string{
			"AWS_CONTAINER_CREDENTIALS_FULL_URI": ts.URL + server.CredentialsPath, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": tokenFile}},
		{name: "endpoint down", args: []string{"credential-process", "--endpoint", "http://" + closedPort(t) + server.CredentialsPath,
			"--auth-token-file", tokenFile}, wantCode: 1, wantStderr: "credential-process: "},
		{name: "bad flag", args: []string{"credential-process", "--role-arn=x"}, wantCode: 2,
			wantStderr: "credential-process: parse arguments: flag provided but not defined: -role-arn"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			code := run(ctx, tt.args, env(tt.env), &stdout, &stderr)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tt.wantCode, stderr.String())
			}
			if tt.wantCode != 0 {
				if stdout.Len() != 0 {
					t.Errorf("stdout %q on failure, want nothing (the SDK would try to parse it)", stdout.String())
				}
				if first, _, _ := strings.Cut(stderr.String(), "\n"); !strings.HasPrefix(first, tt.wantStderr) {
					t.Errorf("stderr starts %q, want %q", first, tt.wantStderr)
				}
				return
			}
			if stderr.Len() != 0 {
				t.Errorf("stderr %q, want nothing: credential-process starts no sidecar", stderr.String())
			}
			var doc struct {
				Version                                   int
				AccessKeyID                               string `json:"AccessKeyId"`
				SecretAccessKey, SessionToken, Expiration string
				AccountID                                 string `json:"AccountId"`
			}
			dec := json.NewDecoder(&stdout)
			dec.DisallowUnknownFields()
			if err := dec.Decode(&doc); err != nil {
				t.Fatalf("stdout is not the credential_process document: %v", err)
			}
			if rest := strings.TrimSpace(stdout.String()); rest != "" {
				t.Errorf("stdout has %q after the document", rest)
			}
			if doc.Version != 1 || doc.AccessKeyID != c.AccessKeyID || doc.SecretAccessKey != c.SecretAccessKey ||
				doc.SessionToken != c.SessionToken || doc.Expiration != c.Expiration.Format(time.RFC3339) || doc.AccountID != c.AccountID {
				t.Errorf("document %+v does not carry the served credentials", doc)
			}
		})
	}
}
