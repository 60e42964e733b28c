package manifests

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	sigsjson "sigs.k8s.io/json"
)

// policy is an IAM policy document as the templates write it: every Action and Resource a list.
type policy struct {
	Version   string
	Statement []struct {
		Sid       string
		Effect    string
		Principal map[string]string `json:",omitempty"`
		Action    []string
		Resource  []string                     `json:",omitempty"`
		Condition map[string]map[string]string `json:",omitempty"`
	}
}

// placeholderRE matches ${NAME}; the templates use nothing else that looks like a variable.
func placeholderRE() *regexp.Regexp { return regexp.MustCompile(`\$\{([A-Za-z0-9_]*)\}`) }

// substitute fills a template the way envsubst does, but refuses unknown or leftover names.
func substitute(tmpl string, vars map[string]string) (string, []string, error) {
	var used []string
	var missing []string
	out := placeholderRE().ReplaceAllStringFunc(tmpl, func(m string) string {
		name := m[2 : len(m)-1]
		v, ok := vars[name]
		if !ok {
			missing = append(missing, name)
			return m
		}
		if !slices.Contains(used, name) {
			used = append(used, name)
		}
		return v
	})
	if len(missing) > 0 {
		return "", nil, fmt.Errorf("no value for %v", missing)
	}
	if strings.Contains(out, "${") || strings.Contains(out, "$") {
		return "", nil, fmt.Errorf("a '$' is left after substitution")
	}
	sort.Strings(used)
	return out, used, nil
}

func strictPolicy(t *testing.T, doc string) policy {
	t.Helper()
	var p policy
	// Case-sensitive, no unknown or duplicate keys: IAM rejects "action" and "Action" twice.
	strictErrs, err := sigsjson.UnmarshalStrict([]byte(doc), &p)
	if err != nil || len(strictErrs) > 0 {
		t.Fatalf("not a policy document: %v %v\n%s", err, strictErrs, doc)
	}
	if p.Version != "2012-10-17" {
		t.Errorf("Version %q, want 2012-10-17 (older versions ignore policy variables)", p.Version)
	}
	return p
}

func TestIAMPolicyTemplates(t *testing.T) {
	// The sample Job decides the namespace, service account and token audience; the trust
	// policy must accept exactly those.
	job := decodeAll(t, render(t, ".")).Jobs["s3-upload-test"]
	pod := job.Spec.Template.Spec
	var audience string
	for _, v := range pod.Volumes {
		if v.Name == tokenVolume {
			audience = v.Projected.Sources[0].ServiceAccountToken.Audience
		}
	}
	provider := strings.TrimPrefix(audience, "https://")
	vars := map[string]string{
		"ACCOUNT_ID":      "111122223333",
		"OIDC_PROVIDER":   provider,
		"NAMESPACE":       job.Namespace,
		"SERVICE_ACCOUNT": pod.ServiceAccountName,
		"BUCKET":          "credsidecar-test",
	}

	t.Run("trust policy", func(t *testing.T) {
		raw, err := os.ReadFile(filepath.Join("iam", "trust-policy.json"))
		if err != nil {
			t.Fatal(err)
		}
		doc, used, err := substitute(string(raw), vars)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"ACCOUNT_ID", "NAMESPACE", "OIDC_PROVIDER", "SERVICE_ACCOUNT"}; !reflect.DeepEqual(used, want) {
			t.Errorf("placeholders %v, want %v", used, want)
		}
		p := strictPolicy(t, doc)
		if len(p.Statement) != 1 {
			t.Fatalf("%d statements, want 1", len(p.Statement))
		}
		st := p.Statement[0]
		if st.Effect != "Allow" || !reflect.DeepEqual(st.Action, []string{"sts:AssumeRoleWithWebIdentity"}) {
			t.Errorf("statement %s %v, want Allow sts:AssumeRoleWithWebIdentity only", st.Effect, st.Action)
		}
		if got, want := st.Principal["Federated"], "arn:aws:iam::111122223333:oidc-provider/"+provider; got != want || len(st.Principal) != 1 {
			t.Errorf("principal %v, want Federated %s", st.Principal, want)
		}
		wantCond := map[string]map[string]string{"StringEquals": {
			provider + ":sub": "system:serviceaccount:" + job.Namespace + ":" + pod.ServiceAccountName,
			provider + ":aud": audience,
		}}
		if !reflect.DeepEqual(st.Condition, wantCond) {
			t.Errorf("condition %v,\nwant %v", st.Condition, wantCond)
		}
		golden(t, "trust-policy.golden", []byte(doc))
	})

	t.Run("permission policy", func(t *testing.T) {
		raw, err := os.ReadFile(filepath.Join("iam", "permission-policy.json"))
		if err != nil {
			t.Fatal(err)
		}
		doc, used, err := substitute(string(raw), vars)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(used, []string{"BUCKET"}) {
			t.Errorf("placeholders %v, want [BUCKET]", used)
		}
		p := strictPolicy(t, doc)
		grants := map[string][]string{}
		for _, st := range p.Statement {
			if st.Effect != "Allow" || len(st.Principal) != 0 || len(st.Condition) != 0 {
				t.Errorf("statement %s: want a plain Allow", st.Sid)
			}
			for _, r := range st.Resource {
				grants[r] = append(grants[r], st.Action...)
			}
		}
		for r := range grants {
			sort.Strings(grants[r])
		}
		want := map[string][]string{
			"arn:aws:s3:::credsidecar-test/*": {"s3:AbortMultipartUpload", "s3:DeleteObject", "s3:GetObject", "s3:PutObject"},
			"arn:aws:s3:::credsidecar-test":   {"s3:ListBucket"},
		}
		if !reflect.DeepEqual(grants, want) {
			t.Errorf("grants %v,\nwant   %v", grants, want)
		}
		golden(t, "permission-policy.golden", []byte(doc))
	})
}

func TestSubstituteRefuses(t *testing.T) {
	tests := []struct {
		name, tmpl string
	}{
		{name: "unknown placeholder", tmpl: `{"a":"${ACOUNT_ID}"}`},
		{name: "bare dollar left", tmpl: `{"a":"$BUCKET"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if out, _, err := substitute(tt.tmpl, map[string]string{"BUCKET": "b"}); err == nil {
				t.Fatalf("substitute = %q, want an error", out)
			}
		})
	}
	if out, used, err := substitute(`{"a":"${BUCKET}/${BUCKET}"}`, map[string]string{"BUCKET": "b"}); err != nil || out != `{"a":"b/b"}` || !reflect.DeepEqual(used, []string{"BUCKET"}) {
		t.Fatalf("substitute = %q %v %v, want {\"a\":\"b/b\"} [BUCKET]", out, used, err)
	}
}
