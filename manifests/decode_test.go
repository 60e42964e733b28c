package manifests

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	kusttypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/credsidecar/credsidecar/internal/testkit/goldenfile"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// objects is a decoded set of manifests, by kind and name.
type objects struct {
	ServiceAccounts     map[string]*corev1.ServiceAccount
	ConfigMaps          map[string]*corev1.ConfigMap
	Deployments         map[string]*appsv1.Deployment
	StatefulSets        map[string]*appsv1.StatefulSet
	Jobs                map[string]*batchv1.Job
	CronJobs            map[string]*batchv1.CronJob
	ClusterRoleBindings map[string]*rbacv1.ClusterRoleBinding
	PodMonitors         map[string]*podMonitor
	Kustomizations      []*kusttypes.Kustomization
	count               int
}

func newObjects() *objects {
	return &objects{
		ServiceAccounts:     map[string]*corev1.ServiceAccount{},
		ConfigMaps:          map[string]*corev1.ConfigMap{},
		Deployments:         map[string]*appsv1.Deployment{},
		StatefulSets:        map[string]*appsv1.StatefulSet{},
		Jobs:                map[string]*batchv1.Job{},
		CronJobs:            map[string]*batchv1.CronJob{},
		ClusterRoleBindings: map[string]*rbacv1.ClusterRoleBinding{},
		PodMonitors:         map[string]*podMonitor{},
	}
}

// splitDocs splits a YAML stream into its documents, dropping those with nothing but comments.
func splitDocs(b []byte) ([][]byte, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var docs [][]byte
	for {
		d, err := r.Read()
		if err == io.EOF {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		var v any
		if err := yaml.Unmarshal(d, &v); err != nil {
			return nil, err
		}
		if v != nil {
			docs = append(docs, d)
		}
	}
}

// strictUnmarshal decodes YAML into v, failing on unknown fields, duplicate fields and fields
// whose case differs from the Go type's JSON name (encoding/json would accept those).
func strictUnmarshal(doc []byte, v any) error {
	j, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return fmt.Errorf("yaml to json: %w", err)
	}
	strictErrs, err := sigsjson.UnmarshalStrict(j, v)
	if err != nil {
		return err
	}
	if len(strictErrs) > 0 {
		return fmt.Errorf("strict decoding: %v", strictErrs)
	}
	return nil
}

// add decodes one document into the Go type its apiVersion and kind name.
func (o *objects) add(doc []byte) error {
	var tm struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Metadata   metav1.ObjectMeta `json:"metadata"`
	}
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return fmt.Errorf("read type: %w", err)
	}
	name := tm.Metadata.Name
	var err error
	switch tm.APIVersion + "/" + tm.Kind {
	case "v1/ServiceAccount":
		v := &corev1.ServiceAccount{}
		err, o.ServiceAccounts[name] = strictUnmarshal(doc, v), v
	case "v1/ConfigMap":
		v := &corev1.ConfigMap{}
		err, o.ConfigMaps[name] = strictUnmarshal(doc, v), v
	case "apps/v1/Deployment":
		v := &appsv1.Deployment{}
		err, o.Deployments[name] = strictUnmarshal(doc, v), v
	case "apps/v1/StatefulSet":
		v := &appsv1.StatefulSet{}
		err, o.StatefulSets[name] = strictUnmarshal(doc, v), v
	case "batch/v1/Job":
		v := &batchv1.Job{}
		err, o.Jobs[name] = strictUnmarshal(doc, v), v
	case "batch/v1/CronJob":
		v := &batchv1.CronJob{}
		err, o.CronJobs[name] = strictUnmarshal(doc, v), v
	case "rbac.authorization.k8s.io/v1/ClusterRoleBinding":
		v := &rbacv1.ClusterRoleBinding{}
		err, o.ClusterRoleBindings[name] = strictUnmarshal(doc, v), v
	case "monitoring.coreos.com/v1/PodMonitor":
		var v *podMonitor
		v, err = decodePodMonitor(doc)
		o.PodMonitors[name] = v
	case "kustomize.config.k8s.io/v1beta1/Kustomization", "kustomize.config.k8s.io/v1alpha1/Component":
		v := &kusttypes.Kustomization{}
		err = strictUnmarshal(doc, v)
		o.Kustomizations = append(o.Kustomizations, v)
	default:
		return fmt.Errorf("no Go type for %s %s", tm.APIVersion, tm.Kind)
	}
	if err != nil {
		return fmt.Errorf("%s %s %q: %w", tm.APIVersion, tm.Kind, name, err)
	}
	o.count++
	return nil
}

func decodeAll(t *testing.T, stream []byte) *objects {
	t.Helper()
	o := newObjects()
	docs, err := splitDocs(stream)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		if err := o.add(d); err != nil {
			t.Fatal(err)
		}
	}
	return o
}

// render runs kustomize build on dir in-process, as `kubectl apply -k` would.
func render(t *testing.T, dir string) []byte {
	t.Helper()
	out, err := build(dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	return out
}

func build(dir string) ([]byte, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, err
	}
	return m.AsYaml()
}

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	goldenfile.Check(t, filepath.Join("testdata", name), got, *update)
}

// TestEveryManifestDecodesStrictly decodes every YAML file under manifests/ (fixtures and
// kustomizations included) into its Go type, so a misspelt or misplaced field fails here
// instead of being dropped by the API server.
func TestEveryManifestDecodesStrictly(t *testing.T) {
	var files []string
	err := filepath.WalkDir(".", func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 12 {
		t.Fatalf("found only %d YAML files: %v", len(files), files)
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			o := decodeAll(t, raw)
			if o.count == 0 {
				t.Fatal("no object in file")
			}
		})
	}
}

func TestStrictDecodingRejects(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{
			name: "unknown field",
			doc:  "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: x\nautomountToken: false\n",
			want: "unknown field",
		},
		{
			name: "field with the wrong case",
			doc:  "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: x\nAutomountServiceAccountToken: false\n",
			want: "unknown field",
		},
		{
			name: "restartPolicy on the wrong level",
			doc:  "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: x\nspec:\n  template:\n    spec:\n      containers:\n        - name: a\n          image: b\n          restartPolicyX: Always\n",
			want: "unknown field",
		},
		{
			name: "unknown kind",
			doc:  "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\n",
			want: "no Go type",
		},
		{
			name: "unknown PodMonitor field",
			doc:  "apiVersion: monitoring.coreos.com/v1\nkind: PodMonitor\nmetadata:\n  name: x\nspec:\n  selector: {}\n  podMetricsEndpoints:\n    - port: metrics\n      portNumber: 9912\n",
			want: "unknown field",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := newObjects().add([]byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("add = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestRenderedManifestsMatchGolden(t *testing.T) {
	tests := []struct {
		name, dir, golden string
	}{
		{name: "sample job", dir: ".", golden: "sample-job.golden"},
		{name: "monitoring", dir: "monitoring", golden: "monitoring.golden"},
		{name: "example deployment", dir: "examples/deployment", golden: "example-deployment.golden"},
		{name: "example legacy token", dir: "examples/legacy-token", golden: "example-legacy-token.golden"},
		{name: "example several roles", dir: "examples/several-roles", golden: "example-several-roles.golden"},
		{name: "issuer publish", dir: "issuer-publish", golden: "issuer-publish.golden"},
		{name: "component on every kind", dir: "testdata/component-kinds", golden: "component-kinds.golden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := render(t, tt.dir)
			// The output must itself decode strictly: kustomize can produce fields the API rejects.
			decodeAll(t, out)
			golden(t, tt.golden, out)
		})
	}
}
