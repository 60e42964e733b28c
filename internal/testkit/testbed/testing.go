package testbed

import (
	"net"
	"testing"
)

// StartIssuerForTest starts an Issuer that t's clean-up closes; a start failure fails t.
func StartIssuerForTest(t testing.TB, opts IssuerOptions) *Issuer {
	t.Helper()
	iss, err := NewIssuer(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := iss.Close(); err != nil {
			t.Error(err)
		}
	})
	return iss
}

// NewProjectorForTest starts a Projector that t's clean-up closes; a start failure fails t.
// opts.Dir defaults to a directory of t.TempDir().
func NewProjectorForTest(t testing.TB, opts ProjectorOptions) *Projector {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	p, err := NewProjector(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// StartSeaweedFSForTest starts SeaweedFS for t and stops it in t's clean-up, which also runs
// when t fails or is stopped by FailNow; if t failed, weed's last log lines are logged first. A
// missing binary or a failed start fails t.
func StartSeaweedFSForTest(t testing.TB, opts SeaweedFSOptions) *SeaweedFS {
	t.Helper()
	s, err := StartSeaweedFS(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("seaweedfs at %s, pid %d, logs in %s:%s", s.Endpoint(), s.Pid(), s.LogDir(), s.LogTail())
		}
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// StartKubeAPIForTest starts a kube-apiserver with its etcd for t and stops both in t's
// clean-up; if t failed, their last log lines are logged first. A missing binary or a failed
// start fails t.
func StartKubeAPIForTest(t testing.TB, opts KubeAPIOptions) *KubeAPI {
	t.Helper()
	k, err := StartKubeAPI(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kube-apiserver at %s, files in %s:%s", k.URL(), k.Dir(), k.LogTail())
		}
		if err := k.Close(); err != nil {
			t.Error(err)
		}
	})
	return k
}

// ClosedAddr returns a loopback host:port nothing listens on (a listener bound and closed at
// once): an unreachable server that needs no fake.
func ClosedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}
