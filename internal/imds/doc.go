// Package imds serves the sidecar's credentials the way the EC2 Instance Metadata Service
// version 2 does, for applications whose SDK or tool can only fetch credentials from IMDS (old
// SDKs, some JVM and C++ tools, anything hard-coded to the EC2 role provider).
//
// Clients point at it with AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:<port>. It must
// have a port of its own: the Go SDK v2 replaces the URL's path, so it cannot share the
// container-credentials listener.
//
// What it answers, and why each answer is what it is:
//
//	PUT /latest/api/token                                  session token (IMDSv2), TTL header echoed
//	GET /latest/meta-data/iam/security-credentials/        the role name
//	GET /latest/meta-data/iam/security-credentials/<role>  the credentials document
//	GET /latest/meta-data/iam/info                         instance-profile ARN and id (synthetic)
//	GET /latest/meta-data/placement/region                 the region given to New
//	GET /latest/meta-data/placement/availability-zone      region + "a" unless set
//	GET /latest/dynamic/instance-identity/document         region, account, placeholder fields
//
// Refusals:
//   - Only IMDSv2: a GET without a session token gets 401, as an instance with
//     "HttpTokens: required" answers; every current SDK then fetches a token.
//   - A request carrying X-Forwarded-For (or Forwarded) gets 403. Real IMDS refuses token requests
//     that went through a proxy; refusing every proxied request keeps a server-side request
//     forgery in some other process of the pod from reaching the credentials.
//   - No servable credentials (not fetched yet, or the cache ran below the manager's floor): 503.
//     It is the one status every SDK treats as "try again": the Go SDK v2 retries 5xx but fails
//     at once on 404 (which real IMDS sends when no role is attached), botocore retries any
//     non-200 up to its attempt count, and the JavaScript SDK fails the call either way and asks
//     again on the next one. A credentials request waits a little (WithStartupWait) for the first
//     credentials before answering 503, so an application that starts together with the
//     sidecar does not fail its first call; the wait stays below the Go SDK's 500 ms header
//     timeout.
//   - Unknown path: 404. Known path, wrong method: 405.
//
// Lifetime: botocore rewrites an IMDS expiry that is less than 12 to 20 minutes away (its
// 10-minute ec2_credential_refresh_window plus 2 to 10 minutes of jitter) into "now plus that
// much", logging an "expiration extension" each time, so a short lifetime makes it refetch
// far more often than the credentials change. The manager refreshes upstream when
// 40 minutes remain (--refresh-window), so while STS is healthy the credentials served here keep
// at least 30 minutes. When STS fails, the manager keeps serving the cache down to its floor
// (--min-remaining) and this endpoint serves whatever the manager calls servable, without a
// log line per request.
//
// Usage, as the sidecar wires it:
//
//	srv, err := imds.New(manager, cfg.Region, imds.WithLogger(log))
//	ln, err := imds.Listen(cfg.IMDSListen) // loopback only
//	hs := server.NewHTTPServer(server.Wrap(server.EndpointIMDS, srv.Handler(), serverOpts...), log)
//	go func() { errc <- server.Serve(ctx, hs, ln, cfg.ShutdownTimeout) }()
package imds
