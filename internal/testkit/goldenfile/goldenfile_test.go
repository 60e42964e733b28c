package goldenfile

import (
	"os"
	"path/filepath"
	"testing"
)

// recorder is a testing.TB that keeps failures instead of reporting them.
type recorder struct {
	testing.TB
	failed bool
}

func (r *recorder) Helper()               {}
func (r *recorder) Errorf(string, ...any) { r.failed = true }
func (r *recorder) Fatalf(string, ...any) { r.failed = true }

func TestCheck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.golden")
	tests := []struct {
		name     string
		got      string
		update   bool
		wantFail bool
	}{
		{name: "missing file fails", got: "a\n", wantFail: true},
		{name: "update writes", got: "a\nb\n", update: true},
		{name: "same passes", got: "a\nb\n"},
		{name: "different fails", got: "a\nc\n", wantFail: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{TB: t}
			Check(r, path, []byte(tt.got), tt.update)
			if r.failed != tt.wantFail {
				t.Fatalf("failed = %v, want %v", r.failed, tt.wantFail)
			}
		})
	}
	if b, _ := os.ReadFile(path); string(b) != "a\nb\n" {
		t.Fatalf("golden file holds %q", b)
	}
	if d := Diff("a\nb\n", "a\nc\n"); d != "line 2:\n  golden: \"b\"\n  now:    \"c\"" {
		t.Fatalf("Diff = %q", d)
	}
}
