// Package creds owns a pod's AWS credentials: it reads the kubelet-projected service-account
// token, exchanges it with STS AssumeRoleWithWebIdentity, caches the result and refreshes it
// well ahead of expiry, so that the HTTP endpoints only ever answer from memory.
//
// One goroutine calls STS, so concurrent needs collapse into one call. It fetches at start,
// refreshes when less than Config.RefreshWindow (40 min) of lifetime remains, jittered up to
// 10% later (so 36-40 min before expiry: at most three STS calls an hour), and after failures backs off: 1 s doubling to 1 min for transient ones
// (throttling, 5xx, network), 1 min for those retrying cannot fix (trust policy, bad token),
// cut short when the token rotates. Meanwhile the cached credentials are served until only
// Config.MinRemaining (5 min) of their lifetime is left, never closer to expiry.
//
// The token is read once per version of the file: at start, then by the watcher when its
// directory changes (the kubelet rotates it by swapping a ..data symlink; internal/filewatch
// watches the directory and polls as a fallback), which hands the new token to the refresh
// loop and to the WithTokenCheck function.
//
// Usage:
//
//	api := creds.NewSTSClient("eu-west-1", "") // or a SeaweedFS/VPC endpoint URL
//	m, err := creds.NewManager(creds.Config{
//		RoleARN:   "arn:aws:iam::123456789012:role/app",
//		TokenFile: "/var/run/secrets/eks.amazonaws.com/serviceaccount/token",
//	}, api, creds.WithLogger(logger), creds.WithObserver(metrics))
//	if err != nil {
//		return err
//	}
//	defer m.Close()
//	go m.Run(ctx)
//
//	// On the request path: never blocks, never calls STS.
//	if c := m.Servable(); c != nil {
//		// answer 200 with c
//	} else {
//		// answer 503; m.LastError() says why
//	}
//
//	// At start, to hold readiness until the first credentials arrive:
//	c := m.Wait(ctx)
//
//	// To act on each new value (as the credentials file does):
//	for {
//		updated := m.Updated() // before Servable, so that no publish is missed
//		use(m.Servable())
//		select {
//		case <-updated:
//		case <-ctx.Done():
//			return
//		}
//	}
package creds
