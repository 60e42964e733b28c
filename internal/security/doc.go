// Package security holds the sidecar's security suite: tests, no production code. Each test
// runs the built cmd/sidecar, as a pod would, and attacks it the way a security review found it
// could be attacked: DNS rebinding against the loopback endpoints, requests forged through a
// proxy, instance metadata on port 80 without root, plain-http STS endpoints, hostile auth-token
// files. The tests share one issuer and SeaweedFS, the testkit/podenv World of the test binary,
// and one build of the sidecar.
package security
