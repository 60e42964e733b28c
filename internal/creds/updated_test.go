package creds

import "testing"

// closed reports whether ch is closed, without waiting.
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestUpdated follows the change notification through a first fetch, a refresh and a failed
// refresh, on the fake clock: a channel is closed by each publish and only by a publish.
func TestUpdated(t *testing.T) {
	h := newHarness(t)
	h.dir.write(validToken(t))
	h.build()
	before := h.m.Updated()
	if closed(before) {
		t.Fatal("Updated() closed before anything was published")
	}
	if h.m.Updated() != before {
		t.Fatal("two calls before a publish returned different channels: subscribers would miss it")
	}
	h.run()
	waitChan(t, before, "close of Updated() at the first publish")
	h.settle()
	first := h.m.Servable()
	if first == nil {
		t.Fatal("Updated() closed but nothing is servable")
	}
	afterFirst := h.m.Updated()
	if closed(afterFirst) {
		t.Fatal("Updated() after the first publish is already closed")
	}

	// The refresh publishes new credentials and closes the channel taken after the first.
	for h.sts.count() < 2 {
		h.step()
	}
	waitChan(t, afterFirst, "close of Updated() at the refresh")
	if second := h.m.Servable(); second == nil || second == first {
		t.Fatalf("Servable() after the refresh = %v, want new credentials", second)
	}

	// A failed refresh publishes nothing.
	afterSecond := h.m.Updated()
	h.sts.setFail(func(int, stsCall) error { return err5xx() })
	for n := h.sts.count(); h.sts.count() == n; {
		h.step()
	}
	h.settle()
	if closed(afterSecond) {
		t.Fatal("Updated() closed by a failed refresh")
	}
	if h.m.LastError() == nil {
		t.Fatal("the injected failure did not happen")
	}
}
