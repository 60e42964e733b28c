package diagnose

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/credsidecar/credsidecar/internal/findings"
	"github.com/credsidecar/credsidecar/internal/testkit/claimstest"
)

// makeToken builds an unsigned-looking JWT with the given claims: check never verifies
// signatures (STS does), so any signature bytes do.
func makeToken(t testing.TB, claims map[string]any) string {
	t.Helper()
	body, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256","kid":"test-kid"}`)) + "." + enc(body) + "." + enc([]byte("signature-bytes-0123456789abcdef"))
}

func aksClaims(now time.Time) map[string]any {
	return map[string]any{
		"iss": testIssuer,
		"sub": "system:serviceaccount:default:workload-sa",
		"aud": []string{testIssuer},
		"iat": now.Add(-time.Minute).Unix(),
		"nbf": now.Add(-time.Minute).Unix(),
		"exp": now.Add(59 * time.Minute).Unix(),
		"kubernetes.io": map[string]any{
			"namespace":      "default",
			"serviceaccount": map[string]any{"name": "workload-sa", "uid": "u1"},
			"pod":            map[string]any{"name": "app-7d9c-x2x", "uid": "u2"},
		},
	}
}

func TestReadTokenFile(t *testing.T) {
	tests := []struct {
		name string
		// setup prepares dir and returns the configured path and the known paths.
		setup  func(t *testing.T, dir string) (path string, known []string)
		source string
		want   *claimstest.Want // nil: the token is usable
	}{
		{
			name: "usable token",
			setup: func(t *testing.T, dir string) (string, []string) {
				return writeFile(t, filepath.Join(dir, "token"), makeToken(t, aksClaims(time.Now()))+"\n"), nil
			},
		},
		{
			name: "variable names a file the volume does not have",
			setup: func(t *testing.T, dir string) (string, []string) {
				writeFile(t, filepath.Join(dir, "tokens", "token"), makeToken(t, aksClaims(time.Now())))
				return filepath.Join(dir, "tokens", "azure-identity-token"), nil
			},
			want: &claimstest.Want{ID: findings.IDTokenMissing, Severity: findings.SeverityError,
				WhatHas: []string{"AWS_WEB_IDENTITY_TOKEN_FILE=", "azure-identity-token does not exist", "holds token"},
				FixHas:  []string{"AWS_WEB_IDENTITY_TOKEN_FILE to $DIR/tokens/token", "mountPath: $DIR/tokens", "path: azure-identity-token"}},
		},
		{
			name: "volume mounted elsewhere, found at a well-known path",
			setup: func(t *testing.T, dir string) (string, []string) {
				known := writeFile(t, filepath.Join(dir, "var/run/secrets/eks.amazonaws.com/serviceaccount/token"), "x")
				return filepath.Join(dir, "var/run/secrets/azure/tokens/azure-identity-token"), []string{known}
			},
			want: &claimstest.Want{ID: findings.IDTokenMissing, Severity: findings.SeverityError,
				WhatHas: []string{"deepest existing parent directory is $DIR/var/run/secrets", "a token file exists at $DIR/var/run/secrets/eks.amazonaws.com/serviceaccount/token"},
				FixHas:  []string{"AWS_WEB_IDENTITY_TOKEN_FILE to $DIR/var/run/secrets/eks.amazonaws.com/serviceaccount/token", "mountPath: $DIR/var/run/secrets/azure/tokens"}},
		},
		{
			name:   "flag names a missing file in an empty directory",
			source: "--token-file",
			setup: func(t *testing.T, dir string) (string, []string) {
				return filepath.Join(dir, "token"), []string{}
			},
			want: &claimstest.Want{ID: findings.IDTokenMissing, Severity: findings.SeverityError,
				WhatHas: []string{"--token-file $DIR/token does not exist", "exists but is empty"},
				FixHas:  []string{"mountPath: $DIR", "path: token", "point --token-file at"}},
		},
		{
			name: "dangling symlink of a torn-down volume",
			setup: func(t *testing.T, dir string) (string, []string) {
				p := filepath.Join(dir, "token")
				if err := os.Symlink("..data/token", p); err != nil {
					t.Fatal(err)
				}
				return p, []string{}
			},
			want: &claimstest.Want{ID: findings.IDTokenMissing, Severity: findings.SeverityError, WhatHas: []string{"symlink to ..data/token, which points nowhere"}},
		},
		{
			name: "directory instead of file",
			setup: func(t *testing.T, dir string) (string, []string) {
				writeFile(t, filepath.Join(dir, "vol", "token"), "x")
				return filepath.Join(dir, "vol"), nil
			},
			want: &claimstest.Want{ID: findings.IDTokenUnreadable, Severity: findings.SeverityError, WhatHas: []string{"is a directory holding token"}, FixHas: []string{"$DIR/vol/token"}},
		},
		{
			name: "empty file",
			setup: func(t *testing.T, dir string) (string, []string) {
				return writeFile(t, filepath.Join(dir, "token"), ""), nil
			},
			want: &claimstest.Want{ID: findings.IDTokenMalformed, Severity: findings.SeverityError, WhatHas: []string{"empty"}},
		},
		{
			name: "not a JWT",
			setup: func(t *testing.T, dir string) (string, []string) {
				return writeFile(t, filepath.Join(dir, "token"), "AKIAEXAMPLESECRETVALUE"), nil
			},
			want: &claimstest.Want{ID: findings.IDTokenMalformed, Severity: findings.SeverityError, WhatHas: []string{"not a JWT"}},
		},
		{
			name: "larger than STS accepts",
			setup: func(t *testing.T, dir string) (string, []string) {
				return writeFile(t, filepath.Join(dir, "token"), strings.Repeat("a", 30000)), nil
			},
			want: &claimstest.Want{ID: findings.IDTokenMalformed, Severity: findings.SeverityError, WhatHas: []string{"larger than the 20000 bytes"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path, known := tt.setup(t, dir)
			source := tt.source
			if source == "" {
				source = "AWS_WEB_IDENTITY_TOKEN_FILE"
			}
			raw, claims, problem := readTokenFile(tokenInput{path: path, source: source, known: known})
			if tt.want == nil {
				if problem != nil {
					t.Fatalf("unexpected finding: %s", problem)
				}
				if claims.Issuer != testIssuer || claims.ServiceAccount != "workload-sa" || len(raw) == 0 || raw[len(raw)-1] == '\n' {
					t.Errorf("claims %+v, raw %d bytes ending %q", claims, len(raw), raw[len(raw)-1:])
				}
				return
			}
			if problem == nil {
				t.Fatal("no finding")
			}
			f := *problem
			f.What = strings.ReplaceAll(f.What, dir, "$DIR")
			f.Fix = strings.ReplaceAll(f.Fix, dir, "$DIR")
			claimstest.Check(t, []findings.Finding{f}, []claimstest.Want{*tt.want})
			if strings.Contains(f.String(), "AKIAEXAMPLESECRETVALUE") {
				t.Errorf("finding quotes the file's content: %s", f)
			}
		})
	}
}

// TestReadTokenFilePermissionDenied needs a file the test's user cannot read. A file with mode
// 000 does that for an unprivileged user only: root's CAP_DAC_OVERRIDE reads it anyway. A
// procfs sysctl without read bits denies reading to root too (the kernel checks its mode bits
// whatever the capabilities), so that case runs under root, as CI containers often are.
func TestReadTokenFilePermissionDenied(t *testing.T) {
	tests := []struct {
		name string
		// path returns the unreadable file, or skips t where this system cannot make one.
		path func(t *testing.T) string
	}{
		{name: "file with mode 000", path: func(t *testing.T) string {
			if os.Geteuid() == 0 {
				t.Skip("root reads a file whatever its mode; the procfs case covers root")
			}
			p := writeFile(t, filepath.Join(t.TempDir(), "token"), "x")
			if err := os.Chmod(p, 0o000); err != nil {
				t.Fatal(err)
			}
			return p
		}},
		{name: "procfs file without read bits", path: func(t *testing.T) string {
			// compact_memory is write-only (mode 0200): opening it to read is EACCES for everyone.
			const p = "/proc/sys/vm/compact_memory"
			f, err := os.Open(p)
			if err == nil {
				f.Close()
				t.Skipf("%s is readable here; no file denies reading to this user", p)
			}
			if !errors.Is(err, fs.ErrPermission) {
				t.Skipf("open %s: %v, want permission denied (no such procfs here?)", p, err)
			}
			return p
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.path(t)
			_, _, problem := readTokenFile(tokenInput{path: p, source: "AWS_WEB_IDENTITY_TOKEN_FILE"})
			if problem == nil {
				t.Fatal("no finding")
			}
			claimstest.Check(t, []findings.Finding{*problem}, []claimstest.Want{{ID: findings.IDTokenUnreadable, Severity: findings.SeverityError, FixHas: []string{"fsGroup"}, WhatHas: []string{"permission denied"}}})
		})
	}
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
