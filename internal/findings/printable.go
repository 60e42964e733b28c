package diagnose

import (
	"strconv"
	"strings"
	"unicode"
)

// printable makes a value from outside (a token's claims, an STS message) safe to print on a
// terminal: control characters (a newline that would forge a report line, an escape sequence
// that would rewrite the screen) and the invisible bidirectional overrides are written as Go
// escapes, \n, \x1b or \u202e; everything else is kept.
func printable(s string) string {
	if strings.IndexFunc(s, unsafeRune) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if !unsafeRune(r) {
			b.WriteRune(r)
			continue
		}
		q := strconv.QuoteRuneToASCII(r) // "'\\n'"
		b.WriteString(q[1 : len(q)-1])
	}
	return b.String()
}

func unsafeRune(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || r == unicode.ReplacementChar
}
