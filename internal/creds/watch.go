package creds

import (
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"time"

	"github.com/credsidecar/credsidecar/internal/filewatch"
)

// tokenState is what the watcher last made of the token file: a usable token, or why there is
// none. The watcher is the only reader of the file after start; the refresh loop and the token
// check use what it hands over, so each version of the file is read once.
type tokenState struct {
	tok *tokenFile
	err error
}

// tokenSeen is what the watcher last reported; a change in any field is news.
type tokenSeen struct {
	target  string
	sum     [sha256.Size]byte
	problem string
}

// tokenWatch is the watcher goroutine's own state.
type tokenWatch struct {
	seen tokenSeen
	// target and info identify the usable file version read last (nil info: none), so that
	// notifications and polls that find the same version do not read it again.
	target string
	info   os.FileInfo
	tok    *tokenFile // the last usable token, nil when the last read failed
}

// loadToken reads the token at start, before the refresh loop's first fetch needs it, and
// returns the watcher's state for it. Nothing is logged or counted: the refresh loop reports
// the state at start.
func (m *Manager) loadToken() *tokenWatch {
	w := &tokenWatch{}
	m.readTokenVersion(w, true)
	return w
}

// watchToken notices token rotations, and token faults being fixed, and hands them to the
// refresh loop. internal/filewatch watches the directory (the kubelet swaps the ..data
// symlink, so the file is replaced, never written) and polls.
func (m *Manager) watchToken(ctx context.Context, w *tokenWatch) {
	filewatch.Run(ctx, filewatch.Config{
		Dir:   filepath.Dir(m.cfg.TokenFile),
		What:  "token",
		Poll:  m.cfg.PollInterval,
		Clock: m.clock,
		Log:   m.log,
	}, func() { m.checkToken(w) })
}

// checkToken looks at the token file after a notification or a poll. It reads it only when
// it is a version not read before; a rotation is several notifications, and a poll usually
// finds nothing new. For the version already read, only the passing of its expiry is news.
func (m *Manager) checkToken(w *tokenWatch) {
	if w.info != nil {
		target, err := filepath.EvalSymlinks(m.cfg.TokenFile)
		if err == nil && target == w.target {
			if fi, err := os.Stat(target); err == nil && sameVersion(fi, w.info) {
				if w.tok != nil {
					if err := checkExpiry(m.cfg.TokenFile, w.tok.claims, m.clock.Now()); err != nil {
						m.note(w, nil, err, false)
					}
				}
				return
			}
		}
	}
	m.readTokenVersion(w, false)
}

// sameVersion reports whether a and b describe the same, unmodified file.
func sameVersion(a, b os.FileInfo) bool {
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// readTokenVersion reads the token file and, when it is usable, records which version it read.
// A file that cannot be used is read again at every look: a fix such as a chmod changes
// neither its size nor its modification time.
func (m *Manager) readTokenVersion(w *tokenWatch, initial bool) {
	tok, err := readToken(m.cfg.TokenFile, m.clock.Now())
	w.target, w.info = "", nil
	if tok != nil {
		w.target, w.info = tok.target, tok.info
	}
	m.note(w, tok, err, initial)
}

// note records a new state of the token and, when it differs from what was seen last, reports
// it: a fault is logged, a valid new token is logged, counted and handed to the refresh loop.
// The initial state is only recorded, since the refresh loop reports the state at start.
func (m *Manager) note(w *tokenWatch, tok *tokenFile, err error, initial bool) {
	w.tok = tok
	var now tokenSeen
	if err != nil {
		now.problem = err.Error()
	} else {
		now.target, now.sum = tok.target, sha256.Sum256(tok.raw)
	}
	if now == w.seen && !initial {
		return
	}
	w.seen = now
	state := &tokenState{tok: tok, err: err}
	m.token.Store(state)
	for _, p := range m.peers {
		p.token.Store(state)
	}
	if initial {
		return
	}
	if err != nil {
		m.log.Warn("token unusable", "path", m.cfg.TokenFile, "error", err.Error())
		return
	}
	m.log.Info("token rotation noticed", "path", m.cfg.TokenFile, "target", tok.target,
		"issued_at", tok.claims.IssuedAt, "expiry", tok.claims.Expiry)
	for _, to := range append([]*Manager{m}, m.peers...) {
		select {
		case to.kick <- struct{}{}:
		default: // a kick is already pending
		}
	}
	m.obs.TokenReloaded(tok.claims.Expiry)
}

// currentToken is the token the watcher handed over, or why there is none, as of now: a token
// read while valid may have expired since, when the kubelet stopped rotating it.
func (m *Manager) currentToken(now time.Time) (*tokenFile, error) {
	s := m.token.Load()
	if s == nil {
		return nil, &TokenError{Path: m.cfg.TokenFile, Problem: "not read yet"}
	}
	if s.err != nil {
		return nil, s.err
	}
	if err := checkExpiry(m.cfg.TokenFile, s.tok.claims, now); err != nil {
		return nil, err
	}
	return s.tok, nil
}
