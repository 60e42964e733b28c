// Package filewatch tells its caller when a file the kubelet (or anyone) may have replaced
// should be looked at again: the projected service-account token and the auth token.
//
// It watches the file's directory, not the file: the kubelet updates projected and Secret
// volumes by renaming a new ..data symlink over the old one, so the file a path resolves to is
// replaced, never written, and a watch on the file itself would miss every update. A poll on
// an injected clock backs the notifications up: it covers missed events, a directory that
// appears late (the watch is re-added at every poll) and file systems without inotify.
//
// The caller's check runs on Run's goroutine, once per notification and once per poll; it
// decides whether anything changed (the notifications carry no such promise, and a rotation
// is several events).
package filewatch

import (
	"context"
	"log/slog"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/credsidecar/credsidecar/internal/clock"
)

// Config says what to watch and how.
type Config struct {
	// Dir is the directory holding the file.
	Dir string
	// What names the file in log messages, e.g. "token" or "auth token".
	What string
	// Poll is how long after one check ends the next poll starts; it must be positive.
	Poll time.Duration
	// Clock times the poll; nil is the wall clock.
	Clock clock.Clock
	// Log receives the watch's own problems; nil discards them.
	Log *slog.Logger
	// PollOnly skips notifications, for volumes known to deliver none and for tests of the poll.
	PollOnly bool
}

// Run calls check whenever Dir reports a change and every Poll, until ctx is done.
func Run(ctx context.Context, cfg Config, check func()) {
	clk, log := cfg.Clock, cfg.Log
	if clk == nil {
		clk = clock.Real()
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &watch{cfg: cfg, log: log}
	if !cfg.PollOnly {
		n, err := fsnotify.NewWatcher()
		if err != nil {
			log.Warn(cfg.What+" watch unavailable; polling only", "dir", cfg.Dir, "poll_interval", cfg.Poll.String(), "error", err.Error())
		} else {
			defer n.Close()
			w.notify = n
		}
	}
	w.add()
	if w.notify != nil && !w.watching {
		log.Warn("cannot watch "+cfg.What+" directory; polling until it can", "dir", cfg.Dir, "poll_interval", cfg.Poll.String())
	}
	var events <-chan fsnotify.Event
	var errs <-chan error
	if w.notify != nil {
		events, errs = w.notify.Events, w.notify.Errors
	}
	poll := clk.NewTimer(cfg.Poll)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-events:
			if !ok {
				events = nil // the poll carries on alone
				continue
			}
			check()
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			log.Warn(cfg.What+" watch error; the poll continues", "dir", cfg.Dir, "error", err.Error())
		case <-poll.C():
			w.add()
			check()
			// Re-armed after the check, so the next poll is a full interval after this one ends.
			poll.Reset(cfg.Poll)
		}
	}
}

// watch is Run's state: the notifier, if any, and whether the directory is watched now.
type watch struct {
	cfg      Config
	log      *slog.Logger
	notify   *fsnotify.Watcher
	watching bool
}

// add (re-)adds the directory watch. Add is idempotent, and re-adding after the directory was
// recreated restores events; only changes of state are logged.
func (w *watch) add() {
	if w.notify == nil {
		return
	}
	err := w.notify.Add(w.cfg.Dir)
	switch {
	case err != nil && w.watching:
		w.log.Warn(w.cfg.What+" watch lost; polling only", "dir", w.cfg.Dir, "poll_interval", w.cfg.Poll.String(), "error", err.Error())
	case err != nil && !w.watching:
		w.log.Debug(w.cfg.What+" directory not watchable yet; polling", "dir", w.cfg.Dir, "error", err.Error())
	case err == nil && !w.watching:
		w.log.Debug("watching "+w.cfg.What+" directory", "dir", w.cfg.Dir)
	}
	w.watching = err == nil
}
