package imds

import (
	"container/heap"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

const (
	// tokenBytes of randomness make a session token: 256 bits, 43 base64url characters.
	tokenBytes = 32
	// DefaultMaxTokens bounds the live session tokens. SDKs fetch one token per client and
	// reuse it for its lifetime, so a pod needs a handful; the bound keeps a process that asks
	// for tokens in a loop from growing the sidecar's memory.
	DefaultMaxTokens = 1024
)

var tokenLen = base64.RawURLEncoding.EncodedLen(tokenBytes)

// tokenStore remembers the session tokens it issued until they expire. It keeps only each
// token's SHA-256: the map is looked up by the digest's first 8 bytes, which tell an attacker
// nothing about any token, and the full digest is then compared in constant time, so no
// comparison ever runs over the secret itself.
type tokenStore struct {
	max  int
	rand io.Reader

	mu      sync.Mutex
	byIndex map[uint64]*tokenEntry
	expiry  expiryHeap // the same entries, soonest expiry first
}

type tokenEntry struct {
	digest  [sha256.Size]byte
	expires time.Time
}

func newTokenStore(max int, rand io.Reader) *tokenStore {
	return &tokenStore{max: max, rand: rand, byIndex: make(map[uint64]*tokenEntry)}
}

// issue returns a new token valid for ttl from now. When the store is full, the token nearest
// its expiry is dropped (evicted reports it): its holder gets a 401 on its next request and,
// like every SDK on a 401, fetches a new token.
func (s *tokenStore) issue(now time.Time, ttl time.Duration) (token string, evicted bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.purge(now)
	if len(s.byIndex) >= s.max {
		e := heap.Pop(&s.expiry).(*tokenEntry)
		delete(s.byIndex, index(e.digest))
		evicted = true
	}
	// An 8-byte index collides with one of 1024 live tokens about once in 2^54 draws; draw
	// again rather than let two tokens share a slot.
	for range 3 {
		var raw [tokenBytes]byte
		if _, err := io.ReadFull(s.rand, raw[:]); err != nil {
			return "", evicted, fmt.Errorf("issue session token: %w", err)
		}
		token = base64.RawURLEncoding.EncodeToString(raw[:])
		d := sha256.Sum256([]byte(token))
		if _, taken := s.byIndex[index(d)]; taken {
			continue
		}
		e := &tokenEntry{digest: d, expires: now.Add(ttl)}
		s.byIndex[index(d)] = e
		heap.Push(&s.expiry, e)
		return token, evicted, nil
	}
	return "", evicted, errors.New("issue session token: random source repeats itself")
}

// valid reports whether token was issued here and has not expired at now.
func (s *tokenStore) valid(now time.Time, token string) bool {
	if len(token) != tokenLen { // the length of every token is public
		return false
	}
	d := sha256.Sum256([]byte(token))
	s.mu.Lock()
	e, ok := s.byIndex[index(d)]
	var stored [sha256.Size]byte
	var expires time.Time
	if ok {
		stored, expires = e.digest, e.expires
	}
	s.mu.Unlock()
	if subtle.ConstantTimeCompare(stored[:], d[:]) != 1 {
		return false
	}
	return now.Before(expires)
}

// len reports the live tokens, counting expired ones not yet purged.
func (s *tokenStore) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byIndex)
}

// purge drops expired tokens; the caller holds s.mu.
func (s *tokenStore) purge(now time.Time) {
	for len(s.expiry) > 0 && !now.Before(s.expiry[0].expires) {
		e := heap.Pop(&s.expiry).(*tokenEntry)
		delete(s.byIndex, index(e.digest))
	}
}

func index(d [sha256.Size]byte) uint64 { return binary.BigEndian.Uint64(d[:8]) }

// expiryHeap is a min-heap of entries by expiry.
type expiryHeap []*tokenEntry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expires.Before(h[j].expires) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(*tokenEntry)) }

func (h *expiryHeap) Pop() any {
	old := *h
	n := len(old)
	e := old[n-1]
	old[n-1] = nil
	*h = old[:n-1]
	return e
}
