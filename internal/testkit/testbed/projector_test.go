package testbed

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credsidecar/credsidecar/internal/clock"
	"github.com/credsidecar/credsidecar/internal/testkit/await"
)

// tsDirRE is the kubelet's timestamped directory name: ..<UTC time>.<MkdirTemp digits>.
var tsDirRE = regexp.MustCompile(`^\.\.(\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2})\.\d+$`)

// checkedToken is a JWT-shaped token whose last segment is the SHA-256 of the first two and whose
// payload is padded past a page, so a reader can tell a whole token from a torn or mixed one. It carries the
// iat/exp the Projector schedules by; nothing verifies it as a JWT.
func checkedToken(seq int, iat time.Time, lifetime time.Duration) string {
	enc := base64.RawURLEncoding
	h := enc.EncodeToString([]byte(`{"alg":"none"}`))
	c, _ := json.Marshal(map[string]any{
		"iat": iat.Unix(), "exp": iat.Add(lifetime).Unix(), "seq": seq,
		"pad": strings.Repeat(fmt.Sprintf("%08d", seq), 640),
	})
	input := h + "." + enc.EncodeToString(c)
	sum := sha256.Sum256([]byte(input))
	return input + "." + enc.EncodeToString(sum[:])
}

func tokenIntact(tok string) bool {
	dot := strings.LastIndexByte(tok, '.')
	if dot < 0 {
		return false
	}
	sum := sha256.Sum256([]byte(tok[:dot]))
	return tok[dot+1:] == base64.RawURLEncoding.EncodeToString(sum[:])
}

// layout checks dir holds exactly what the kubelet leaves after a write and returns the
// timestamped directory's name.
func layout(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	ts := ""
	for _, e := range entries {
		names = append(names, e.Name())
		if tsDirRE.MatchString(e.Name()) {
			ts = e.Name()
		}
	}
	// ReadDir sorts by name: "..2..." < "..data" < "token".
	if len(names) != 3 || names[0] != ts || names[1] != dataDirName || names[2] != "token" {
		t.Fatalf("volume holds %q, want exactly [..<timestamp> ..data token]", names)
	}
	if target, err := os.Readlink(filepath.Join(dir, "token")); err != nil || target != "..data/token" {
		t.Errorf("token -> %q (%v), want a symlink to ..data/token", target, err)
	}
	if target, err := os.Readlink(filepath.Join(dir, dataDirName)); err != nil || target != ts {
		t.Errorf("..data -> %q (%v), want a relative symlink to %q", target, err, ts)
	}
	fi, err := os.Lstat(filepath.Join(dir, ts))
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o755 {
		t.Errorf("%s: %v, %v; want a 0755 directory", ts, fi.Mode(), err)
	}
	fi, err = os.Lstat(filepath.Join(dir, ts, "token"))
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o644 {
		t.Errorf("%s/token: %v, %v; want a 0644 regular file", ts, fi.Mode(), err)
	}
	return ts
}

func TestProjectorLayoutMatchesKubeletAtomicWriter(t *testing.T) {
	fake := clock.NewFake(t0)
	var minted []string
	var mu sync.Mutex
	p := NewProjectorForTest(t, ProjectorOptions{
		Clock: fake,
		Minter: func(now time.Time) (string, error) {
			mu.Lock()
			defer mu.Unlock()
			tok := checkedToken(len(minted), now, time.Hour)
			minted = append(minted, tok)
			return tok, nil
		},
	})
	current := func() string {
		mu.Lock()
		defer mu.Unlock()
		return minted[len(minted)-1]
	}
	if p.Path() != filepath.Join(p.Dir(), "token") {
		t.Errorf("Path = %q", p.Path())
	}

	first := layout(t, p.Dir())
	if m := tsDirRE.FindStringSubmatch(first); m[1] != "2026_11_25_17_21_52" {
		t.Errorf("timestamped dir %q does not carry the write's UTC time 2026_11_25_17_21_52", first)
	}
	if got, _ := os.ReadFile(p.Path()); string(got) != current() {
		t.Errorf("token content differs from the minted token (len %d vs %d)", len(got), len(current()))
	}

	fake.Advance(90 * time.Second)
	if err := p.Rotate(); err != nil {
		t.Fatal(err)
	}
	second := layout(t, p.Dir())
	if second == first {
		t.Fatalf("rotation reused %s", first)
	}
	if m := tsDirRE.FindStringSubmatch(second); m[1] != "2026_11_25_17_23_22" {
		t.Errorf("timestamped dir %q does not carry the rotation's UTC time", second)
	}
	if _, err := os.Lstat(filepath.Join(p.Dir(), first)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("old %s not removed: %v", first, err)
	}
	got, _ := os.ReadFile(p.Path())
	if string(got) != current() || strings.HasSuffix(string(got), "\n") {
		t.Errorf("after rotation the token is not the new one, byte for byte")
	}
	if p.Rotations() != 2 {
		t.Errorf("Rotations = %d, want 2", p.Rotations())
	}
}

func TestProjectorRotatesAtEightyPercentOfLifetime(t *testing.T) {
	tests := []struct {
		name     string
		lifetime time.Duration
		wantAt   time.Duration // after iat
	}{
		{name: "10 min token (the minimum)", lifetime: 10 * time.Minute, wantAt: 8 * time.Minute},
		{name: "1 h token (the default)", lifetime: time.Hour, wantAt: 48 * time.Minute},
		{name: "48 h token hits the 24 h cap", lifetime: 48 * time.Hour, wantAt: 24 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := clock.NewFake(t0)
			var seq atomic.Int64
			p := NewProjectorForTest(t, ProjectorOptions{
				Clock: fake,
				Minter: func(now time.Time) (string, error) {
					return checkedToken(int(seq.Add(1)), now, tt.lifetime), nil
				},
			})
			for round := range 3 {
				iat := t0.Add(time.Duration(round) * tt.wantAt)
				await.Timers(t, 30*time.Second, fake, 1)
				if at, _ := fake.NextDeadline(); !at.Equal(iat.Add(tt.wantAt)) {
					t.Fatalf("round %d: rotation armed for %s, want iat+%s = %s", round, at, tt.wantAt, iat.Add(tt.wantAt))
				}
				if !p.NextRotation().Equal(iat.Add(tt.wantAt)) {
					t.Errorf("NextRotation = %s", p.NextRotation())
				}
				fake.Advance(tt.wantAt - time.Second)
				if got := p.Rotations(); got != round+1 {
					t.Fatalf("round %d: %d rotations one second early, want %d", round, got, round+1)
				}
				fake.Advance(time.Second)
				await.Timers(t, 30*time.Second, fake, 1) // re-armed only after the rotation is written
				if got := p.Rotations(); got != round+2 {
					t.Fatalf("round %d: %d rotations at the deadline, want %d", round, got, round+2)
				}
				b, err := os.ReadFile(p.Path())
				if err != nil {
					t.Fatal(err)
				}
				_, c, err := ParseUnverified(string(b))
				if err != nil {
					t.Fatal(err)
				}
				if want := iat.Add(tt.wantAt).Unix(); c.IssuedAt != want {
					t.Errorf("round %d: projected token iat = %d, want %d", round, c.IssuedAt, want)
				}
			}
		})
	}
}

func TestProjectorRotateOnDemandRestartsCountdown(t *testing.T) {
	fake := clock.NewFake(t0)
	var seq atomic.Int64
	p := NewProjectorForTest(t, ProjectorOptions{
		Clock:  fake,
		Minter: func(now time.Time) (string, error) { return checkedToken(int(seq.Add(1)), now, 10*time.Minute), nil },
	})
	await.Timers(t, 30*time.Second, fake, 1)
	fake.Advance(3 * time.Minute)
	if err := p.Rotate(); err != nil {
		t.Fatal(err)
	}
	want := t0.Add(3*time.Minute + 8*time.Minute)
	if !p.NextRotation().Equal(want) {
		t.Errorf("NextRotation = %s, want %s", p.NextRotation(), want)
	}
	if at, ok := fake.NextDeadline(); !ok || !at.Equal(want) || fake.Pending() != 1 {
		t.Fatalf("armed: %s (%v, %d timers), want exactly one timer at %s", at, ok, fake.Pending(), want)
	}
	fake.Advance(7*time.Minute + 59*time.Second) // past the old deadline (t0+8m), short of the new one
	if p.Rotations() != 2 {
		t.Errorf("Rotations = %d after passing the old deadline, want 2", p.Rotations())
	}
	fake.Advance(time.Second)
	await.Timers(t, 30*time.Second, fake, 1)
	if p.Rotations() != 3 {
		t.Errorf("Rotations = %d at the new deadline, want 3", p.Rotations())
	}
}

func TestProjectorRetriesAfterMintFailure(t *testing.T) {
	fake := clock.NewFake(t0)
	var calls atomic.Int64
	p := NewProjectorForTest(t, ProjectorOptions{
		Clock:         fake,
		RetryInterval: 30 * time.Second,
		Minter: func(now time.Time) (string, error) {
			if calls.Add(1) == 2 {
				return "", errors.New("token request refused")
			}
			return checkedToken(int(calls.Load()), now, 10*time.Minute), nil
		},
	})
	await.Timers(t, 30*time.Second, fake, 1)
	fake.Advance(8 * time.Minute) // the failing mint
	await.Timers(t, 30*time.Second, fake, 1)
	if at, _ := fake.NextDeadline(); !at.Equal(t0.Add(8*time.Minute + 30*time.Second)) {
		t.Fatalf("after a failed mint the retry is armed for %s, want 30 s later", at)
	}
	if p.Rotations() != 1 {
		t.Fatalf("Rotations = %d after a failed mint, want 1", p.Rotations())
	}
	fake.Advance(30 * time.Second)
	await.Timers(t, 30*time.Second, fake, 1)
	if p.Rotations() != 2 || calls.Load() != 3 {
		t.Errorf("Rotations, mints = %d, %d after the retry; want 2, 3", p.Rotations(), calls.Load())
	}
}

func TestProjectorReaderNeverSeesPartialToken(t *testing.T) {
	const rotations = 1000
	fake := clock.NewFake(t0)
	var seq atomic.Int64
	p := NewProjectorForTest(t, ProjectorOptions{
		Clock:  fake,
		Minter: func(now time.Time) (string, error) { return checkedToken(int(seq.Add(1)), now, time.Hour), nil },
	})

	done := make(chan struct{})
	progress := make(chan struct{}, 1) // the reader finished a read since the last receive
	var whole, vanished, torn atomic.Int64
	read := func() {
		b, err := os.ReadFile(p.Path())
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// The path resolved through ..data into the directory removed a moment later. The
			// kubelet has the same window; readers retry. It is never a partial token.
			vanished.Add(1)
		case err != nil, !tokenIntact(string(b)):
			torn.Add(1)
		default:
			whole.Add(1)
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				read() // once more with the writer at rest: this one must be whole
				return
			default:
			}
			read()
			select {
			case progress <- struct{}{}:
			default:
			}
		}
	})
	for i := range rotations {
		if err := p.Rotate(); err != nil {
			close(done)
			wg.Wait()
			t.Fatalf("rotation %d: %v", i, err)
		}
		await.Receive(t, 30*time.Second, progress, "a read between two rotations") // keep the reader reading through every rotation
	}
	close(done)
	await.Done(t, 30*time.Second, "the reader's end", wg.Wait)

	if torn.Load() != 0 {
		t.Errorf("%d reads saw a partial, mixed or unreadable token", torn.Load())
	}
	if whole.Load() == 0 {
		t.Error("no read saw a whole token")
	}
	if p.Rotations() != rotations+1 {
		t.Errorf("Rotations = %d, want %d", p.Rotations(), rotations+1)
	}
	layout(t, p.Dir())
	t.Logf("%d whole reads, %d ENOENT, over %d rotations", whole.Load(), vanished.Load(), rotations)
}

func TestProjectorCloseIsIdempotent(t *testing.T) {
	p, err := NewProjector(ProjectorOptions{
		Dir:    t.TempDir(),
		Clock:  clock.NewFake(t0),
		Minter: func(now time.Time) (string, error) { return checkedToken(1, now, time.Hour), nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			if err := p.Close(); err != nil {
				t.Error(err)
			}
		})
	}
	await.Done(t, 30*time.Second, "every Close to return", wg.Wait)
	if err := p.Close(); err != nil {
		t.Error(err)
	}
}

func TestNewProjectorRejects(t *testing.T) {
	mint := func(now time.Time) (string, error) { return checkedToken(1, now, time.Hour), nil }
	tests := []struct {
		name string
		opts ProjectorOptions
		want string
	}{
		{name: "no dir", opts: ProjectorOptions{Minter: mint}, want: "Dir is required"},
		{name: "no minter", opts: ProjectorOptions{Dir: t.TempDir()}, want: "Minter is required"},
		{name: "minter error", opts: ProjectorOptions{Dir: t.TempDir(), Minter: func(time.Time) (string, error) {
			return "", errors.New("no token for you")
		}}, want: "no token for you"},
		{name: "not a JWT", opts: ProjectorOptions{Dir: t.TempDir(), Minter: func(time.Time) (string, error) {
			return "opaque", nil
		}}, want: "not three dot-separated parts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewProjector(tt.opts)
			if err == nil {
				p.Close()
				t.Fatal("NewProjector succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}
