package charts

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/credsidecar/credsidecar/internal/testkit/testbed"
)

var (
	declaredName = regexp.MustCompile(`Name:\s*"(credsidecar_\w+)"`)
	usedName     = regexp.MustCompile(`credsidecar_\w+`)
)

// declaredMetrics reads the metric names the sidecar and the webhook declare in their source, so
// a renamed metric breaks this test instead of silently emptying a panel or an alert.
func declaredMetrics(t *testing.T) map[string]bool {
	t.Helper()
	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatalf("repo root: %v", err)
	}
	names := map[string]bool{}
	for _, dir := range []string{"internal/metrics", "internal/webhook"} {
		files, err := filepath.Glob(filepath.Join(root, dir, "*.go"))
		if err != nil {
			t.Fatalf("list %s: %v", dir, err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatalf("read %s: %v", f, err)
			}
			for _, m := range declaredName.FindAllStringSubmatch(string(b), -1) {
				names[m[1]] = true
			}
		}
	}
	if !names["credsidecar_ready"] || !names["credsidecar_webhook_admissions_total"] {
		t.Fatalf("declared metrics look incomplete: %v", names)
	}
	return names
}

// checkNames fails for every credsidecar_ name in expr that no package declares (histogram series
// are matched by their family name).
func checkNames(t *testing.T, where, expr string, declared map[string]bool) {
	t.Helper()
	for _, n := range usedName.FindAllString(expr, -1) {
		base := n
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if strings.HasSuffix(n, suf) && declared[strings.TrimSuffix(n, suf)] {
				base = strings.TrimSuffix(n, suf)
			}
		}
		if !declared[base] {
			t.Errorf("%s: metric %s is not declared in internal/metrics or internal/webhook", where, n)
		}
	}
}

func TestDashboardMetricsExist(t *testing.T) {
	declared := declaredMetrics(t)
	b, err := os.ReadFile("credsidecar/files/dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	if d.Title == "" || len(d.Panels) == 0 {
		t.Fatalf("dashboard has no title or no panels")
	}
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if !usedName.MatchString(tg.Expr) {
				t.Errorf("panel %q: query %q names no credsidecar metric", p.Title, tg.Expr)
			}
			checkNames(t, "panel "+p.Title, tg.Expr, declared)
		}
	}
}

func TestAlertMetricsExist(t *testing.T) {
	declared := declaredMetrics(t)
	b, err := os.ReadFile("credsidecar/files/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	checkNames(t, "alerts.yaml", string(b), declared)
}
