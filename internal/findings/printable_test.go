package diagnose

import (
	"strings"
	"testing"
	"unicode"
)

func TestPrintable(t *testing.T) {
	tests := []struct{ in, want string }{
		{"system:serviceaccount:team:app", "system:serviceaccount:team:app"},
		{"ünïcödé ns", "ünïcödé ns"},
		{"team\nsa   ok", `team\nsa   ok`},
		{"\x1b[2J\x1b[Hcleared", `\x1b[2J\x1b[Hcleared`},
		{"back\rwrite", `back\rwrite`},
		{"bell\a", `bell\a`},
		{"\u202eevil", `\u202eevil`},
		{"c1\u009bcsi", `c1\u009bcsi`},
		{"bad\xffbyte", `bad\ufffdbyte`},
	}
	for _, tt := range tests {
		if got := printable(tt.in); got != tt.want {
			t.Errorf("printable(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzPrintable(f *testing.F) {
	for _, s := range []string{"plain", "a\nb", "\x1b[31m", "\u202e", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := printable(s)
		if strings.IndexFunc(got, unsafeRune) >= 0 {
			t.Fatalf("printable(%q) = %q still holds a control character", s, got)
		}
		if strings.IndexFunc(s, func(r rune) bool { return unsafeRune(r) || r == unicode.ReplacementChar }) < 0 && got != s {
			t.Fatalf("printable(%q) = %q changed a safe string", s, got)
		}
	})
}

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
	r.Findings = append(r.Findings, Finding{ID: "test", Severity: "warning", What: "namespace \"default\nforged\"", Why: "-", Fix: "-"})
	var got strings.Builder
	if err := r.WriteText(&got); err != nil {
		t.Fatal(err)
	}
	if n, m := strings.Count(got.String(), "\n"), strings.Count(want.String(), "\n")+1; n != m {
		t.Errorf("%d lines, want %d (one more finding): a claim forged a line:\n%s", n, m, got.String())
	}
	for _, r := range strings.ReplaceAll(got.String(), "\n", "") {
		if unsafeRune(r) {
			t.Fatalf("report holds control character %U:\n%q", r, got.String())
		}
	}
	for _, w := range []string{`default\nOK: 0 error(s)`, `\x1b[2J`, `app\u202e-x`, `"default\nforged"`} {
		if !strings.Contains(got.String(), w) {
			t.Errorf("report lacks the escaped %s:\n%s", w, got.String())
		}
	}
}
