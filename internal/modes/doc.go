// Package modes holds no code: it is the home of the end-to-end tests of the sidecar's other
// ways of handing out credentials, each run in-process through app.New against one SeaweedFS
// (STS and S3) and used by the real clients of that mode:
//
//   - instance metadata (--imds-listen): aws-sdk-go-v2's IMDS provider, boto3's
//     InstanceMetadataProvider and the JavaScript SDK's fromInstanceMetadata, with IMDSv1 refused;
//   - the legacy token mode: the auth token is a Kubernetes Secret mounted as a file and handed
//     to the apps as AWS_CONTAINER_AUTHORIZATION_TOKEN, read by boto3 and aws-sdk-go v1; a
//     rotation of the Secret (the kubelet's ..data swap) is adopted without a restart, the old
//     token refused, and aws-sdk-go-v2 reading the file keeps working;
//   - credential_process: the AWS CLI running the built `sidecar credential-process`;
//   - the shared credentials file (--credentials-file): boto3 and aws-sdk-go-v2's shared-config
//     loader, rewritten at every refresh without a reader ever seeing half a file;
//   - role chaining (--chain-role-arn): the endpoint serves the chained role;
//   - token warnings: a token with several audiences is warned about once per token.
//
// The sidecars share one issuer and SeaweedFS, the testkit/podenv World of the test binary.
// See docs/modes.md for how each mode is deployed.
package modes
