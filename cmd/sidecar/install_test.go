package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestInstall copies the running binary (the test binary here) the way the init container of
// the credential_process set-up does, through run.
func TestInstall(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStderr string
	}{
		{name: "into a directory", args: []string{"install", dir}},
		{name: "again, over the first copy", args: []string{"install", dir}},
		{name: "no directory", args: []string{"install"}, wantCode: 2, wantStderr: "usage: sidecar install DIR"},
		{name: "a flag", args: []string{"install", "--to=/x"}, wantCode: 2, wantStderr: "usage: sidecar install DIR"},
		{name: "missing directory", args: []string{"install", filepath.Join(dir, "absent")}, wantCode: 1,
			wantStderr: "sidecar: install: open " + filepath.Join(dir, "absent")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), tt.args, env(nil), &stdout, &stderr)
			if code != tt.wantCode || !strings.HasPrefix(stderr.String(), tt.wantStderr) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, stderr.String(), tt.wantCode, tt.wantStderr)
			}
			if tt.wantCode != 0 {
				return
			}
			dest := filepath.Join(dir, "sidecar")
			if stdout.String() != "installed "+dest+"\n" {
				t.Errorf("stdout %q", stdout.String())
			}
			got, err := os.ReadFile(dest)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("%s is not a copy of the binary (%v)", dest, err)
			}
			if fi, err := os.Stat(dest); err != nil {
				t.Fatal(err)
			} else if fi.Mode().Perm() != 0o755 {
				t.Errorf("%s mode %v, want 0755", dest, fi.Mode().Perm())
			}
			entries, err := os.ReadDir(dir)
			if err != nil || len(entries) != 1 {
				t.Errorf("%s holds %d entries, want only the binary (no temporary file left)", dir, len(entries))
			}
		})
	}
}
