// Package policy renders the AWS side of a Kubernetes workload identity: the IAM role's trust
// policy for a cluster's OIDC issuer and one service account, the S3 permission policy of the
// walkthrough, and the `aws iam` commands that create the OIDC provider and the role. It backs
// `sidecar policy` and gives `sidecar check` the exact lines its fixes quote.
//
// Conventions, chosen to match AKS and IAM:
//
//   - The OIDC provider is named by the issuer's host and path without scheme and without a
//     trailing slash ("eastus.oic.prod-aks.azure.com/<tenant>/<cluster>"); IAM uses that string
//     both in the provider's ARN and as the prefix of the condition keys ":sub" and ":aud".
//   - The audience defaults to the issuer URL with exactly one trailing slash, as AKS workload
//     identity documents it. It must be the `audience:` of the pod's projected
//     serviceAccountToken, the provider's client id and the ":aud" condition, all byte for byte.
//
// Usage sketch:
//
//	in := policy.Input{
//		Issuer:         "https://eastus.oic.prod-aks.azure.com/tenant/cluster/",
//		Namespace:      "default",
//		ServiceAccount: "workload-sa",
//		AccountID:      "111122223333",
//		Bucket:         "my-bucket",
//	}
//	if err := in.Validate(); err != nil {
//		return err
//	}
//	trust := policy.Trust(in)          // Document, json.Marshal-able
//	perms := policy.Permission(in)     // nil without a bucket
//	cmds := policy.Commands(in, "")    // aws iam ... lines
package policy
