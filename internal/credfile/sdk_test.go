package credfile

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/credsidecar/credsidecar/internal/testkit/sdkclient"
)

// Real readers of the file: the Go SDK v2's shared-config loader in process, boto3 and the
// AWS CLI as subprocesses.

func TestGoSDKv2ReadsFile(t *testing.T) {
	tests := []struct{ name, profile string }{
		{"default profile", DefaultProfile},
		{"named profile", "ci"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sdkclient.IsolateEnv(t)
			path := filepath.Join(t.TempDir(), "credentials")
			c := realLookingCreds(t, time.Now().Add(time.Hour))
			w, err := New(path, tt.profile)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Update(c); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cfg, err := config.LoadDefaultConfig(ctx,
				config.WithRegion("us-east-1"),
				config.WithSharedConfigFiles([]string{}),
				config.WithSharedCredentialsFiles([]string{path}),
				config.WithSharedConfigProfile(tt.profile))
			if err != nil {
				t.Fatalf("LoadDefaultConfig: %v", err)
			}
			got, err := cfg.Credentials.Retrieve(ctx)
			if err != nil {
				t.Fatalf("Retrieve: %v", err)
			}
			if got.AccessKeyID != c.AccessKeyID || got.SecretAccessKey != c.SecretAccessKey || got.SessionToken != c.SessionToken {
				t.Fatal("the Go SDK read other credentials than were written")
			}
			if !strings.Contains(got.Source, "SharedConfigCredentials") {
				t.Errorf("credentials source %q, want the shared credentials file", got.Source)
			}
		})
	}
}

func TestBoto3ReadsFile(t *testing.T) {
	py := sdkclient.Python(t)
	tests := []struct{ name, profile string }{
		{"default profile", DefaultProfile},
		{"named profile", "ci"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "credentials")
			c := realLookingCreds(t, time.Now().Add(time.Hour))
			w, err := New(path, tt.profile)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Update(c); err != nil {
				t.Fatal(err)
			}
			env := map[string]string{"AWS_SHARED_CREDENTIALS_FILE": path, "EXPECT_CREDS_SHA256": credsDigest(c)}
			if tt.profile != DefaultProfile {
				env["PROFILE"] = tt.profile
			}
			out := sdkclient.RunJSON(t, py, []string{"testdata/credfile_boto3.py"}, env)
			want := map[string]any{
				"provider":     "shared-credentials-file",
				"key_id_last4": c.AccessKeyID[len(c.AccessKeyID)-4:],
				"creds_match":  true,
			}
			for k, v := range want {
				if out[k] != v {
					t.Errorf("%s = %v, want %v (all: %v)", k, out[k], v, out)
				}
			}
		})
	}
}

// TestAWSCLIReadsFile asks the AWS CLI (v1 here) which credentials it would use: `aws configure
// list` names the provider and shows the key id's last 4 characters.
func TestAWSCLIReadsFile(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: no SDK subprocesses")
	}
	aws, err := exec.LookPath("aws")
	if err != nil {
		t.Fatalf("the AWS CLI is needed: %v", err)
	}
	path := filepath.Join(t.TempDir(), "credentials")
	c := realLookingCreds(t, time.Now().Add(time.Hour))
	w, err := New(path, "ci")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Update(c); err != nil {
		t.Fatal(err)
	}
	out := sdkclient.Run(t, aws, []string{"configure", "list", "--profile", "ci"}, map[string]string{"AWS_SHARED_CREDENTIALS_FILE": path})
	if !strings.Contains(out, "shared-credentials-file") || !strings.Contains(out, c.AccessKeyID[len(c.AccessKeyID)-4:]) {
		t.Fatalf("aws configure list does not show the file's key:\n%s", out)
	}
	if strings.Contains(out, c.SecretAccessKey) {
		t.Fatal("aws configure list printed the secret") // it masks it; the test must not leak it either
	}
}

// TestProfilesPerRole: one file, one profile per role, kept whole as each role's credentials
// change on their own; the Go SDK reads each profile's own credentials.
func TestProfilesPerRole(t *testing.T) {
	sdkclient.IsolateEnv(t)
	path := filepath.Join(t.TempDir(), "credentials")
	unnamed, reader := newTestSource(t, nil), newTestSource(t, nil)
	w, err := New(path, DefaultProfile)
	if err != nil {
		t.Fatal(err)
	}
	wait, stop := runWriter(t, w, []Profile{{Name: DefaultProfile, Source: unnamed}, {Name: "reader", Source: reader}})
	defer func() {
		if err := stop(); err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	read := func(profile string) string {
		t.Helper()
		rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer rcancel()
		cfg, err := config.LoadDefaultConfig(rctx, config.WithRegion("us-east-1"),
			config.WithSharedConfigFiles([]string{}), config.WithSharedCredentialsFiles([]string{path}),
			config.WithSharedConfigProfile(profile))
		if err != nil {
			t.Fatalf("LoadDefaultConfig(%s): %v", profile, err)
		}
		got, err := cfg.Credentials.Retrieve(rctx)
		if err != nil {
			t.Fatalf("Retrieve(%s): %v", profile, err)
		}
		return got.AccessKeyID
	}
	wait("start")
	c1 := realLookingCreds(t, time.Now().Add(time.Hour))
	reader.Set(c1)
	wait("the reader's first credentials")
	if got := read("reader"); got != c1.AccessKeyID {
		t.Fatalf("[reader] holds %s, want %s", got, c1.AccessKeyID)
	}
	c2 := realLookingCreds(t, time.Now().Add(time.Hour))
	unnamed.Set(c2)
	wait("the unnamed role's credentials")
	if got := read(DefaultProfile); got != c2.AccessKeyID {
		t.Fatalf("[default] holds %s, want %s", got, c2.AccessKeyID)
	}
	// The reader's source loses its credentials (an outage past the floor): its profile keeps
	// the last ones while the unnamed role's are replaced.
	reader.Set(nil)
	wait("the reader going unservable")
	c3 := realLookingCreds(t, time.Now().Add(time.Hour))
	unnamed.Set(c3)
	wait("the unnamed role's refresh")
	if got, want := read("reader")+" "+read(DefaultProfile), c1.AccessKeyID+" "+c3.AccessKeyID; got != want {
		t.Fatalf("profiles hold %s, want %s", got, want)
	}
}
