// Package diagnose backs `sidecar check`: it explains, from the projected token and STS's
// answer alone, why a pod's web identity does or does not turn into AWS credentials, and
// prints for every problem what is wrong, why it matters and the exact fix, with the
// manifest field or policy line filled in from the token's own claims.
//
// A check reads the token file (never printing the token or its signature), decodes its
// claims with creds.DecodeToken, calls AssumeRoleWithWebIdentity once, then GetCallerIdentity
// with the credentials it got, and with a bucket to probe, ListObjectsV2, PutObject and
// DeleteObject of a small probe object with those same credentials. Every problem becomes a
// Finding with a stable ID (the ID* constants), so scripts can match on them in the
// --output json document.
//
// The sidecar's serve command reuses the token-only part: call TokenWarnings once per new token
// (at start and after each rotation) and log each finding as a warning with its fix:
//
//	claims, err := creds.DecodeToken(raw)
//	if err == nil {
//		for _, f := range diagnose.TokenWarnings(claims, now) {
//			logger.Warn("token problem", "id", f.ID, "what", f.What, "why", f.Why, "fix", f.Fix)
//		}
//	}
//
// Entry point for cmd/sidecar:
//
//	case "check":
//		os.Exit(diagnose.Main(ctx, args[1:], os.Getenv, os.Stdout, os.Stderr))
package diagnose
