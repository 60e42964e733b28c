package upload

import (
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    int64
		wantErr string
	}{
		{name: "bytes", in: "1048576", want: MiB},
		{name: "MiB", in: "16MiB", want: 16 * MiB},
		{name: "short binary M", in: "5M", want: 5 * MiB},
		{name: "decimal MB", in: "8MB", want: 8_000_000},
		{name: "GiB", in: "1GiB", want: GiB},
		{name: "KiB with spaces", in: " 64 KiB ", want: 64 * KiB},
		{name: "B suffix", in: "10B", want: 10},
		{name: "zero", in: "0", want: 0},
		{name: "empty", in: "", wantErr: "empty"},
		{name: "negative", in: "-5MiB", wantErr: "negative"},
		{name: "fraction", in: "1.5MiB", wantErr: "whole number"},
		{name: "unknown unit", in: "5TB", wantErr: "whole number"},
		{name: "overflow", in: "9223372036854775807GiB", wantErr: "too large"},
		{name: "unit only", in: "MiB", wantErr: "whole number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSize(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseSize(%q) = %d, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestFormatSizeRoundTrips(t *testing.T) {
	tests := []struct {
		name string
		n    int64
		want string
	}{
		{name: "MiB", n: 16 * MiB, want: "16MiB"},
		{name: "GiB", n: 5 * GiB, want: "5GiB"},
		{name: "KiB", n: 3 * KiB, want: "3KiB"},
		{name: "odd", n: 1001, want: "1001"},
		{name: "zero", n: 0, want: "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := FormatSize(tt.n)
			if s != tt.want {
				t.Errorf("FormatSize(%d) = %q, want %q", tt.n, s, tt.want)
			}
			if back, err := ParseSize(s); err != nil || back != tt.n {
				t.Errorf("ParseSize(%q) = %d, %v; want %d", s, back, err, tt.n)
			}
		})
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"16MiB", "5M", "8MB", "0", "-1", "1.5G", "9223372036854775807", " 1 KiB", "GiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("ParseSize(%q) = %d, negative", s, n)
		}
		// Whatever parses must print back to the same value.
		if back, err := ParseSize(FormatSize(n)); err != nil || back != n {
			t.Fatalf("round trip of %q: %d -> %q -> %d, %v", s, n, FormatSize(n), back, err)
		}
	})
}
