package load

import (
	"math/bits"
	"time"
)

// subBits sets the histogram's precision: 2^subBits buckets per power of two keep any recorded
// value within 1/2^subBits (0.8%) of the truth, enough for percentiles of latencies, in a fixed
// 58 KiB whatever the run length, so a ten-minute soak costs no more memory than a second.
const subBits = 7

const (
	subCount = 1 << subBits
	// exact is the range recorded without rounding.
	exact = 2 * subCount
	// nBuckets covers every uint64: shifts 1..56 after the exact range.
	nBuckets = exact + (64-subBits-1)*subCount
)

// Histogram counts durations in log-linear buckets. The zero value is empty and ready; it is not
// safe for concurrent use (each load worker keeps its own and Merge joins them).
type Histogram struct {
	counts [nBuckets]uint64
	total  uint64
	max    time.Duration
}

func bucketOf(v uint64) int {
	if v < exact {
		return int(v)
	}
	shift := bits.Len64(v) - (subBits + 1)
	mant := v >> shift
	return exact + (shift-1)*subCount + int(mant-subCount)
}

// bucketMid is the middle of the values bucket i holds.
func bucketMid(i int) uint64 {
	if i < exact {
		return uint64(i)
	}
	shift := (i-exact)/subCount + 1
	mant := uint64((i-exact)%subCount + subCount)
	low := mant << shift
	return low + (uint64(1)<<shift)/2
}

// Record adds one duration; negative ones count as zero.
func (h *Histogram) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(uint64(d))]++
	h.total++
	if d > h.max {
		h.max = d
	}
}

// Merge adds every count of o to h.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
	if o.max > h.max {
		h.max = o.max
	}
}

// Count is the number of recorded durations.
func (h *Histogram) Count() uint64 { return h.total }

// Max is the largest recorded duration, exactly.
func (h *Histogram) Max() time.Duration { return h.max }

// Quantile returns the q-quantile (0 < q <= 1) by the nearest-rank method, to the histogram's
// precision; 0 when nothing was recorded.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	rank := uint64(q * float64(h.total))
	if float64(rank) < q*float64(h.total) {
		rank++
	}
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			v := time.Duration(bucketMid(i))
			return min(v, h.max)
		}
	}
	return h.max
}
