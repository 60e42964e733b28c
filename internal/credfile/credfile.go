// Package credfile keeps an AWS shared credentials file (the INI file SDKs read through
// AWS_SHARED_CREDENTIALS_FILE) filled with the sidecar's current credentials, for tools that
// read nothing else: shell scripts around the AWS CLI, legacy SDKs, third-party binaries.
//
// The file belongs to the sidecar. Each write replaces it whole with one profile:
//
//	# Written by credsidecar; replaced whole on every refresh. Do not edit; keep other profiles elsewhere.
//	# role_arn = arn:aws:iam::123456789012:role/app
//	# expiration = 2026-08-22T13:04:05Z
//	[default]
//	aws_access_key_id = ASIA...
//	aws_secret_access_key = ...
//	aws_session_token = ...
//
// Other profiles an existing file holds are not kept: merging would mean parsing and
// rewriting a file someone else also writes, racing them, and keeping their long-lived keys
// next to ours. A file that was not written by credsidecar is replaced with a warning.
//
// Writes are atomic (internal/atomicfile): a temporary file in the same directory is given mode
// 0600 (or 0640, WithMode), written, synced and renamed over the file, so a reader sees the old file or the new
// one, never a mixture or nothing. The path must therefore not be a bind-mounted single file
// (a rename cannot replace a mount point); mount the directory.
//
// SDKs read the file once, when a client is created, and treat what they find as credentials
// that never expire: a long-running process keeps using them after they expire. The file
// suits short-lived processes; long-running ones belong on the container endpoint or on
// `sidecar credential-process`, which SDKs refresh.
//
// Usage, as the sidecar wires it:
//
//	w, err := credfile.New(cfg.CredentialsFile, cfg.CredentialsProfile, credfile.WithLogger(log))
//	go func() { errc <- w.Run(ctx, manager) }() // rewrites the file on every manager.Updated()
package credfile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/credsidecar/credsidecar/internal/atomicfile"
	"github.com/credsidecar/credsidecar/internal/clock"
	"github.com/credsidecar/credsidecar/internal/creds"
)

// Source is where the credentials come from; *creds.Manager is one.
type Source interface {
	// Servable returns the credentials fit to serve now, or nil when there are none.
	Servable() *creds.Credentials
	// Updated returns a channel that is closed when new credentials are next published.
	Updated() <-chan struct{}
}

const (
	// DefaultProfile is the profile written when none is named, the one SDKs read by default.
	DefaultProfile = "default"
	// DefaultCheckInterval is how long Run waits after a failed write before trying again.
	DefaultCheckInterval = 30 * time.Second
)

// header starts every file this package writes; New recognises its own files by it.
const header = "# Written by credsidecar; replaced whole on every refresh. Do not edit; keep other profiles elsewhere.\n"

// profilePattern is what a profile name may be: what `aws configure --profile` users type,
// and nothing that could end the [section] line or start a new one.
var profilePattern = regexp.MustCompile(`^[A-Za-z0-9_.+=,@/-]{1,64}$`)

// Writer writes the credentials file. Update may be called from any goroutine; Run is the
// loop that keeps the file current.
type Writer struct {
	path     string
	profile  string
	mode     fs.FileMode
	interval time.Duration
	clock    clock.Clock
	log      *slog.Logger

	mu      sync.Mutex                    // serialises writes
	written map[string]*creds.Credentials // by profile: what the file holds
	failing bool                          // the last write failed; the next success is logged
}

// Option configures a Writer.
type Option func(*Writer)

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option { return func(w *Writer) { w.log = l } }

// WithClock sets the clock that times the retry of a failed write; default the wall clock.
func WithClock(c clock.Clock) Option { return func(w *Writer) { w.clock = c } }

// WithCheckInterval sets how long Run waits after a failed write before trying again.
func WithCheckInterval(d time.Duration) Option { return func(w *Writer) { w.interval = d } }

// WithMode sets the file's mode: 0600 (the default) when the application container runs as the
// sidecar's user, 0640 when they share only a group (the pod's fsGroup).
func WithMode(m fs.FileMode) Option { return func(w *Writer) { w.mode = m } }

// New returns a Writer for the file at path, holding profile. It checks that the directory
// exists and is writable now, so that a wrong mount fails the sidecar at start.
func New(path, profile string, opts ...Option) (*Writer, error) {
	if path == "" {
		return nil, errors.New("new credentials file writer: empty path")
	}
	if err := CheckProfile(profile); err != nil {
		return nil, fmt.Errorf("new credentials file writer: %w", err)
	}
	w := &Writer{
		path:     filepath.Clean(path),
		profile:  profile,
		mode:     0o600,
		interval: DefaultCheckInterval,
		clock:    clock.Real(),
		log:      slog.New(slog.DiscardHandler),
	}
	for _, o := range opts {
		o(w)
	}
	if w.mode != 0o600 && w.mode != 0o640 {
		return nil, fmt.Errorf("new credentials file writer: mode %#o: use 0600 or 0640", w.mode)
	}
	if w.interval <= 0 {
		return nil, fmt.Errorf("new credentials file writer: check interval %v is not positive", w.interval)
	}
	if err := probeDir(filepath.Dir(w.path)); err != nil {
		return nil, fmt.Errorf("new credentials file writer: %w", err)
	}
	if foreign, err := isForeign(w.path); err != nil {
		return nil, fmt.Errorf("new credentials file writer: %w", err)
	} else if foreign {
		w.log.Warn("credentials file exists and was not written by credsidecar: it will be replaced "+
			"and the profiles in it dropped", "path", w.path)
	}
	return w, nil
}

// CheckProfile reports whether name can be written as a profile: 1 to 64 letters, digits and
// _.+=,@/- (for config validation, before any Writer exists).
func CheckProfile(name string) error {
	if !profilePattern.MatchString(name) {
		return fmt.Errorf("profile %q: use 1 to 64 letters, digits and _.+=,@/-", name)
	}
	return nil
}

// CheckPath says why p cannot be the credentials file, or returns nil: it must be an absolute
// path naming a file (for config validation, before any Writer exists).
func CheckPath(p string) error {
	switch {
	case !filepath.IsAbs(p):
		return errors.New("must be an absolute path, such as /var/run/credsidecar-files/credentials")
	case strings.HasSuffix(p, "/") || filepath.Base(p) == "." || filepath.Base(p) == "..":
		return errors.New("must name a file, not a directory")
	}
	return nil
}

// Path returns the file's path.
func (w *Writer) Path() string { return w.path }

// Profile is one profile of the file and where its credentials come from.
type Profile struct {
	Name   string
	Source Source
}

// Run writes the credentials src has under the Writer's profile, then rewrites the file each
// time src publishes new ones (src.Updated), so it never polls. A failed write is logged and
// retried after the check interval. While src has nothing servable the file keeps its last
// credentials. Run returns nil when ctx is done.
func (w *Writer) Run(ctx context.Context, src Source) error {
	if src == nil {
		return errors.New("run credentials file writer: no credentials source")
	}
	return w.run(ctx, []Profile{{Name: w.profile, Source: src}}, nil)
}

// RunProfiles is Run for several profiles in one file, one per role (the sidecar's named
// roles): the file is rewritten whole whenever any source publishes, each profile keeping its
// last credentials while its source has nothing servable.
func (w *Writer) RunProfiles(ctx context.Context, profiles []Profile) error {
	if len(profiles) == 0 {
		return errors.New("run credentials file writer: no profiles")
	}
	for _, p := range profiles {
		if err := CheckProfile(p.Name); err != nil {
			return fmt.Errorf("run credentials file writer: %w", err)
		}
		if p.Source == nil {
			return fmt.Errorf("run credentials file writer: profile %s has no credentials source", p.Name)
		}
	}
	return w.run(ctx, profiles, nil)
}

// run is RunProfiles; synced, for tests (export_test.go), is called after each attempt to bring
// the file up to date.
func (w *Writer) run(ctx context.Context, profiles []Profile, synced func()) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// One goroutine per source turns its Updated channel into a nudge; nudge holds at most one,
	// since each sync reads every source anyway.
	nudge := make(chan struct{}, 1)
	var subs sync.WaitGroup
	defer subs.Wait()
	defer cancel()
	first := make([]<-chan struct{}, len(profiles))
	for i, p := range profiles {
		first[i] = p.Source.Updated() // taken before Servable is first read
		subs.Add(1)
		go func() {
			defer subs.Done()
			for updated := first[i]; ; updated = p.Source.Updated() {
				select {
				case <-ctx.Done():
					return
				case <-updated:
				}
				select {
				case nudge <- struct{}{}:
				default:
				}
			}
		}()
	}
	var retry clock.Timer
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	for {
		ok := w.sync(profiles)
		if synced != nil {
			synced()
		}
		var retryC <-chan time.Time
		switch {
		case !ok && retry == nil:
			retry = w.clock.NewTimer(w.interval)
			retryC = retry.C()
		case !ok:
			retry.Reset(w.interval)
			retryC = retry.C()
		case retry != nil:
			retry.Stop()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-nudge:
		case <-retryC:
		}
	}
}

// sync writes what the profiles' sources serve unless the file already holds it (a source with
// nothing servable keeps its profile's last credentials), logs the outcome, and reports false
// when a write failed and should be retried.
func (w *Writer) sync(profiles []Profile) bool {
	w.mu.Lock()
	next := make(map[string]*creds.Credentials, len(profiles))
	changed := false
	for _, p := range profiles {
		c := p.Source.Servable()
		if c == nil {
			c = w.written[p.Name]
		}
		if c != nil {
			next[p.Name] = c
			changed = changed || c != w.written[p.Name]
		}
	}
	w.mu.Unlock()
	if !changed {
		return true
	}
	if err := w.write(profiles, next); err != nil {
		w.log.Error("credentials file not updated; retrying", "path", w.path,
			"retry_in", w.interval, "error", err)
		return false
	}
	w.log.Debug("credentials file updated", "path", w.path, "profiles", len(next))
	return true
}

// Update replaces the file with c, under the Writer's profile, now.
func (w *Writer) Update(c *creds.Credentials) error {
	return w.write([]Profile{{Name: w.profile}}, map[string]*creds.Credentials{w.profile: c})
}

// write replaces the file with the profiles' credentials in byName, in the profiles' order.
func (w *Writer) write(profiles []Profile, byName map[string]*creds.Credentials) error {
	var b strings.Builder
	b.WriteString(header)
	for _, p := range profiles {
		c, ok := byName[p.Name]
		if !ok {
			continue
		}
		if err := render(&b, p.Name, c); err != nil {
			return err
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := atomicfile.Write(w.path, []byte(b.String()), w.mode); err != nil {
		w.failing = true
		return fmt.Errorf("write credentials file %s: %w", w.path, err)
	}
	if w.failing {
		w.failing = false
		w.log.Info("credentials file written again", "path", w.path)
	}
	w.written = byName
	return nil
}

// render formats one profile. Values that would break the INI format are refused, naming the
// field but never quoting it.
func render(b *strings.Builder, profile string, c *creds.Credentials) error {
	if c == nil {
		return errors.New("render credentials file: no credentials")
	}
	fields := []struct{ key, value string }{
		{"aws_access_key_id", c.AccessKeyID},
		{"aws_secret_access_key", c.SecretAccessKey},
		{"aws_session_token", c.SessionToken},
	}
	if c.RoleARN != "" && iniSafe(c.RoleARN) {
		b.WriteString("# role_arn = " + c.RoleARN + "\n")
	}
	if !c.Expiration.IsZero() {
		b.WriteString("# expiration = " + c.Expiration.UTC().Format("2006-01-02T15:04:05Z") + "\n")
	}
	b.WriteString("[" + profile + "]\n")
	for _, f := range fields {
		if f.value == "" && f.key != "aws_session_token" {
			return fmt.Errorf("render credentials file: %s is empty", f.key)
		}
		if !iniSafe(f.value) {
			return fmt.Errorf("render credentials file: %s holds spaces or control characters", f.key)
		}
		if f.value != "" {
			b.WriteString(f.key + " = " + f.value + "\n")
		}
	}
	return nil
}

// iniSafe reports whether v survives an INI line unchanged: printable ASCII without spaces,
// which every parser would trim or split on.
func iniSafe(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] <= ' ' || v[i] > '~' {
			return false
		}
	}
	return true
}

// probeDir checks that dir exists and accepts a new file.
func probeDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("check directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("check directory: %s is not a directory", dir)
	}
	f, err := os.CreateTemp(dir, ".credsidecar-probe-*")
	if err != nil {
		return fmt.Errorf("check directory %s is writable: %w", dir, err)
	}
	name := f.Name()
	_ = f.Close()
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("check directory %s is writable: %w", dir, err)
	}
	return nil
}

// isForeign reports whether path holds a non-empty file that this package did not write.
func isForeign(path string) (bool, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("check existing file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return false, fmt.Errorf("check existing file: %s is not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("check existing file: %w", err)
	}
	defer f.Close()
	buf := make([]byte, len(header))
	n, _ := io.ReadFull(f, buf)
	return n > 0 && string(buf[:n]) != header, nil
}
