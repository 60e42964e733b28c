package main

import (
	"context"
	"testing"

	"github.com/credsidecar/credsidecar/internal/testkit/testbed"
)

// BenchmarkSidecar runs the report's Go benchmarks (`go test -bench . ./cmd/bench`) on one fixture:
// an issuer, SeaweedFS, a projected token and a creds.Manager holding credentials from it. A
// benchmark with sub-benchmarks runs its body once, so SeaweedFS starts once.
func BenchmarkSidecar(b *testing.B) {
	if _, err := testbed.FindWeed(); err != nil {
		b.Skipf("needs SeaweedFS (make weed): %v", err)
	}
	iss := testbed.StartIssuerForTest(b, testbed.IssuerOptions{})
	weed := testbed.StartSeaweedFSForTest(b, testbed.SeaweedFSOptions{Issuer: iss})
	proj := testbed.NewProjectorForTest(b, testbed.ProjectorOptions{Minter: iss.Minter(testbed.TokenRequest{})})
	f, err := newMicroFixture(context.Background(), weed, proj.Path(), b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = f.stop() })
	for _, mb := range microBenches() {
		b.Run(mb.name, func(b *testing.B) { mb.fn(b, f) })
	}
}
