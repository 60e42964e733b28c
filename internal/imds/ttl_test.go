package imds

import (
	"fmt"
	"strconv"
	"testing"
	"time"
)

func TestParseTTL(t *testing.T) {
	tests := []struct {
		name  string
		value string
		want  time.Duration
		ok    bool
	}{
		{"go sdk v2", "300", 5 * time.Minute, true},
		{"other sdks", "21600", 6 * time.Hour, true},
		{"one second", "1", time.Second, true},
		{"leading zeros", "0060", time.Minute, true},
		{"empty", "", 0, false},
		{"zero", "0", 0, false},
		{"above six hours", "21601", 0, false},
		{"negative", "-1", 0, false},
		{"plus sign", "+300", 0, false},
		{"fraction", "300.5", 0, false},
		{"duration syntax", "5m", 0, false},
		{"inner space", "3 00", 0, false},
		{"trailing space", "300 ", 0, false},
		{"hex", "0x12c", 0, false},
		{"non-ascii digit", "３００", 0, false},
		{"overflowing", "99999999999999999999999", 0, false},
		{"nine digits", "000000300", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTTL(tt.value)
			if (err == nil) != tt.ok || got != tt.want {
				t.Fatalf("ParseTTL(%q) = %v, %v; want %v, ok=%v", tt.value, got, err, tt.want, tt.ok)
			}
		})
	}
}

// FuzzParseTTL checks ParseTTL against strconv: it accepts exactly the strings of 1 to 8 ASCII
// digits whose value is 1 to 21600, and its errors never depend on (so never quote) the input:
// each is one of the messages that a few fixed inputs produce.
func FuzzParseTTL(f *testing.F) {
	for _, s := range []string{"300", "21600", "21601", "0", "", "-1", "+5", "1e3", "0000300"} {
		f.Add(s)
	}
	fixed := map[string]bool{}
	for _, s := range []string{"", "123456789", "x", "0"} {
		if _, err := ParseTTL(s); err != nil {
			fixed[err.Error()] = true
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseTTL(s)
		n, convErr := strconv.ParseUint(s, 10, 64)
		want := convErr == nil && len(s) <= maxTTLDigits && n >= 1 && n <= 21600
		if want != (err == nil) {
			t.Fatalf("ParseTTL(%q) = %v, %v; strconv says %d, %v", s, got, err, n, convErr)
		}
		if want && got != time.Duration(n)*time.Second {
			t.Fatalf("ParseTTL(%q) = %v, want %ds", s, got, n)
		}
		if err != nil && !fixed[err.Error()] {
			t.Fatalf("ParseTTL(%q) error depends on the input: %v", s, err)
		}
	})
}

func ExampleParseTTL() {
	for _, v := range []string{"300", "21600", "0", "5m"} {
		d, err := ParseTTL(v)
		fmt.Println(v, d, err)
	}
	// Output:
	// 300 5m0s <nil>
	// 21600 6h0m0s <nil>
	// 0 0s parse token ttl: outside 1 to 21600 seconds
	// 5m 0s parse token ttl: not a whole number of seconds
}
