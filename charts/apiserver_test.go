package charts

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/credsidecar/credsidecar/internal/testkit/testbed"
)

// plurals maps each kind the chart renders, in the default and the full set of values, to its
// REST path; an unknown kind fails the test, so a new template cannot slip past the API server.
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
	"ConfigMap":                    {"api/v1", "configmaps", true},
	"Certificate":                  {"apis/cert-manager.io/v1", "certificates", true},
	"Issuer":                       {"apis/cert-manager.io/v1", "issuers", true},
	"PrometheusRule":               {"apis/monitoring.coreos.com/v1", "prometheusrules", true},
	"ServiceMonitor":               {"apis/monitoring.coreos.com/v1", "servicemonitors", true},
	"PodMonitor":                   {"apis/monitoring.coreos.com/v1", "podmonitors", true},
	"CronJob":                      {"apis/batch/v1", "cronjobs", true},
}

// crdFiles are the CRDs of the kinds above that Kubernetes does not have, from the module zips
// of the versions tools/crds/go.mod pins (fetched into the module cache by `go mod download`).
var crdFiles = map[string][]string{
	"github.com/cert-manager/cert-manager": {"deploy/crds/cert-manager.io_certificates.yaml",
		"deploy/crds/cert-manager.io_issuers.yaml"},
	"github.com/prometheus-operator/prometheus-operator": {"example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml",
		"example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml",
		"example/prometheus-operator-crd/monitoring.coreos.com_podmonitors.yaml"},
}

// installCRDs creates the pinned CRDs on k and waits, within a deadline, until each is
// established (served).
func installCRDs(t *testing.T, k *testbed.KubeAPI) {
	t.Helper()
	mod, err := os.ReadFile(filepath.Join("..", "tools", "crds", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	for module, files := range crdFiles {
		m := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(module) + `\s+(v\S+)`).FindSubmatch(mod)
		if m == nil {
			t.Fatalf("tools/crds/go.mod pins no version of %s", module)
		}
		out, err := exec.Command("go", "mod", "download", "-json", module+"@"+string(m[1])).Output()
		if err != nil {
			t.Fatalf("go mod download %s@%s: %v", module, m[1], err)
		}
		var dl struct{ Dir, Error string }
		if err := json.Unmarshal(out, &dl); err != nil || dl.Dir == "" {
			t.Fatalf("go mod download %s@%s: %v %s", module, m[1], err, dl.Error)
		}
		for _, f := range files {
			raw, err := os.ReadFile(filepath.Join(dl.Dir, f))
			if err != nil {
				t.Fatal(err)
			}
			var crd map[string]any
			if err := yaml.Unmarshal(raw, &crd); err != nil {
				t.Fatalf("decode %s: %v", f, err)
			}
			if err := k.Do(t.Context(), "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd, nil); err != nil {
				t.Fatalf("create CRD %s: %v", f, err)
			}
			name := crd["metadata"].(map[string]any)["name"].(string)
			waitEstablished(t, k, name)
		}
	}
}

// waitEstablished polls the CRD's status, every 50 ms for at most 30 s: the API server gives no
// other signal that it serves the new kind.
func waitEstablished(t *testing.T, k *testbed.KubeAPI, name string) {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(30 * time.Second)
	for {
		var crd struct {
			Status struct {
				Conditions []struct{ Type, Status string } `json:"conditions"`
			} `json:"status"`
		}
		if err := k.Do(t.Context(), "GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"+name, nil, &crd); err != nil {
			t.Fatal(err)
		}
		for _, c := range crd.Status.Conditions {
			if c.Type == "Established" && c.Status == "True" {
				return
			}
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("CRD %s not established within 30 s", name)
		}
	}
}

// TestRenderedAcceptedByAPIServer dry-runs every object of the default and the full render
// against a real API server with strict field validation, which rejects unknown or misplaced
// fields that lint misses; the cert-manager and prometheus-operator kinds are checked against
// their real CRDs.
func TestRenderedAcceptedByAPIServer(t *testing.T) {
	const ns = "credsidecar-system"
	k := testbed.StartKubeAPIForTest(t, testbed.KubeAPIOptions{})
	ctx := t.Context()
	nsObj := map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns}}
	if err := k.Do(ctx, "POST", "/api/v1/namespaces", nsObj, nil); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	installCRDs(t, k)
	kinds := map[string]bool{}
	for _, c := range cases {
		out, err := helm(t, append([]string{"template", "credsidecar", "credsidecar", "--namespace", ns}, c.values...)...)
		if err != nil {
			t.Fatalf("helm template (%s values): %v\n%s", c.name, err, out)
		}
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
				t.Errorf("dry-run create %s (%s values): %v", kind, c.name, err)
			}
			kinds[kind] = true
		}
	}
	for _, want := range []string{"Deployment", "MutatingWebhookConfiguration", "Certificate", "PrometheusRule", "ConfigMap", "Secret",
		"ServiceMonitor", "PodMonitor"} {
		if !kinds[want] {
			t.Errorf("no %s among the rendered objects: the renders no longer cover it", want)
		}
	}
}
