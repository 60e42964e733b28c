package security

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/credsidecar/credsidecar/internal/testkit/podenv"
)

// TestHostileAuthTokenFile: an auth-token file that is a symlink to /dev/zero ran the sidecar
// out of memory, a FIFO hung its start-up past SIGTERM, and a one-character token was accepted.
// Each now stops the built sidecar at once with an error naming the file.
func TestHostileAuthTokenFile(t *testing.T) {
	w := podenv.Shared(t)
	tests := []struct {
		name, want string
		make       func(t *testing.T, path string)
	}{
		{"symlink to /dev/zero", "is not a regular file", func(t *testing.T, path string) {
			if err := os.Symlink("/dev/zero", path); err != nil {
				t.Fatal(err)
			}
		}},
		{"fifo", "is not a regular file", func(t *testing.T, path string) {
			if err := syscall.Mkfifo(path, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"one character", "token is 1 characters, fewer than 32", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := worldReadableDir(t)
			path := filepath.Join(dir, "auth", "auth-token")
			tt.make(t, path)
			_, err := runBinary(t, w, runOptions{Dir: dir})
			if err == nil || !strings.Contains(err.Error(), "sidecar exited") || !strings.Contains(err.Error(), path) ||
				!strings.Contains(err.Error(), tt.want) {
				t.Errorf("sidecar with that auth-token file: %v; want it to exit naming %s and saying %q", err, path, tt.want)
			}
		})
	}
}
