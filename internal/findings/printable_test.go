package findings_test

import (
	"strings"
	"testing"
	"unicode"

	"github.com/credsidecar/credsidecar/internal/findings"
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
		if got := findings.Printable(tt.in); got != tt.want {
			t.Errorf("findings.Printable(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzPrintable(f *testing.F) {
	for _, s := range []string{"plain", "a\nb", "\x1b[31m", "\u202e", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := findings.Printable(s)
		if strings.IndexFunc(got, findings.UnsafeRune) >= 0 {
			t.Fatalf("findings.Printable(%q) = %q still holds a control character", s, got)
		}
		if strings.IndexFunc(s, func(r rune) bool { return findings.UnsafeRune(r) || r == unicode.ReplacementChar }) < 0 && got != s {
			t.Fatalf("findings.Printable(%q) = %q changed a safe string", s, got)
		}
	})
}
