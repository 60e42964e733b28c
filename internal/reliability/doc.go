// Package reliability holds the sidecar's reliability suite: tests, no production code. They
// drive the real parts (creds.Manager, the credentials server, the whole app, SeaweedFS as STS)
// through the faults a pod meets in production and assert what users judge the sidecar by:
// cached credentials keep being served, never past their floor, STS is called a bounded number
// of times, and the sidecar recovers without a restart.
//
//   - STS faults (timeouts, 500, 503, throttling, connection resets and closes, answers slower
//     than the client's timeout) come from faultSTS, an httptest STS that speaks the real
//     AssumeRoleWithWebIdentity wire format; time is a fake clock, so an hour of refreshes and
//     retries runs in milliseconds.
//   - Token faults (file deleted, emptied, garbage, expired, unreadable, symlinks to nowhere)
//     are made in a kubelet-style projected volume while the sidecar serves, against SeaweedFS.
//   - HTTP abuse (slowloris, 1 MiB headers, 10,000 idle connections, wrong methods, path
//     traversal) is thrown at the real credentials server while a well-behaved client checks
//     that it keeps getting its credentials.
//
// The tests against SeaweedFS share one issuer and SeaweedFS, the testkit/podenv World of the
// test binary. TestSoak (build tag soak, `make soak`) runs the built sidecar under load for ten
// minutes.
package reliability
