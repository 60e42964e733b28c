package manifests

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// podMonitor is what the tests read from a monitoring.coreos.com/v1 PodMonitor. There is no Go
// type for it in this module's dependencies, so decodePodMonitor checks the unstructured object
// against the fields this project uses and rejects anything else.
type podMonitor struct {
	Meta      metav1.ObjectMeta
	Selector  metav1.LabelSelector
	Endpoints []podMetricsEndpoint
}

type podMetricsEndpoint struct {
	Port, Path, Interval, Scheme string
}

// podMonitorFields lists, per path, the keys a PodMonitor here may have.
func podMonitorFields() map[string][]string {
	return map[string][]string{
		"":                           {"apiVersion", "kind", "metadata", "spec"},
		"spec":                       {"selector", "podMetricsEndpoints", "namespaceSelector"},
		"spec.selector":              {"matchLabels", "matchExpressions"},
		"spec.namespaceSelector":     {"any", "matchNames"},
		"spec.podMetricsEndpoints[]": {"port", "path", "interval", "scheme"},
	}
}

func checkKeys(m map[string]any, path string, allowed map[string][]string) error {
	ok := allowed[path]
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !slices.Contains(ok, k) {
			return fmt.Errorf("unknown field %q in %s (known: %s)", k, orRoot(path), strings.Join(ok, ", "))
		}
	}
	return nil
}

func orRoot(p string) string {
	if p == "" {
		return "the object"
	}
	return p
}

func decodePodMonitor(doc []byte) (*podMonitor, error) {
	j, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return nil, err
	}
	var u unstructured.Unstructured
	if err := u.UnmarshalJSON(j); err != nil {
		return nil, err
	}
	allowed := podMonitorFields()
	obj := u.UnstructuredContent()
	if err := checkKeys(obj, "", allowed); err != nil {
		return nil, err
	}
	pm := &podMonitor{}
	meta, _, _ := unstructured.NestedMap(obj, "metadata")
	if err := strictFromMap(meta, &pm.Meta); err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	spec, found, err := unstructured.NestedMap(obj, "spec")
	if err != nil || !found {
		return nil, fmt.Errorf("spec missing or not a map: %v", err)
	}
	if err := checkKeys(spec, "spec", allowed); err != nil {
		return nil, err
	}
	for _, sub := range []string{"selector", "namespaceSelector"} {
		if m, ok := spec[sub].(map[string]any); ok {
			if err := checkKeys(m, "spec."+sub, allowed); err != nil {
				return nil, err
			}
		}
	}
	sel, _, _ := unstructured.NestedMap(spec, "selector")
	if err := strictFromMap(sel, &pm.Selector); err != nil {
		return nil, fmt.Errorf("spec.selector: %w", err)
	}
	eps, found, err := unstructured.NestedSlice(spec, "podMetricsEndpoints")
	if err != nil || !found {
		return nil, fmt.Errorf("spec.podMetricsEndpoints missing or not a list: %v", err)
	}
	for i, e := range eps {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("spec.podMetricsEndpoints[%d] is not a map", i)
		}
		if err := checkKeys(m, "spec.podMetricsEndpoints[]", allowed); err != nil {
			return nil, err
		}
		var ep podMetricsEndpoint
		for field, dst := range map[string]*string{"port": &ep.Port, "path": &ep.Path, "interval": &ep.Interval, "scheme": &ep.Scheme} {
			if v, ok := m[field]; ok {
				s, isString := v.(string)
				if !isString {
					return nil, fmt.Errorf("spec.podMetricsEndpoints[%d].%s is %T, want a string", i, field, v)
				}
				*dst = s
			}
		}
		pm.Endpoints = append(pm.Endpoints, ep)
	}
	return pm, nil
}

// strictFromMap decodes an unstructured map into a typed value, strictly.
func strictFromMap(m map[string]any, v any) error {
	b, err := yaml.Marshal(m)
	if err != nil {
		return err
	}
	return strictUnmarshal(b, v)
}
