package server

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// notLoopback answers a request that did not come from this pod's loopback interface or did
// not name it.
var notLoopback = newAPIError(http.StatusForbidden, "Forbidden",
	"credentials are served only to loopback clients that address 127.0.0.1, ::1 or localhost")

// loopbackOnly refuses, with a JSON 403, a request whose peer is not a loopback address or whose
// Host header is not a loopback IP literal or localhost (with or without a port).
//
// The Host check stops DNS rebinding: a page on evil.example.com whose name is made to resolve
// to 127.0.0.1 lets a browser in the pod (a headless one rendering user content, say) reach the
// endpoint, but its requests still say Host: evil.example.com. The instance-metadata endpoint
// has no other authentication, so this is what keeps it from any web page.
func loopbackOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !loopbackPeer(r.RemoteAddr) || !loopbackHost(r.Host) {
			writeError(w, notLoopback)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// loopbackHost reports whether a Host header names this machine's loopback: 127.0.0.0/8, ::1
// (in brackets when a port follows) or localhost, each with or without a port.
func loopbackHost(host string) bool {
	if usual(host) {
		return true
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	// A zone (fe80::1%lo) names an interface, not loopback; ::ffff:127.0.0.1 is loopback too.
	return err == nil && ip.Zone() == "" && ip.Unmap().IsLoopback()
}

// loopbackPeer reports whether a request's RemoteAddr is a loopback address.
func loopbackPeer(remoteAddr string) bool {
	if usual(remoteAddr) {
		return true
	}
	ap, err := netip.ParseAddrPort(remoteAddr)
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

// usual reports whether s is what SDKs send and the kernel reports nearly always,
// 127.0.0.1:<port>, without parsing it: the check is on every request's path. Anything else
// takes the full parse.
func usual(s string) bool {
	port, ok := strings.CutPrefix(s, "127.0.0.1:")
	if !ok || port == "" || len(port) > 5 {
		return false
	}
	n := 0
	for i := range len(port) {
		if port[i] < '0' || port[i] > '9' {
			return false
		}
		n = n*10 + int(port[i]-'0')
	}
	return n <= 65535
}
