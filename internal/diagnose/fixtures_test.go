package diagnose

import "github.com/credsidecar/credsidecar/internal/testkit/claimstest"

const (
	testIssuer = claimstest.Issuer
	testRole   = claimstest.Role
)

var (
	testNow  = claimstest.Now
	claimsAt = claimstest.At
)
