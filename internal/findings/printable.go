package findings

import (
	"strconv"
	"strings"
	"unicode"
)

// Printable makes a value from outside (a token's claims, an STS message) safe to print on a
// terminal: control characters (a newline that would forge a report line, an escape sequence
// that would rewrite the screen) and the invisible bidirectional overrides are written as Go
// escapes, \n, \x1b or \u202e; everything else is kept.
func Printable(s string) string {
	if strings.IndexFunc(s, UnsafeRune) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if !UnsafeRune(r) {
			b.WriteRune(r)
			continue
		}
		q := strconv.QuoteRuneToASCII(r) // "'\\n'"
		b.WriteString(q[1 : len(q)-1])
	}
	return b.String()
}

func UnsafeRune(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || r == unicode.ReplacementChar
}
