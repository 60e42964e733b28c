package creds

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// openCounter counts the opens of the token file in each timestamped directory of a
// projectedDir, through inotify's IN_OPEN: the kernel's own record, so the product needs no
// counting hook. Each version's directory is watched before ..data points at it, so every
// open the Manager makes is seen and none of the test's writes is.
type openCounter struct {
	t    *testing.T
	fd   int
	wds  map[int32]string // watch descriptor -> version name
	seen map[string]int   // version name -> opens of its token file
}

func newOpenCounter(t *testing.T) *openCounter {
	fd, err := syscall.InotifyInit1(syscall.IN_NONBLOCK | syscall.IN_CLOEXEC)
	if err != nil {
		t.Fatalf("inotify: %v", err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	return &openCounter{t: t, fd: fd, wds: map[int32]string{}, seen: map[string]int{}}
}

// rotate writes content as a new version of p, starts counting its opens, then swaps ..data to
// it as the kubelet does. It returns the version's name.
func (c *openCounter) rotate(p *projectedDir, content string) string {
	c.t.Helper()
	p.gen++
	name := fmt.Sprintf("..2026_03_01_12_00_00.%09d", p.gen)
	dir := filepath.Join(p.dir, name)
	p.must(os.MkdirAll(dir, 0o755))
	p.must(os.WriteFile(filepath.Join(dir, "token"), []byte(content), 0o644))
	wd, err := syscall.InotifyAddWatch(c.fd, dir, syscall.IN_OPEN)
	if err != nil {
		c.t.Fatalf("inotify watch %s: %v", dir, err)
	}
	c.wds[int32(wd)] = name
	p.swapData(name)
	p.ensureTokenLink()
	return name
}

// opens returns how often version's token file has been opened so far. Events are queued when
// the open happens, so everything done before the call is counted.
func (c *openCounter) opens(version string) int {
	c.t.Helper()
	buf := make([]byte, 64<<10)
	for {
		n, err := syscall.Read(c.fd, buf)
		if errors.Is(err, syscall.EAGAIN) {
			break
		}
		if err != nil {
			c.t.Fatalf("read inotify events: %v", err)
		}
		for off := 0; off+syscall.SizeofInotifyEvent <= n; {
			ev := (*syscall.InotifyEvent)(unsafe.Pointer(&buf[off]))
			nameBytes := buf[off+syscall.SizeofInotifyEvent : off+syscall.SizeofInotifyEvent+int(ev.Len)]
			off += syscall.SizeofInotifyEvent + int(ev.Len)
			name := string(nameBytes)
			if i := indexNUL(name); i >= 0 {
				name = name[:i]
			}
			if ev.Mask&syscall.IN_OPEN != 0 && name == "token" {
				c.seen[c.wds[ev.Wd]]++
			}
		}
	}
	return c.seen[version]
}

func indexNUL(s string) int {
	for i := range len(s) {
		if s[i] == 0 {
			return i
		}
	}
	return -1
}

// TestTokenReadOncePerRotation: the file is opened once per version, however many
// notifications a rotation makes, however many polls pass, and however many refreshes and
// token checks use the token.
func TestTokenReadOncePerRotation(t *testing.T) {
	h := newHarness(t)
	c := newOpenCounter(t)
	v1 := c.rotate(h.dir, validToken(t))
	checked := make(chan *TokenClaims, 100)
	h.start(WithTokenCheck(func(tc *TokenClaims) { checked <- tc }))
	waitChan(t, checked, "the first token check")

	// Polls and a refresh with the same token: no further reads.
	for h.sts.count() < 2 {
		h.step()
	}
	if n := c.opens(v1); n != 1 {
		t.Fatalf("first token opened %d times over start, polls and a refresh, want 1", n)
	}

	// A rotation: noticed, checked, then used by the next refresh, from one read.
	rotated := makeJWT(t, k8sClaims(h.clk.Now(), 24*time.Hour))
	v2 := c.rotate(h.dir, rotated)
	h.obs.NextReload(t, guard, "TokenReloaded")
	waitChan(t, checked, "the rotated token's check")
	h.logs.waitFor(t, "token changed; credentials still fresh")
	calls := h.sts.count()
	for h.sts.count() < calls+1 {
		h.step()
	}
	if got := h.sts.callList()[calls].token; got != rotated {
		t.Fatal("the refresh after the rotation did not use the rotated token")
	}
	if n := c.opens(v2); n != 1 {
		t.Fatalf("rotated token opened %d times by the watcher, the check and the refresh, want 1", n)
	}
	if n := c.opens(v1); n != 1 {
		t.Fatalf("first token opened %d times in all, want 1", n)
	}
}
