// Package diagnose backs `sidecar check`: it explains, from the projected token and STS's
// answer alone, why a pod's web identity does or does not turn into AWS credentials, and
// prints for every problem what is wrong, why it matters and the exact fix, with the
// manifest field or policy line filled in from the token's own claims.
//
// A check reads the token file (never printing the token or its signature), decodes its
// claims with creds.DecodeToken, calls AssumeRoleWithWebIdentity once, then GetCallerIdentity
// with the credentials it got, and with a bucket to probe, ListObjectsV2, PutObject and
// DeleteObject of a small probe object with those same credentials. Every problem becomes a
// findings.Finding with a stable id (package findings' ID* constants), so scripts can match on
// them in the --output json document. Package findings owns the explanations, which the serving
// sidecar logs too (findings.TokenWarnings once per token, findings.ExplainSTS for each failed
// STS call); this package adds what only a check gathers: STS's and S3's answers, the trust
// policy lines and the commands that fix them (from package policy).
//
// Entry point for cmd/sidecar:
//
//	case "check":
//		os.Exit(diagnose.Main(ctx, args[1:], os.Getenv, os.Stdout, os.Stderr))
package diagnose
