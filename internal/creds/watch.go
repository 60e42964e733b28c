package creds

import (
	"context"
	"crypto/sha256"
	"path/filepath"

	"github.com/fsnotify/fsnotify"
)

// tokenSeen is what the watcher last saw at the token path; a change in any field is news.
type tokenSeen struct {
	target  string
	sum     [sha256.Size]byte
	problem string
}

// watchToken notices token rotations, and token faults being fixed, and tells the refresh loop.
// It watches the directory, not the file: the kubelet swaps the ..data symlink by rename, so
// the file the token symlink resolves to is replaced, never written. The poll covers missed
// events, a directory that appears late, and filesystems without inotify.
func (m *Manager) watchToken(ctx context.Context) {
	dir := filepath.Dir(m.cfg.TokenFile)
	var events <-chan fsnotify.Event
	var errs <-chan error
	w, err := fsnotify.NewWatcher()
	if err != nil {
		m.log.Warn("token watch unavailable; polling only", "dir", dir, "poll_interval", m.cfg.PollInterval.String(), "error", err.Error())
	} else {
		defer w.Close()
		events, errs = w.Events, w.Errors
	}
	watching := false
	addWatch := func() {
		if w == nil {
			return
		}
		// Add is idempotent, and re-adding after the directory was recreated restores events.
		err := w.Add(dir)
		switch {
		case err != nil && watching:
			m.log.Warn("token watch lost; polling only", "dir", dir, "poll_interval", m.cfg.PollInterval.String(), "error", err.Error())
		case err != nil && !watching:
			m.log.Debug("token directory not watchable yet; polling", "dir", dir, "error", err.Error())
		case err == nil && !watching:
			m.log.Debug("watching token directory", "dir", dir)
		}
		watching = err == nil
	}
	addWatch()
	if w != nil && !watching {
		m.log.Warn("cannot watch token directory; polling until it can", "dir", dir, "poll_interval", m.cfg.PollInterval.String())
	}

	var seen tokenSeen
	m.checkToken(&seen, true)
	poll := m.clock.NewTimer(m.cfg.PollInterval)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			m.checkToken(&seen, false)
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			m.log.Warn("token watch error; the poll continues", "dir", dir, "error", err.Error())
		case <-poll.C():
			addWatch()
			m.checkToken(&seen, false)
			poll.Reset(m.cfg.PollInterval)
		}
	}
}

// checkToken reads the token and, when it differs from what was seen last, reports it: a fault
// is logged, a valid new token is logged, counted and handed to the refresh loop. The first
// check only records, since the refresh loop reports the state at start.
func (m *Manager) checkToken(seen *tokenSeen, initial bool) {
	tok, err := readToken(m.cfg.TokenFile, m.clock.Now())
	var now tokenSeen
	if err != nil {
		now.problem = err.Error()
	} else {
		now.target, now.sum = tok.target, sha256.Sum256(tok.raw)
	}
	if now == *seen {
		return
	}
	*seen = now
	if initial {
		return
	}
	if err != nil {
		m.log.Warn("token unusable", "path", m.cfg.TokenFile, "error", err.Error())
		return
	}
	m.log.Info("token rotation noticed", "path", m.cfg.TokenFile, "target", tok.target,
		"issued_at", tok.claims.IssuedAt, "expiry", tok.claims.Expiry)
	select {
	case m.kick <- struct{}{}:
	default: // a kick is already pending
	}
	m.obs.TokenReloaded(tok.claims.Expiry)
}
