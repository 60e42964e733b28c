package charts

import (
	"fmt"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/credsidecar/credsidecar/internal/testkit/testbed"
)

// plurals maps each kind the chart renders in its default (generated TLS) mode to its REST path;
// an unknown kind fails the test, so a new template cannot slip past the API server.
var plurals = map[string]struct {
	prefix, plural string
	namespaced     bool
}{
	"ServiceAccount":               {"api/v1", "serviceaccounts", true},
	"Secret":                       {"api/v1", "secrets", true},
	"Service":                      {"api/v1", "services", true},
	"Deployment":                   {"apis/apps/v1", "deployments", true},
	"PodDisruptionBudget":          {"apis/policy/v1", "poddisruptionbudgets", true},
	"ClusterRole":                  {"apis/rbac.authorization.k8s.io/v1", "clusterroles", false},
	"ClusterRoleBinding":           {"apis/rbac.authorization.k8s.io/v1", "clusterrolebindings", false},
	"MutatingWebhookConfiguration": {"apis/admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations", false},
}

// TestRenderedAcceptedByAPIServer dry-runs every object of the default render against a real API
// server with strict field validation, which rejects unknown or misplaced fields that lint misses.
func TestRenderedAcceptedByAPIServer(t *testing.T) {
	const ns = "credsidecar-system"
	out, err := helm(t, "template", "credsidecar", "credsidecar", "--namespace", ns)
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, out)
	}
	k := testbed.StartKubeAPIForTest(t, testbed.KubeAPIOptions{})
	ctx := t.Context()
	nsObj := map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns}}
	if err := k.Do(ctx, "POST", "/api/v1/namespaces", nsObj, nil); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	n := 0
	for _, doc := range strings.Split(out, "\n---\n") {
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatalf("decode rendered document: %v\n%s", err, doc)
		}
		if obj == nil {
			continue
		}
		kind, _ := obj["kind"].(string)
		p, ok := plurals[kind]
		if !ok {
			t.Fatalf("rendered kind %q has no REST path in plurals", kind)
		}
		path := "/" + p.prefix + "/" + p.plural
		if p.namespaced {
			path = fmt.Sprintf("/%s/namespaces/%s/%s", p.prefix, ns, p.plural)
		}
		if err := k.Do(ctx, "POST", path+"?dryRun=All&fieldValidation=Strict", obj, nil); err != nil {
			t.Errorf("dry-run create %s: %v", kind, err)
		}
		n++
	}
	if n < len(plurals) {
		t.Errorf("dry-ran %d objects, want at least one of each of the %d kinds", n, len(plurals))
	}
}
