package charts

import (
	"flag"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/credsidecar/credsidecar/internal/testkit/goldenfile"
	"github.com/credsidecar/credsidecar/internal/testkit/testbed"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// helmBin finds the helm that `make helm` caches; the tests fail, not skip, without it, as the
// gate's other binaries do.
func helmBin(t *testing.T) string {
	t.Helper()
	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatalf("repo root: %v", err)
	}
	p := filepath.Join(root, ".cache", "bin", "helm")
	if _, err := exec.LookPath(p); err != nil {
		t.Fatalf("helm missing at %s: run `make helm`: %v", p, err)
	}
	return p
}

func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(helmBin(t), args...).CombinedOutput()
	return string(out), err
}

var cases = []struct {
	name   string
	values []string
}{
	{name: "default", values: nil},
	{name: "full", values: []string{"-f", "testdata/full-values.yaml"}},
}

func TestLintStrict(t *testing.T) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := helm(t, append([]string{"lint", "--strict", "credsidecar"}, tc.values...)...)
			if err != nil {
				t.Fatalf("helm lint --strict: %v\n%s", err, out)
			}
		})
	}
}

func TestSchemaRejects(t *testing.T) {
	tests := []struct {
		name, set, want string
	}{
		{name: "unknown key", set: "bogus=1", want: "additional properties 'bogus' not allowed"},
		{name: "wrong type", set: "replicaCount=two", want: "/replicaCount"},
		{name: "bad enum", set: "webhook.failurePolicy=Never", want: "/webhook/failurePolicy"},
		{name: "nested unknown key", set: "tls.certManager.issuer=x", want: "additional properties 'issuer' not allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := helm(t, "lint", "--strict", "credsidecar", "--set", tc.set)
			if err == nil {
				t.Fatalf("helm lint accepted --set %s:\n%s", tc.set, out)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("helm lint --set %s: output does not name %q:\n%s", tc.set, tc.want, out)
			}
		})
	}
}

// generated masks the material helm generates afresh on each render, so the golden file pins
// everything else.
var generated = regexp.MustCompile(`(?m)^(\s*(?:ca\.crt|tls\.crt|tls\.key|caBundle|checksum/tls):) \S+$`)

func TestTemplateGolden(t *testing.T) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := helm(t, append([]string{"template", "credsidecar", "credsidecar", "--namespace", "credsidecar-system"}, tc.values...)...)
			if err != nil {
				t.Fatalf("helm template: %v\n%s", err, out)
			}
			if tc.name == "default" && !generated.MatchString(out) {
				t.Fatalf("generated TLS material not found in:\n%s", out)
			}
			got := generated.ReplaceAllString(out, "$1 GENERATED")
			goldenfile.Check(t, filepath.Join("testdata", tc.name+".golden"), []byte(got), *update)
		})
	}
}

func promtoolBin(t *testing.T) string {
	t.Helper()
	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatalf("repo root: %v", err)
	}
	p := filepath.Join(root, ".cache", "bin", "promtool")
	if _, err := exec.LookPath(p); err != nil {
		t.Fatalf("promtool missing at %s: run `make promtool`: %v", p, err)
	}
	return p
}

// TestAlertRules checks the shipped rules and runs their unit tests (firing and quiet cases).
func TestAlertRules(t *testing.T) {
	for _, args := range [][]string{
		{"check", "rules", "credsidecar/files/alerts.yaml"},
		{"test", "rules", "testdata/alerts_test.yaml"},
	} {
		t.Run(strings.Join(args[:2], " "), func(t *testing.T) {
			out, err := exec.Command(promtoolBin(t), args...).CombinedOutput()
			if err != nil {
				t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		})
	}
}
