// Package e2e is the end-to-end acceptance of the sidecar: the real AWS SDKs (Go v1 and v2,
// boto3, JavaScript v3) find the sidecar's credentials endpoint through their default chains
// and use what it serves against SeaweedFS, a token and signing-key rotation mid-run fails no
// request, and no secret reaches a log line or a metric.
//
// The package holds only tests. They share one environment per test binary (testkit/podenv: an
// OIDC issuer, a kubelet-style projected token, SeaweedFS as STS and S3, and the sidecar
// in-process on a fake clock), so run them as one:
//
//	make deps   # SeaweedFS into .cache/bin, the JavaScript SDK into .cache/js, boto3 and the AWS CLI
//	go test -race ./internal/e2e/
package e2e
