package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/credsidecar/credsidecar/internal/creds"
)

// refreshJitter is creds' refresh jitter: a refresh starts up to this share of the window
// later, never earlier (creds.Manager; Config.RefreshWindow's comment).
const refreshJitter = 0.10

// refreshPolicy is a sidecar's refresh schedule, from which the report's prose derives its
// figures, so that the text follows the defaults in creds rather than copies of them.
type refreshPolicy struct {
	session, window time.Duration
}

// defaultRefresh is the schedule of a sidecar with creds' defaults.
func defaultRefresh() refreshPolicy {
	return refreshPolicy{session: creds.DefaultDuration, window: creds.DefaultRefreshWindow}
}

// minWindow is the lifetime left at the latest jittered refresh.
func (p refreshPolicy) minWindow() time.Duration {
	return p.window - time.Duration(float64(p.window)*refreshJitter)
}

// spacing is the range of times between two refreshes: a session less the (jittered) window.
func (p refreshPolicy) spacing() (lo, hi time.Duration) {
	return p.session - p.window, p.session - p.minWindow()
}

// perHour is the range of refreshes per hour that spacing gives.
func (p refreshPolicy) perHour() (lo, hi float64) {
	slo, shi := p.spacing()
	return float64(time.Hour) / float64(shi), float64(time.Hour) / float64(slo)
}

// windowFor is the largest window, in whole minutes, that keeps refreshes at or below perHour
// per hour: the jitter only shortens it.
func (p refreshPolicy) windowFor(perHour float64) time.Duration {
	return (p.session - time.Duration(float64(time.Hour)/perHour)) / time.Minute * time.Minute
}

// describe is the schedule in the report's words.
func (p refreshPolicy) describe() string {
	return fmt.Sprintf("%s sessions, refresh with %s less up to %.0f%% jitter left", human(p.session), human(p.window), refreshJitter*100)
}

// human writes a duration as the prose does: "1 h", "40 min", "30 s", "100 ms", else Go's form.
func human(d time.Duration) string {
	switch {
	case d != 0 && d < time.Second && d%time.Millisecond == 0:
		return fmt.Sprintf("%d ms", d/time.Millisecond)
	case d != 0 && d%time.Hour == 0:
		return fmt.Sprintf("%d h", d/time.Hour)
	case d != 0 && d%time.Minute == 0:
		return fmt.Sprintf("%d min", d/time.Minute)
	case d != 0 && d%time.Second == 0:
		return fmt.Sprintf("%d s", d/time.Second)
	default:
		return d.String()
	}
}

// thousands writes n with commas: 10,000.
func thousands(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// millions writes n as "28.8 M", or with commas below a million.
func millions(n float64) string {
	if n < 1e6 {
		return thousands(int(math.Round(n)))
	}
	return fmt.Sprintf("%.1f M", n/1e6)
}

// count writes n with the singular or the plural noun: "1 run", "7 runs".
func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return thousands(n) + " " + many
}
