package upload

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Byte sizes used for defaults and limits.
const (
	KiB int64 = 1 << 10
	MiB int64 = 1 << 20
	GiB int64 = 1 << 30
)

// ParseSize reads a byte count such as "16MiB", "5M" (binary), "8MB" (decimal) or "1048576".
// It rejects negative, fractional and overflowing values.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("parse size %q: empty", s)
	}
	// Longest suffixes first, so "MiB" is not read as "M" followed by junk.
	units := [...]struct {
		suffix string
		factor int64
	}{
		{"KiB", KiB}, {"MiB", MiB}, {"GiB", GiB},
		{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000},
		{"K", KiB}, {"M", MiB}, {"G", GiB},
		{"B", 1},
	}
	factor := int64(1)
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			factor = u.factor
			t = strings.TrimSpace(strings.TrimSuffix(t, u.suffix))
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse size %q: want a whole number of bytes with an optional unit (KiB, MiB, GiB, KB, MB, GB): %w", s, err)
	}
	if n < 0 {
		return 0, fmt.Errorf("parse size %q: negative", s)
	}
	if n > math.MaxInt64/factor {
		return 0, fmt.Errorf("parse size %q: too large", s)
	}
	return n * factor, nil
}

// FormatSize prints n in the largest binary unit that divides it, so defaults read as "16MiB".
func FormatSize(n int64) string {
	switch {
	case n != 0 && n%GiB == 0:
		return strconv.FormatInt(n/GiB, 10) + "GiB"
	case n != 0 && n%MiB == 0:
		return strconv.FormatInt(n/MiB, 10) + "MiB"
	case n != 0 && n%KiB == 0:
		return strconv.FormatInt(n/KiB, 10) + "KiB"
	default:
		return strconv.FormatInt(n, 10)
	}
}

// sizeValue is a flag.Value for byte sizes.
type sizeValue struct{ n *int64 }

func (v sizeValue) String() string {
	if v.n == nil {
		return ""
	}
	return FormatSize(*v.n)
}

func (v sizeValue) Set(s string) error {
	n, err := ParseSize(s)
	if err != nil {
		return err
	}
	*v.n = n
	return nil
}
