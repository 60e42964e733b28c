package sdkclient

import (
	"os"
	"testing"
)

// TestRunEnvironment runs a real program and checks what a client sees: only the base
// environment, with the caller's entries winning over it.
func TestRunEnvironment(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAOUTSIDE") // must not leak into the client
	tests := []struct {
		name string
		env  map[string]string
		key  string
		want string
	}{
		{name: "outside keys do not leak", key: "AWS_ACCESS_KEY_ID", want: ""},
		{name: "imds disabled by default", key: "AWS_EC2_METADATA_DISABLED", want: "true"},
		{name: "caller wins", env: map[string]string{"AWS_EC2_METADATA_DISABLED": "false"}, key: "AWS_EC2_METADATA_DISABLED", want: "false"},
		{name: "shared config off", key: "AWS_CONFIG_FILE", want: "/dev/null"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.want == "" {
				// printenv prints nothing and exits 1 for an unset variable.
				stdout, _, err := run(t, "printenv", []string{tt.key}, tt.env)
				if stdout != "" || err == nil {
					t.Fatalf("%s = %q in the client, want unset", tt.key, stdout)
				}
				return
			}
			if got := Run(t, "printenv", []string{tt.key}, tt.env); got != tt.want+"\n" {
				t.Fatalf("%s = %q in the client, want %q", tt.key, got, tt.want)
			}
		})
	}
}

func TestIsolateEnv(t *testing.T) {
	t.Setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/outside")
	IsolateEnv(t)
	if v, ok := os.LookupEnv("AWS_ROLE_ARN"); ok {
		t.Fatalf("AWS_ROLE_ARN still set to %q", v)
	}
	if os.Getenv("AWS_EC2_METADATA_DISABLED") != "true" {
		t.Fatal("IMDS not disabled")
	}
}
