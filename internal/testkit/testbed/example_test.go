package testbed_test

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/credsidecar/credsidecar/internal/clock"
	"github.com/credsidecar/credsidecar/internal/testkit/testbed"
)

func ExampleIssuer_Mint() {
	iss, err := testbed.NewIssuer(testbed.IssuerOptions{})
	if err != nil {
		panic(err)
	}
	defer iss.Close()

	tok, err := iss.Mint(testbed.TokenRequest{Namespace: "shop", ServiceAccount: "uploader"})
	if err != nil {
		panic(err)
	}
	h, c, _ := testbed.ParseUnverified(tok)
	fmt.Println(h.Alg, c.Subject)
	fmt.Println(c.Audience[0] == iss.URL(), time.Duration(c.Expiry-c.IssuedAt)*time.Second)
	// Output:
	// RS256 system:serviceaccount:shop:uploader
	// true 1h0m0s
}

func ExampleNewProjector() {
	iss, err := testbed.NewIssuer(testbed.IssuerOptions{})
	if err != nil {
		panic(err)
	}
	defer iss.Close()
	dir, _ := os.MkdirTemp("", "projected-")
	defer os.RemoveAll(dir)

	fake := clock.NewFake(time.Date(2026, 11, 25, 17, 21, 52, 0, time.UTC))
	p, err := testbed.NewProjector(testbed.ProjectorOptions{
		Dir:    dir,
		Clock:  fake,
		Minter: iss.Minter(testbed.TokenRequest{Lifetime: 10 * time.Minute}),
	})
	if err != nil {
		panic(err)
	}
	defer p.Close()

	link, _ := os.Readlink(p.Path())
	data, _ := os.Readlink(filepath.Join(dir, "..data"))
	fmt.Println("token ->", link)
	fmt.Println("..data ->", data[:len("..2026_11_25_17_21_52.")]+"<random>")
	fmt.Println("next rotation:", p.NextRotation().UTC().Format(time.TimeOnly))
	// Output:
	// token -> ..data/token
	// ..data -> ..2026_11_25_17_21_52.<random>
	// next rotation: 17:29:52
}
