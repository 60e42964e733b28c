// Package goldenfile compares rendered output (manifests, policies, reports, usage) with a file
// under testdata, or rewrites that file when the test runs with -update. It is imported by tests
// only; each test package declares its own -update flag and passes its value.
package goldenfile

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// Check compares got with the file at path, or, with update, writes got there.
func Check(t testing.TB, path string, got []byte, update bool) {
	t.Helper()
	if update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatalf("update golden file: %v", err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test -update to create it): %v", err)
	}
	if string(got) != string(want) {
		t.Errorf("output differs from %s (run go test -update and review the diff):\n%s", path, Diff(string(want), string(got)))
	}
}

// Diff names the first line where want and got differ: enough to see what moved.
func Diff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d:\n  golden: %q\n  now:    %q", i+1, wl, gl)
		}
	}
	return "(no line differs)"
}
