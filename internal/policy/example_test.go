package policy_test

import (
	"fmt"

	"github.com/credsidecar/credsidecar/internal/policy"
)

func ExampleConditionLines() {
	iss := "https://eastus.oic.prod-aks.azure.com/tenant/cluster/"
	fmt.Println(policy.ConditionLines(iss, policy.Subject("default", "workload-sa"), policy.DefaultAudience(iss)))
	// Output:
	// "eastus.oic.prod-aks.azure.com/tenant/cluster:sub": "system:serviceaccount:default:workload-sa", "eastus.oic.prod-aks.azure.com/tenant/cluster:aud": "https://eastus.oic.prod-aks.azure.com/tenant/cluster/"
}

func ExampleCommands() {
	in := policy.Input{
		Issuer:         "https://eastus.oic.prod-aks.azure.com/tenant/cluster/",
		Namespace:      "default",
		ServiceAccount: "workload-sa",
		AccountID:      "111122223333",
		Bucket:         "my-bucket",
	}
	for _, c := range policy.Commands(in, "policies") {
		fmt.Println(c)
	}
	// Output:
	// aws iam create-open-id-connect-provider --url https://eastus.oic.prod-aks.azure.com/tenant/cluster/ --client-id-list https://eastus.oic.prod-aks.azure.com/tenant/cluster/
	// aws iam create-role --role-name AKS-S3-Access-Role --assume-role-policy-document file://policies/trust-policy.json
	// aws iam put-role-policy --role-name AKS-S3-Access-Role --policy-name S3AccessPolicy --policy-document file://policies/permission-policy.json
}
