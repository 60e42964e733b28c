package findings_test

import (
	"fmt"
	"time"

	"github.com/credsidecar/credsidecar/internal/creds"
	"github.com/credsidecar/credsidecar/internal/findings"
)

// serve calls TokenWarnings once per new token and logs each finding as a warning.
func ExampleTokenWarnings() {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	claims := &creds.TokenClaims{
		Issuer:   "https://eastus.oic.prod-aks.azure.com/tenant/cluster/",
		Subject:  "system:serviceaccount:default:workload-sa",
		Audience: []string{"https://eastus.oic.prod-aks.azure.com/tenant/cluster/", "https://kubernetes.default.svc.cluster.local"},
		IssuedAt: now.Add(-10 * time.Minute),
		Expiry:   now.Add(50 * time.Minute),
	}
	for _, f := range findings.TokenWarnings(claims, now) {
		fmt.Println(f.Severity, f.ID)
		fmt.Println(f.Fix)
	}
	// Output:
	// warning token-multiple-audiences
	// set `audience: https://eastus.oic.prod-aks.azure.com/tenant/cluster/` on the projected volume's serviceAccountToken source (the issuer URL with a trailing slash, the AKS convention) and register that value as the provider's client id
}
