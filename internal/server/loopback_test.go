package server

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

func TestLoopbackHost(t *testing.T) {
	tests := []struct {
		host string
		want bool
	}{
		{"127.0.0.1", true},
		{"127.0.0.1:9910", true},
		{"127.1.2.3:80", true},
		{"[::1]:9911", true},
		{"[::1]", true},
		{"::1", true},
		{"localhost", true},
		{"LOCALHOST:9910", true},
		{"[::ffff:127.0.0.1]:9910", true},
		{"evil.example.com", false},
		{"evil.example.com:9910", false},
		{"localhost.evil.example.com", false},
		{"127.0.0.1.nip.io:9910", false},
		{"10.0.0.5:9910", false},
		{"0.0.0.0:9910", false},
		{"[fe80::1%lo]:9910", false},
		{"", false},
		{"127.0.0.1:9910:1", false},
	}
	for _, tt := range tests {
		if got := loopbackHost(tt.host); got != tt.want {
			t.Errorf("loopbackHost(%q) = %v, want %v", tt.host, got, tt.want)
		}
	}
}

func TestLoopbackPeer(t *testing.T) {
	tests := []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:43210", true},
		{"[::1]:43210", true},
		{"[::ffff:127.0.0.1]:1", true},
		{"10.244.0.7:43210", false},
		{"192.168.1.1:1", false},
		{"127.0.0.1", false}, // no port: not what net/http sets, refuse
		{"", false},
	}
	for _, tt := range tests {
		if got := loopbackPeer(tt.addr); got != tt.want {
			t.Errorf("loopbackPeer(%q) = %v, want %v", tt.addr, got, tt.want)
		}
	}
}

func TestLoopbackOnly(t *testing.T) {
	h := loopbackOnly(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }))
	tests := []struct {
		name, host, remote string
		want               int
	}{
		{"loopback", "127.0.0.1:9910", "127.0.0.1:5000", http.StatusOK},
		{"dns rebinding", "evil.example.com:9910", "127.0.0.1:5000", http.StatusForbidden},
		{"remote peer", "127.0.0.1:9910", "10.0.0.9:5000", http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/v1/credentials", nil)
			r.Host, r.RemoteAddr = tt.host, tt.remote
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.want {
				t.Fatalf("status %d, want %d", w.Code, tt.want)
			}
			if tt.want != http.StatusForbidden {
				return
			}
			var body map[string]string
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body["Code"] != "Forbidden" || body["code"] != "Forbidden" ||
				w.Header().Get("Content-Type") != "application/json" {
				t.Errorf("403 body %s (%v), content type %q: want the JSON error in both casings", w.Body, err, w.Header().Get("Content-Type"))
			}
		})
	}
}

// FuzzLoopbackHost checks loopbackHost against the older net package's parser: whatever it
// accepts must be localhost or an address net.ParseIP also reads as loopback.
func FuzzLoopbackHost(f *testing.F) {
	for _, s := range []string{"127.0.0.1:9910", "[::1]:1", "localhost", "evil.example.com", "[fe80::1%lo]:1", "::ffff:127.0.0.1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, host string) {
		if !loopbackHost(host) {
			return
		}
		h := strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		if hh, _, err := net.SplitHostPort(host); err == nil {
			h = hh
		}
		if ip := net.ParseIP(h); !strings.EqualFold(h, "localhost") && (ip == nil || !ip.IsLoopback()) {
			t.Fatalf("loopbackHost(%q) = true, but %q is neither localhost nor a loopback IP", host, h)
		}
	})
}

// FuzzLoopbackPeer checks the fast path of loopbackPeer against the full parse it skips: the
// same answer for every string.
func FuzzLoopbackPeer(f *testing.F) {
	for _, s := range []string{"127.0.0.1:43210", "127.0.0.1:65536", "127.0.0.1:", "127.0.0.1:0080", "127.0.0.10:1",
		"[::1]:1", "127.0.0.1:1x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		ap, err := netip.ParseAddrPort(addr)
		want := err == nil && ap.Addr().Unmap().IsLoopback()
		if got := loopbackPeer(addr); got != want {
			t.Fatalf("loopbackPeer(%q) = %v, the full parse says %v", addr, got, want)
		}
	})
}
