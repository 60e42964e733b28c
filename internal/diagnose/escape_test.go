package diagnose

import (
	"strings"
	"testing"

	"github.com/credsidecar/credsidecar/internal/findings"
)

// TestWriteTextEscapesClaims: a token whose claims carry a newline (to forge a report line) or an
// escape sequence (to clear and rewrite the terminal) is printed with both escaped: the report
// keeps its line count and holds no control character but its own line breaks.
func TestWriteTextEscapesClaims(t *testing.T) {
	clean := fixedReport()
	var want strings.Builder
	if err := clean.WriteText(&want); err != nil {
		t.Fatal(err)
	}
	r := fixedReport()
	r.Token.Namespace = "default\nOK: 0 error(s), 0 warning(s)"
	r.Token.Subject = "system:serviceaccount:\x1b[2J\x1b[Hdefault:workload-sa"
	r.Token.Pod = "app\u202e-x"
	r.Findings = append(r.Findings, findings.Finding{ID: "test", Severity: "warning", What: "namespace \"default\nforged\"", Why: "-", Fix: "-"})
	var got strings.Builder
	if err := r.WriteText(&got); err != nil {
		t.Fatal(err)
	}
	if n, m := strings.Count(got.String(), "\n"), strings.Count(want.String(), "\n")+1; n != m {
		t.Errorf("%d lines, want %d (one more finding): a claim forged a line:\n%s", n, m, got.String())
	}
	for _, r := range strings.ReplaceAll(got.String(), "\n", "") {
		if findings.UnsafeRune(r) {
			t.Fatalf("report holds control character %U:\n%q", r, got.String())
		}
	}
	for _, w := range []string{`default\nOK: 0 error(s)`, `\x1b[2J`, `app\u202e-x`, `"default\nforged"`} {
		if !strings.Contains(got.String(), w) {
			t.Errorf("report lacks the escaped %s:\n%s", w, got.String())
		}
	}
}
