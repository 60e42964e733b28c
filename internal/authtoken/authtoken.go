// Package authtoken owns the token that callers of the credentials endpoint must send in their
// Authorization header, the one AWS SDKs read from AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE.
//
// The token file lives on a volume shared with the application containers. If it already holds a
// token (a mounted Secret, or one this sidecar wrote before a restart) that token is used, and
// re-read whenever the file changes; otherwise a random token is generated and written there.
//
// File rules, chosen so that what the sidecar expects is exactly what SDKs send:
//   - one trailing line break ("\n" or "\r\n") is ignored, with a warning, because Secrets made
//     with `echo` or `--from-file` often end in one, while the Go SDKs and botocore refuse a
//     token that contains CR or LF: the warning tells the operator why those clients fail;
//   - the rest must be 32 to 4096 visible ASCII characters (0x21-0x7E): HTTP trims spaces and
//     forbids control characters in header values, so any other token could never match, and a
//     shorter one could be guessed;
//   - the file is read as the projected token is: it must be a regular file (a FIFO would block
//     the start-up, a symlink to /dev/zero would never end) of at most 4098 bytes;
//   - an empty file (or a lone line break) counts as absent, and a generated token replaces it.
//
// A changed file whose content breaks these rules is ignored with a warning: the sidecar keeps
// the token it has rather than lock every client out.
package authtoken

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/credsidecar/credsidecar/internal/atomicfile"
	"github.com/credsidecar/credsidecar/internal/clock"
	"github.com/credsidecar/credsidecar/internal/filewatch"
)

const (
	// maxLen keeps a token well inside the endpoint's header limit.
	maxLen = 4096
	// MinLen is the shortest token accepted: shorter ones are guessable.
	MinLen = 32
	// generatedBytes of randomness make a generated token: 256 bits.
	generatedBytes = 32
	// fileMode lets the pod's fsGroup read the token, and nobody else.
	fileMode fs.FileMode = 0o640
	// DefaultPollInterval is how often the file is re-read when no Option sets it. The poll backs
	// up file-system notifications, which some volume types do not deliver.
	DefaultPollInterval = 30 * time.Second
)

// Token is the expected Authorization token. Matches is safe for concurrent use with Watch.
type Token struct {
	path      string
	log       *slog.Logger
	clock     clock.Clock
	poll      time.Duration
	generated bool

	// want is the current token.
	want atomic.Pointer[[]byte]

	// Owned by Watch's goroutine after Load returns.
	content  []byte
	lastWarn string
}

// Option configures a Token.
type Option func(*Token)

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option { return func(t *Token) { t.log = l } }

// WithClock sets the clock that paces the polling re-read.
func WithClock(c clock.Clock) Option { return func(t *Token) { t.clock = c } }

// WithPollInterval sets how often Watch re-reads the file regardless of notifications.
func WithPollInterval(d time.Duration) Option { return func(t *Token) { t.poll = d } }

// Load reads the token from path, or generates one and writes it there when the file is absent
// or empty.
func Load(path string, opts ...Option) (*Token, error) {
	t := &Token{
		path:  path,
		log:   slog.New(slog.DiscardHandler),
		clock: clock.Real(),
		poll:  DefaultPollInterval,
	}
	for _, o := range opts {
		o(t)
	}
	if t.poll <= 0 {
		return nil, fmt.Errorf("load auth token: poll interval %v is not positive", t.poll)
	}
	raw, err := readFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		raw = nil
	case err != nil:
		return nil, fmt.Errorf("load auth token from %s: %w", path, err)
	}
	tok, trailing, err := parse(raw)
	if err != nil {
		return nil, fmt.Errorf("load auth token from %s: %w", path, err)
	}
	if tok == nil {
		if tok, err = generate(path); err != nil {
			return nil, err
		}
		t.generated = true
		raw = tok
		t.log.Info("generated auth token", "path", path)
	} else {
		t.log.Info("loaded auth token", "path", path)
		t.warnFor(tok, trailing)
	}
	t.content = raw
	t.store(tok)
	return t, nil
}

// Generated reports whether Load wrote a new token rather than finding one.
func (t *Token) Generated() bool { return t.generated }

// Path returns the token file's path.
func (t *Token) Path() string { return t.path }

// Matches reports whether got is the current token, in a time that depends on the token's
// length only: neither on where got differs from it nor on got's own length (a got of another
// length costs the same comparison, of the token with itself). It neither hashes nor allocates:
// it is on every request's path.
func (t *Token) Matches(got string) bool {
	p := t.want.Load()
	if p == nil {
		return false
	}
	want := *p
	if len(got) != len(want) {
		_ = constantTimeEqual(want, want)
		return false
	}
	return constantTimeEqual(got, want)
}

// constantTimeEqual compares a and b, of equal length, reading every byte whatever it finds, as
// crypto/subtle does for two byte slices.
func constantTimeEqual[S string | []byte](a S, b []byte) bool {
	var v byte
	for i := range len(b) {
		v |= a[i] ^ b[i]
	}
	return subtle.ConstantTimeByteEq(v, 0) == 1
}

func (t *Token) store(tok []byte) {
	tok = append([]byte(nil), tok...)
	t.want.Store(&tok)
}

// Watch re-reads the file whenever its directory changes (the kubelet updates Secret volumes by
// swapping a ..data symlink there) and every poll interval, through internal/filewatch. It
// returns nil when ctx is done.
func (t *Token) Watch(ctx context.Context) error {
	t.watch(ctx, false, nil)
	return nil
}

// watch is Watch; pollOnly and reloaded (called after each reload) are for tests.
func (t *Token) watch(ctx context.Context, pollOnly bool, reloaded func()) {
	cfg := filewatch.Config{Dir: filepath.Dir(t.path), What: "auth token", Poll: t.poll, Clock: t.clock,
		Log: t.log, PollOnly: pollOnly}
	filewatch.Run(ctx, cfg, func() {
		t.reload()
		if reloaded != nil {
			reloaded()
		}
	})
}

// reload adopts a changed, valid file content; anything else keeps the current token.
func (t *Token) reload() {
	raw, err := readFile(t.path)
	if err != nil {
		t.warnOnce("auth token file unreadable, keeping the current token", err.Error())
		return
	}
	if bytes.Equal(raw, t.content) {
		t.lastWarn = ""
		return
	}
	tok, trailing, err := parse(raw)
	if err == nil && tok == nil {
		err = errors.New("file is empty")
	}
	if err != nil {
		t.warnOnce("auth token file changed to an unusable token, keeping the current token", err.Error())
		return
	}
	t.content = raw
	t.lastWarn = ""
	t.store(tok)
	t.log.Info("auth token changed, now expecting the new one", "path", t.path)
	t.warnFor(tok, trailing)
}

// warnOnce logs a problem once per distinct cause, so a broken file does not log every poll.
func (t *Token) warnOnce(msg, cause string) {
	if cause == t.lastWarn {
		return
	}
	t.lastWarn = cause
	t.log.Warn(msg, "path", t.path, "error", cause)
}

func (t *Token) warnFor(tok []byte, trailing bool) {
	if trailing {
		t.log.Warn("auth token file ends with a line break; the sidecar ignores it, but the Go SDKs "+
			"and botocore refuse tokens containing CR or LF: rewrite the file without it (printf '%s', not echo)",
			"path", t.path)
	}
}

// readFile reads the token file through filewatch.Read: a regular file of at most maxLen
// bytes and a line break.
func readFile(path string) ([]byte, error) {
	f, err := filewatch.Read(path, maxLen+2, nil)
	if err != nil {
		return nil, err
	}
	return f.Data, nil
}

// parse returns the token in raw, nil for an empty file, and whether a trailing line break was
// dropped. Errors say where the content breaks the rules, never what it is.
func parse(raw []byte) (tok []byte, trailing bool, err error) {
	tok = raw
	if n, ok := bytes.CutSuffix(tok, []byte("\n")); ok {
		tok, trailing = n, true
		tok, _ = bytes.CutSuffix(tok, []byte("\r"))
	}
	if len(tok) == 0 {
		return nil, false, nil
	}
	if len(tok) > maxLen {
		return nil, false, fmt.Errorf("token is %d bytes, more than %d", len(tok), maxLen)
	}
	if len(tok) < MinLen {
		return nil, false, fmt.Errorf("token is %d characters, fewer than %d: a short token can be guessed; "+
			"use a random one (head -c 32 /dev/urandom | base64 | tr -d '\\n=')", len(tok), MinLen)
	}
	for i, b := range tok {
		if b < 0x21 || b > 0x7e {
			return nil, false, fmt.Errorf("byte %d of the token is not visible ASCII (0x21-0x7E), "+
				"so no HTTP client can send it", i+1)
		}
	}
	return tok, trailing, nil
}

// generate writes a new random token to path atomically: readers see the old file or the whole
// new one, never a partial token.
func generate(path string) ([]byte, error) {
	buf := make([]byte, generatedBytes)
	if _, err := rand.Read(buf); err != nil {
		return nil, fmt.Errorf("generate auth token: %w", err)
	}
	tok := []byte(base64.RawURLEncoding.EncodeToString(buf))
	// The directory may be an emptyDir subdirectory nobody has created yet.
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("write auth token: %w", err)
	}
	if err := atomicfile.Write(path, tok, fileMode); err != nil {
		return nil, fmt.Errorf("write auth token: %w", err)
	}
	return tok, nil
}
