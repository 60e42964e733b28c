// Package upload is the sample workload that proves a pod's AWS credentials work end to end:
// it resolves credentials through the SDK's default chain (in the pod, the credsidecar's
// container-credentials endpoint), checks who it is with STS GetCallerIdentity, uploads one
// object to S3 through the SDK's transfer manager, and confirms the stored object with
// HeadObject (size and a full-object CRC64NVME computed locally while streaming).
//
// Every step is one log line; a failure names the AWS error code and the most likely
// misconfiguration behind it, because the people running this are usually debugging a trust
// or permission policy, not the uploader.
//
// Exit codes: 0 on success, 1 when credentials, identity, upload or verification fail, 2 on
// bad configuration. Nothing is written to local disk.
//
// Usage sketch (cmd/uploader is exactly this):
//
//	code := upload.Main(ctx, upload.Options{
//		Version: version,
//		Args:    os.Args[1:],
//		Getenv:  os.Getenv,
//		Stdout:  os.Stdout,
//		Stderr:  os.Stderr,
//	})
//	os.Exit(code)
package upload
