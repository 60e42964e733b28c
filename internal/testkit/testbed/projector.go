package testbed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/credsidecar/credsidecar/internal/clock"
)

// Minter returns a fresh token issued at now. Issuer.Minter makes one.
type Minter func(now time.Time) (string, error)

// Names the kubelet's atomic writer uses inside a projected volume.
const (
	dataDirName    = "..data"
	dataDirTmpName = "..data_tmp"
	// tsDirPattern is the kubelet's os.MkdirTemp pattern: the timestamp of the write, then the
	// random digits MkdirTemp appends.
	tsDirPattern = "..2006_01_02_15_04_05."
)

// maxTokenAge is the kubelet's hard limit: a token older than 24 h is replaced whatever its
// lifetime.
const maxTokenAge = 24 * time.Hour

// ProjectorOptions configures NewProjector.
type ProjectorOptions struct {
	// Dir is the volume's mount point; created if missing. Required.
	Dir string
	// FileName is the token's path inside the volume; "token" when empty.
	FileName string
	// Mode is the token file's mode; 0o644 (a projected volume's default) when 0.
	Mode os.FileMode
	// Minter makes each token. Required.
	Minter Minter
	// Clock decides when tokens rotate; clock.Real() when nil.
	Clock clock.Clock
	// RetryInterval is the wait after a failed mint; 10 s when 0.
	RetryInterval time.Duration
	// Logger receives rotation events; discarded when nil.
	Logger *slog.Logger
}

// Projector plays the kubelet's part for one projected service-account token: it writes the token
// with the atomic writer's layout and replaces it once 80% of its lifetime has passed (or 24 h),
// as the kubelet's token manager does, without the kubelet's jitter, so tests can predict it.
type Projector struct {
	dir, name  string
	mode       os.FileMode
	mint       Minter
	clock      clock.Clock
	retry      time.Duration
	log        *slog.Logger
	rearm      chan chan struct{} // Rotate asks the loop to re-arm; the loop closes the reply
	ctx        context.Context
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	closeOnce  sync.Once
	mu         sync.Mutex // serialises writes
	nextRotate time.Time  // guarded by mu
	rotations  int        // guarded by mu
}

// NewProjector writes the first token, then starts the goroutine that rotates it. Close stops the
// goroutine and leaves the files in place.
func NewProjector(opts ProjectorOptions) (*Projector, error) {
	if opts.Dir == "" {
		return nil, errors.New("new projector: Dir is required")
	}
	if opts.Minter == nil {
		return nil, errors.New("new projector: Minter is required")
	}
	p := &Projector{
		dir:   opts.Dir,
		name:  valueOr(opts.FileName, "token"),
		mode:  opts.Mode,
		mint:  opts.Minter,
		clock: opts.Clock,
		retry: opts.RetryInterval,
		log:   opts.Logger,
		rearm: make(chan chan struct{}),
	}
	if p.mode == 0 {
		p.mode = 0o644
	}
	if p.clock == nil {
		p.clock = clock.Real()
	}
	if p.retry <= 0 {
		p.retry = 10 * time.Second
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return nil, fmt.Errorf("new projector: %w", err)
	}
	p.mu.Lock()
	err := p.rotateLocked()
	p.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("new projector: %w", err)
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.wg.Add(1)
	go p.run(p.ctx)
	return p, nil
}

// Path is the file a pod reads: <dir>/<file name>, a symlink through ..data.
func (p *Projector) Path() string { return filepath.Join(p.dir, p.name) }

// Dir is the projected volume's directory.
func (p *Projector) Dir() string { return p.dir }

// NextRotation is when the current token will be replaced.
func (p *Projector) NextRotation() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.nextRotate
}

// Rotations counts the tokens written so far, the first one included.
func (p *Projector) Rotations() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rotations
}

// Rotate mints and writes a new token now and restarts the 80% countdown from it. It returns
// once the countdown is re-armed, so a test driving a fake clock can advance it right away.
func (p *Projector) Rotate() error {
	p.mu.Lock()
	err := p.rotateLocked()
	p.mu.Unlock()
	if err != nil {
		return err
	}
	done := make(chan struct{})
	select {
	case p.rearm <- done:
		<-done
	case <-p.ctx.Done():
	}
	return nil
}

// Close stops the rotation goroutine. It is idempotent and safe to call concurrently.
func (p *Projector) Close() error {
	p.closeOnce.Do(func() {
		if p.cancel != nil {
			p.cancel()
		}
		p.wg.Wait()
	})
	return nil
}

func (p *Projector) run(ctx context.Context) {
	defer p.wg.Done()
	t := p.clock.NewTimer(p.untilNext())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case done := <-p.rearm:
			t.Reset(p.untilNext())
			close(done)
		case <-t.C():
			p.mu.Lock()
			err := p.rotateLocked()
			if err != nil {
				// Retry soon rather than at the stale deadline, as the kubelet's next sync would.
				p.nextRotate = p.clock.Now().Add(p.retry)
			}
			p.mu.Unlock()
			if err != nil {
				p.log.Warn("token rotation failed", "dir", p.dir, "error", err, "retry_in", p.retry)
			}
			t.Reset(p.untilNext())
		}
	}
}

func (p *Projector) untilNext() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return max(p.nextRotate.Sub(p.clock.Now()), 0)
}

// rotateLocked mints a token, writes it and schedules the next rotation. The caller holds mu.
func (p *Projector) rotateLocked() error {
	now := p.clock.Now()
	tok, err := p.mint(now)
	if err != nil {
		return fmt.Errorf("rotate token: mint: %w", err)
	}
	_, claims, err := ParseUnverified(tok)
	if err != nil {
		return fmt.Errorf("rotate token: %w", err)
	}
	iat, exp := time.Unix(claims.IssuedAt, 0), time.Unix(claims.Expiry, 0)
	if !exp.After(iat) {
		return fmt.Errorf("rotate token: exp %s is not after iat %s", exp.UTC(), iat.UTC())
	}
	if err := p.write(now, []byte(tok)); err != nil {
		return fmt.Errorf("rotate token: %w", err)
	}
	next := iat.Add(exp.Sub(iat) * 8 / 10)
	if limit := iat.Add(maxTokenAge); next.After(limit) {
		next = limit
	}
	p.nextRotate = next
	p.rotations++
	p.log.Debug("token projected", "dir", p.dir, "expires", exp.UTC(), "next_rotation", next.UTC())
	return nil
}

// write follows the kubelet's AtomicWriter.Write for the projector's one file.
func (p *Projector) write(now time.Time, payload []byte) error {
	return atomicWrite(p.dir, now, map[string][]byte{p.name: payload}, p.mode)
}

// atomicWrite follows the kubelet's AtomicWriter.Write: a new timestamped directory holds the
// files, a ..data_tmp symlink to it is renamed over ..data (the one atomic step readers observe),
// the user-visible symlinks <name> -> ..data/<name> are created if missing, and the previous
// timestamped directory is removed. Unlike the kubelet it leaves the symlinks of files no longer
// written in place: the volumes here never drop a file.
func atomicWrite(dir string, now time.Time, files map[string][]byte, mode os.FileMode) error {
	dataDir := filepath.Join(dir, dataDirName)
	oldTS, err := os.Readlink(dataDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read %s: %w", dataDirName, err)
	}
	tsDir, err := os.MkdirTemp(dir, now.UTC().Format(tsDirPattern))
	if err != nil {
		return fmt.Errorf("create timestamped dir: %w", err)
	}
	// The kubelet makes the directory world-readable; MkdirTemp made it 0700.
	if err := os.Chmod(tsDir, 0o755); err != nil {
		return fmt.Errorf("chmod timestamped dir: %w", err)
	}
	for name, payload := range files {
		if err := os.WriteFile(filepath.Join(tsDir, name), payload, mode); err != nil {
			return fmt.Errorf("write payload: %w", err)
		}
		if err := os.Chmod(filepath.Join(tsDir, name), mode); err != nil {
			return fmt.Errorf("chmod payload: %w", err)
		}
	}
	tmpLink := filepath.Join(dir, dataDirTmpName)
	if err := os.Symlink(filepath.Base(tsDir), tmpLink); err != nil {
		return fmt.Errorf("symlink %s: %w", dataDirTmpName, err)
	}
	if err := os.Rename(tmpLink, dataDir); err != nil {
		return fmt.Errorf("rename %s over %s: %w", dataDirTmpName, dataDirName, err)
	}
	for name := range files {
		visible := filepath.Join(dir, name)
		if _, err := os.Lstat(visible); errors.Is(err, os.ErrNotExist) {
			if err := os.Symlink(filepath.Join(dataDirName, name), visible); err != nil {
				return fmt.Errorf("symlink %s: %w", name, err)
			}
		}
	}
	if oldTS != "" {
		if err := os.RemoveAll(filepath.Join(dir, oldTS)); err != nil {
			return fmt.Errorf("remove old timestamped dir: %w", err)
		}
	}
	return nil
}
