// Package testbed stands up, on loopback, the real parts around the sidecar: an AKS-shaped OIDC
// issuer, a kubelet-style projected token, and SeaweedFS as STS and S3. End-to-end tests,
// benchmarks and `make demo` use it, so its constructors take no testing.TB; the *ForTest
// helpers wrap them and register the clean-up.
//
// # Issuer
//
// NewIssuer serves discovery and JWKS over HTTP (URL) and HTTPS (HTTPSURL, certificate from the
// CA at CAFile) on 127.0.0.1. Its URLs end in "/<tenant>/<cluster>/" like an AKS issuer URL, and
// Audience is that URL, the audience AKS workloads conventionally request. Mint signs RS256
// service-account tokens with the claims the API server writes (iss, sub, aud array, exp, iat,
// nbf, jti, kubernetes.io); a TokenRequest varies them for negative tests: another service
// account, a past IssuedAt, other Audiences (ClusterAudiences is the three-audience default
// token of AKS), or a Key the JWKS does not publish. RotateKey rotates the signing key and keeps
// the old one published for the grace period.
//
// # Projector
//
// NewProjector writes a token into a directory exactly as the kubelet's atomic writer does
// (<dir>/token -> ..data/token, ..data -> ..<timestamp>, swapped by renaming ..data_tmp) and
// rotates it at 80% of its lifetime on an injected clock.Clock, or on Rotate.
//
// # SeaweedFS
//
// StartSeaweedFS runs `weed mini` (FindWeed: $CREDSIDECAR_WEED, else .cache/bin/weed at the repo
// root; `make weed` builds it) with every port on 127.0.0.1 chosen afresh, an iam.json trusting
// the issuer (DefaultIAMConfig: role DefaultRoleARN for system:serviceaccount:default:s3-access-sa,
// Get/Put/DeleteObject and ListBucket on one bucket), and waits until STS answers. One instance
// takes about 4 s to start, 1-3 s to stop and 130 MB of memory: share one per test.
//
// Where SeaweedFS differs from AWS STS, in what tests can assert:
//   - A wrong audience and a bad signature are InvalidParameterValue (AWS: InvalidIdentityToken);
//     a kid the JWKS lacks is AccessDenied (AWS: InvalidIdentityToken); an expired token is
//     ExpiredTokenException and a sub the trust policy does not admit is AccessDenied, as on AWS.
//   - The trust policy names the provider (ProviderName) where AWS names its ARN, and cannot
//     condition on oidc:aud for a token whose aud is an array; the provider's clientIds still
//     enforce the audience.
//   - AssumeRoleWithWebIdentity's answer has no AssumedRoleUser; GetCallerIdentity's ARN has no
//     account (arn:aws:sts::assumed-role/<role>/<session>).
//
// Usage, in a test:
//
//	iss := testbed.StartIssuerForTest(t, testbed.IssuerOptions{})
//	weed := testbed.StartSeaweedFSForTest(t, testbed.SeaweedFSOptions{Issuer: iss})
//	proj := testbed.NewProjectorForTest(t, testbed.ProjectorOptions{
//		Minter: iss.Minter(testbed.TokenRequest{Lifetime: 10 * time.Minute}),
//	})
//	// The sidecar under test reads proj.Path(), assumes weed.RoleARN() at weed.Endpoint()
//	// (region testbed.Region), and its credentials can use weed.Bucket().
//	client := weed.S3Client(credsFromTheSidecar)
//
// Outside tests (benchmarks' set-up, the demo), call NewIssuer, StartSeaweedFS and NewProjector
// and Close each when done.
package testbed
