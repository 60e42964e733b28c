package creds

import (
	"crypto/sha256"
	"time"
)

// WithTokenCheck sets a function that inspects each new token's claims: it is called once per
// distinct token, when the refresh loop first reads it (at start) and when a rotation is
// noticed, never once per STS call, so a warning it logs appears once per token rather than at
// every refresh. It runs on the refresh loop's goroutine and must return quickly.
func WithTokenCheck(f func(*TokenClaims)) Option {
	return func(m *Manager) { m.check.f = f }
}

// tokenChecker remembers which token was checked last. It belongs to the refresh loop's
// goroutine, like loopState.
type tokenChecker struct {
	f    func(*TokenClaims)
	last [sha256.Size]byte
	seen bool
}

// token runs the check on tok unless it is the token checked last.
func (k *tokenChecker) token(tok *tokenFile) {
	if k.f == nil || tok == nil {
		return
	}
	sum := sha256.Sum256(tok.raw)
	if k.seen && sum == k.last {
		return
	}
	k.last, k.seen = sum, true
	k.f(tok.claims)
}

// rotated checks the token the watcher handed over as new now, rather than at the next
// refresh, which may be most of an hour away. A token that cannot be used is left to the next
// fetch, which reports why.
func (m *Manager) rotated(now time.Time) {
	if m.check.f == nil {
		return
	}
	if tok, err := m.currentToken(now); err == nil {
		m.check.token(tok)
	}
}
