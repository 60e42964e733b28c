package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/credsidecar/credsidecar/internal/config"
)

const role = "arn:aws:iam::111122223333:role/app"

func defaults() Defaults {
	return Defaults{
		Image: "ghcr.io/credsidecar/credsidecar:0.2.0", Audience: "https://issuer.example/", Region: "eu-west-1",
		TokenExpiration: time.Hour, CPURequest: resource.MustParse("10m"), MemoryRequest: resource.MustParse("32Mi"),
		MemoryLimit: resource.MustParse("64Mi"),
	}
}

func sa(ann map[string]string) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "app", Annotations: ann}}
}

func TestSettingsFor(t *testing.T) {
	tests := []struct {
		name    string
		ann     map[string]string
		d       func(*Defaults)
		want    Settings
		wantErr string // a part of the error; "" for none
	}{
		{name: "role only", ann: map[string]string{AnnotationRoleARN: role},
			want: Settings{RoleARN: role, Audience: "https://issuer.example/", Region: "eu-west-1", TokenExpiration: time.Hour}},
		{name: "every annotation", ann: map[string]string{AnnotationRoleARN: role, AnnotationAudience: "aud-x",
			AnnotationRegion: "us-east-2", AnnotationSTSEndpoint: "https://sts.us-east-2.amazonaws.com",
			AnnotationTokenExpiration: "7200", AnnotationSessionDuration: "2h"},
			want: Settings{RoleARN: role, Audience: "aud-x", Region: "us-east-2", STSEndpoint: "https://sts.us-east-2.amazonaws.com",
				TokenExpiration: 2 * time.Hour, SessionDuration: 2 * time.Hour}},
		{name: "IRSA annotations", ann: map[string]string{IRSARoleARN: role, IRSAAudience: "sts.amazonaws.com",
			IRSATokenExpiration: "86400", IRSASTSRegionalEndpoint: "true"},
			want: Settings{RoleARN: role, Audience: "sts.amazonaws.com", Region: "eu-west-1", TokenExpiration: 24 * time.Hour}},
		{name: "credsidecar wins over IRSA", ann: map[string]string{IRSARoleARN: "arn:aws:iam::111122223333:role/old",
			AnnotationRoleARN: role}, want: Settings{RoleARN: role, Audience: "https://issuer.example/", Region: "eu-west-1",
			TokenExpiration: time.Hour}},
		{name: "no role", ann: map[string]string{AnnotationRegion: "eu-west-1"},
			wantErr: "serviceaccount team/app: annotation credsidecar.io/role-arn: required"},
		{name: "bad role", ann: map[string]string{AnnotationRoleARN: "arn:aws:iam::1:role/x"},
			wantErr: `annotation credsidecar.io/role-arn="arn:aws:iam::1:role/x": not an IAM role ARN`},
		{name: "bad IRSA role names the IRSA key", ann: map[string]string{IRSARoleARN: "role/x"},
			wantErr: `annotation eks.amazonaws.com/role-arn="role/x"`},
		{name: "two audiences", ann: map[string]string{AnnotationRoleARN: role, AnnotationAudience: "a,b"},
			wantErr: `credsidecar.io/audience="a,b": one audience`},
		{name: "no audience anywhere", ann: map[string]string{AnnotationRoleARN: role}, d: func(d *Defaults) { d.Audience = "" },
			wantErr: "annotation credsidecar.io/audience: required"},
		{name: "no region anywhere", ann: map[string]string{AnnotationRoleARN: role}, d: func(d *Defaults) { d.Region = "" },
			wantErr: "annotation credsidecar.io/region: required"},
		{name: "endpoint without region", ann: map[string]string{AnnotationRoleARN: role, AnnotationSTSEndpoint: "https://sts.example"},
			d: func(d *Defaults) { d.Region = "" }, want: Settings{RoleARN: role, Audience: "https://issuer.example/",
				STSEndpoint: "https://sts.example", TokenExpiration: time.Hour}},
		{name: "plain http endpoint", ann: map[string]string{AnnotationRoleARN: role, AnnotationSTSEndpoint: "http://sts.example"},
			wantErr: `credsidecar.io/sts-endpoint="http://sts.example": must be an https URL`},
		{name: "plain http to loopback", ann: map[string]string{AnnotationRoleARN: role, AnnotationSTSEndpoint: "http://127.0.0.1:8333"},
			want: Settings{RoleARN: role, Audience: "https://issuer.example/", Region: "eu-west-1", STSEndpoint: "http://127.0.0.1:8333",
				TokenExpiration: time.Hour}},
		{name: "bad region", ann: map[string]string{AnnotationRoleARN: role, AnnotationRegion: "EU_WEST"},
			wantErr: `credsidecar.io/region="EU_WEST"`},
		{name: "short token", ann: map[string]string{AnnotationRoleARN: role, AnnotationTokenExpiration: "599"},
			wantErr: `credsidecar.io/token-expiration="599": must be whole seconds from 600`},
		{name: "short session", ann: map[string]string{AnnotationRoleARN: role, AnnotationSessionDuration: "900"},
			wantErr: `credsidecar.io/session-duration="900": must be whole seconds or a duration from 1h to 12h`},
		{name: "bad regional flag", ann: map[string]string{AnnotationRoleARN: role, IRSASTSRegionalEndpoint: "yes"},
			wantErr: `eks.amazonaws.com/sts-regional-endpoints="yes"`},
		{name: "named roles beside the unnamed one, sorted", ann: map[string]string{AnnotationRoleARN: role,
			AnnotationRoles: "writer=" + writerARN + ", reader=" + readerARN},
			want: Settings{RoleARN: role, Roles: []config.Role{{Name: "reader", ARN: readerARN}, {Name: "writer", ARN: writerARN}},
				Audience: "https://issuer.example/", Region: "eu-west-1", TokenExpiration: time.Hour}},
		{name: "named roles only", ann: map[string]string{AnnotationRoles: "reader=" + readerARN},
			want: Settings{Roles: []config.Role{{Name: "reader", ARN: readerARN}}, Audience: "https://issuer.example/",
				Region: "eu-west-1", TokenExpiration: time.Hour}},
		{name: "named role with a bad name", ann: map[string]string{AnnotationRoles: "Reader=" + readerARN},
			wantErr: `annotation credsidecar.io/roles="Reader=` + readerARN + `": role name "Reader": want 1 to 32 of a-z, 0-9 and -`},
		{name: "named role with a bad ARN", ann: map[string]string{AnnotationRoles: "reader=arn:aws:s3:::b"},
			wantErr: `annotation credsidecar.io/roles="reader=arn:aws:s3:::b": role "reader": "arn:aws:s3:::b" is not an IAM role ARN`},
		{name: "named role twice", ann: map[string]string{AnnotationRoles: "reader=" + readerARN + ",reader=" + writerARN},
			wantErr: `role "reader" is named twice`},
		{name: "named role without an ARN", ann: map[string]string{AnnotationRoles: "reader"},
			wantErr: `annotation credsidecar.io/roles="reader": "reader": want NAME=ARN`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := defaults()
			if tt.d != nil {
				tt.d(&d)
			}
			got, err := SettingsFor(sa(tt.ann), d)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("settings\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

const (
	readerARN = "arn:aws:iam::111122223333:role/reader"
	writerARN = "arn:aws:iam::444455556666:role/writer"
)

func pod(ann map[string]string, containers ...string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "p", Labels: map[string]string{LabelInject: "true"},
		Annotations: ann}, Spec: corev1.PodSpec{ServiceAccountName: "app",
		InitContainers: []corev1.Container{{Name: "migrate", Image: "m"}}}}
	for _, c := range containers {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: c, Image: c})
	}
	return p
}

func envOf(c corev1.Container, name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value, true
		}
	}
	return "", false
}

func TestInject(t *testing.T) {
	s := Settings{RoleARN: role, Audience: "https://issuer.example/", Region: "eu-west-1", TokenExpiration: time.Hour}
	t.Run("layout", func(t *testing.T) {
		p := pod(nil, "app", "shipper")
		p.Spec.Containers[1].Env = []corev1.EnvVar{{Name: "AWS_ACCESS_KEY_ID", Value: "AKIA"}}
		warnings, err := Inject(p, s, defaults())
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Spec.InitContainers) != 2 || p.Spec.InitContainers[0].Name != SidecarName || p.Spec.InitContainers[1].Name != "migrate" {
			t.Fatalf("init containers %v, want the sidecar first, then migrate", names(p.Spec.InitContainers))
		}
		sc := p.Spec.InitContainers[0]
		if sc.RestartPolicy == nil || *sc.RestartPolicy != corev1.ContainerRestartPolicyAlways || sc.StartupProbe == nil ||
			sc.StartupProbe.HTTPGet.Path != "/readyz" {
			t.Errorf("sidecar is not a native sidecar with a /readyz startup probe: %+v", sc)
		}
		if v, _ := envOf(sc, "AWS_ROLE_ARN"); v != role {
			t.Errorf("sidecar AWS_ROLE_ARN %q, want %q", v, role)
		}
		if *sc.SecurityContext.RunAsUser != SidecarUID || *sc.SecurityContext.RunAsGroup != SharedGID {
			t.Errorf("sidecar runs as %d:%d, want %d:%d", *sc.SecurityContext.RunAsUser, *sc.SecurityContext.RunAsGroup, SidecarUID, SharedGID)
		}
		for _, c := range p.Spec.Containers {
			if v, _ := envOf(c, "AWS_CONTAINER_CREDENTIALS_FULL_URI"); v != "http://127.0.0.1:9910/v1/credentials" {
				t.Errorf("%s: FULL_URI %q", c.Name, v)
			}
			if v, _ := envOf(c, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"); v != AuthTokenFile {
				t.Errorf("%s: token file %q", c.Name, v)
			}
			if slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == TokenVolume }) {
				t.Errorf("%s mounts the service-account token: only the sidecar may", c.Name)
			}
			if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
				return m.Name == AuthVolume && m.ReadOnly && m.MountPath == AuthDir
			}) {
				t.Errorf("%s lacks the read-only auth mount", c.Name)
			}
		}
		var tok *corev1.ServiceAccountTokenProjection
		for _, v := range p.Spec.Volumes {
			if v.Name == TokenVolume {
				tok = v.Projected.Sources[0].ServiceAccountToken
			}
		}
		if tok == nil || tok.Audience != s.Audience || *tok.ExpirationSeconds != 3600 {
			t.Errorf("token projection %+v, want audience %q, 3600 s", tok, s.Audience)
		}
		if len(warnings) != 2 || !strings.Contains(warnings[0], "container shipper sets AWS_ACCESS_KEY_ID") ||
			!strings.Contains(warnings[1], "fsGroup") {
			t.Errorf("warnings %q, want one for shipper's AWS_ACCESS_KEY_ID and one for the added fsGroup", warnings)
		}
		if p.Spec.SecurityContext.FSGroup == nil || *p.Spec.SecurityContext.FSGroup != SharedGID {
			t.Errorf("fsGroup %v, want %d", p.Spec.SecurityContext.FSGroup, SharedGID)
		}
		if !Injected(p) {
			t.Error("Injected = false after Inject")
		}
	})
	t.Run("container roles", func(t *testing.T) {
		rs := s
		rs.Roles = []config.Role{{Name: "reader", ARN: readerARN}, {Name: "writer", ARN: writerARN}}
		p := pod(map[string]string{AnnotationContainerRoles: "app=reader, loader=writer"}, "app", "loader", "shipper")
		if _, err := Inject(p, rs, defaults()); err != nil {
			t.Fatal(err)
		}
		for c, want := range map[int]string{0: "/v1/credentials/reader", 1: "/v1/credentials/writer", 2: "/v1/credentials"} {
			if v, _ := envOf(p.Spec.Containers[c], "AWS_CONTAINER_CREDENTIALS_FULL_URI"); v != "http://127.0.0.1:9910"+want {
				t.Errorf("%s: FULL_URI %q, want ...%s", p.Spec.Containers[c].Name, v, want)
			}
		}
		sc := p.Spec.InitContainers[0]
		if v, _ := envOf(sc, "CREDSIDECAR_ROLES"); v != "reader="+readerARN+",writer="+writerARN {
			t.Errorf("sidecar CREDSIDECAR_ROLES %q", v)
		}
		if v, _ := envOf(sc, "AWS_ROLE_ARN"); v != role {
			t.Errorf("sidecar AWS_ROLE_ARN %q, want the unnamed role %q", v, role)
		}
	})
	t.Run("named roles only: unnamed containers get nothing", func(t *testing.T) {
		rs := s
		rs.RoleARN, rs.Roles = "", []config.Role{{Name: "reader", ARN: readerARN}}
		p := pod(map[string]string{AnnotationContainerRoles: "app=reader"}, "app", "shipper")
		if _, err := Inject(p, rs, defaults()); err != nil {
			t.Fatal(err)
		}
		if v, _ := envOf(p.Spec.Containers[0], "AWS_CONTAINER_CREDENTIALS_FULL_URI"); v != "http://127.0.0.1:9910/v1/credentials/reader" {
			t.Errorf("app: FULL_URI %q", v)
		}
		if len(p.Spec.Containers[1].Env) != 0 || len(p.Spec.Containers[1].VolumeMounts) != 0 {
			t.Errorf("shipper, pointed at no role without an unnamed one, got env %v and mounts %v", p.Spec.Containers[1].Env,
				p.Spec.Containers[1].VolumeMounts)
		}
		if _, ok := envOf(p.Spec.InitContainers[0], "AWS_ROLE_ARN"); ok {
			t.Error("sidecar given AWS_ROLE_ARN without an unnamed role")
		}
	})
	t.Run("container roles refused", func(t *testing.T) {
		rs := s
		rs.Roles = []config.Role{{Name: "reader", ARN: readerARN}}
		only := rs
		only.RoleARN = ""
		for _, tt := range []struct {
			name string
			s    Settings
			ann  map[string]string
			want string
		}{
			{"unknown role", rs, map[string]string{AnnotationContainerRoles: "app=writer"},
				`pod annotation credsidecar.io/container-roles="app=writer": container "app" asks for role "writer", but serviceaccount team/app names the roles reader`},
			{"no roles at all", s, map[string]string{AnnotationContainerRoles: "app=reader"},
				`container "app" asks for role "reader", but serviceaccount team/app names no roles (credsidecar.io/roles)`},
			{"unknown container", rs, map[string]string{AnnotationContainerRoles: "loader=reader"},
				`no container "loader" in the pod (containers: app, shipper)`},
			{"skipped container", rs, map[string]string{AnnotationContainerRoles: "app=reader", AnnotationSkipContainers: "app"},
				`container "app" is left out by credsidecar.io/skip-containers or credsidecar.io/include-containers`},
			{"not a pair", rs, map[string]string{AnnotationContainerRoles: "app"}, `"app": want CONTAINER=ROLE`},
			{"imds without the unnamed role", only, map[string]string{AnnotationIMDS: "true"},
				`pod annotation credsidecar.io/imds=true: instance metadata serves the unnamed role only`},
		} {
			t.Run(tt.name, func(t *testing.T) {
				_, err := Inject(pod(tt.ann, "app", "shipper"), tt.s, defaults())
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("error %v, want one containing %q", err, tt.want)
				}
			})
		}
	})
	t.Run("skip, include, imds, sizing", func(t *testing.T) {
		gid := int64(3000)
		p := pod(map[string]string{AnnotationSkipContainers: "shipper", AnnotationIMDS: "true",
			AnnotationMemoryLimit: "128Mi", AnnotationCPURequest: "25m"}, "app", "shipper")
		p.Spec.SecurityContext = &corev1.PodSecurityContext{FSGroup: &gid}
		warnings, err := Inject(p, s, defaults())
		if err != nil {
			t.Fatal(err)
		}
		if len(warnings) != 0 {
			t.Errorf("warnings %q, want none", warnings)
		}
		if _, ok := envOf(p.Spec.Containers[1], "AWS_CONTAINER_CREDENTIALS_FULL_URI"); ok {
			t.Error("skipped container shipper got the credentials env")
		}
		if v, _ := envOf(p.Spec.Containers[0], "AWS_EC2_METADATA_SERVICE_ENDPOINT"); v != "http://127.0.0.1:9911/" {
			t.Errorf("IMDS endpoint %q, want http://127.0.0.1:9911/ (trailing slash for old botocore)", v)
		}
		sc := p.Spec.InitContainers[0]
		if !slices.Contains(sc.Args, "--imds-listen=127.0.0.1:9911") {
			t.Errorf("sidecar args %q lack --imds-listen", sc.Args)
		}
		if got := sc.Resources.Limits.Memory().String(); got != "128Mi" {
			t.Errorf("memory limit %s, want 128Mi", got)
		}
		if got := sc.Resources.Requests.Cpu().String(); got != "25m" {
			t.Errorf("cpu request %s, want 25m", got)
		}
		if *p.Spec.SecurityContext.FSGroup != 3000 {
			t.Errorf("the pod's own fsGroup was replaced: %d", *p.Spec.SecurityContext.FSGroup)
		}
	})
	refused := []struct {
		name string
		ann  map[string]string
		want string
	}{
		{"unknown include", map[string]string{AnnotationIncludeContainers: "ap"}, `credsidecar.io/include-containers="ap": no container "ap"`},
		{"unknown skip", map[string]string{AnnotationSkipContainers: "x"}, `no container "x" in the pod (containers: app)`},
		{"bad quantity", map[string]string{AnnotationMemoryRequest: "lots"}, `credsidecar.io/sidecar-memory-request="lots"`},
		{"limit below request", map[string]string{AnnotationMemoryLimit: "16Mi"}, "below the memory request 32Mi"},
		{"bad imds", map[string]string{AnnotationIMDS: "yes"}, `credsidecar.io/imds="yes": must be true or false`},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Inject(pod(tt.ann, "app"), s, defaults())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func names(cs []corev1.Container) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

// accounts is an in-memory ServiceAccounts for the handler's unit tests; the API-server tests
// use the real lookup.
type accounts map[string]*corev1.ServiceAccount

func (a accounts) ServiceAccount(_ context.Context, ns, name string) (*corev1.ServiceAccount, error) {
	if sa, ok := a[ns+"/"+name]; ok {
		return sa, nil
	}
	return nil, ErrNotFound
}

func review(t *testing.T, h http.Handler, p *corev1.Pod) *admissionv1.AdmissionResponse {
	t.Helper()
	raw, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{UID: types.UID("uid-1"), Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Operation: admissionv1.Create, Namespace: "team", Object: runtime.RawExtension{Raw: raw}},
	})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("POST", MutatePath, bytes.NewReader(body)))
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || out.Response == nil || out.Response.UID != "uid-1" {
		t.Fatalf("answer %s (%v): want a review echoing uid-1", w.Body, err)
	}
	return out.Response
}

func TestHandler(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := NewHandler(accounts{"team/app": sa(map[string]string{AnnotationRoleARN: role}), "team/bare": {
		ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "bare"}}}, defaults(), slog.New(slog.DiscardHandler), reg)

	p := pod(nil, "app")
	resp := review(t, h, p)
	if !resp.Allowed || resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
		t.Fatalf("response %+v, want allowed with a JSON patch", resp)
	}
	// The patch applied to the pod as sent gives what Inject gives.
	raw, _ := json.Marshal(p)
	patch, err := jsonpatch.DecodePatch(resp.Patch)
	if err != nil {
		t.Fatal(err)
	}
	patched, err := patch.Apply(raw)
	if err != nil {
		t.Fatalf("apply %s: %v", resp.Patch, err)
	}
	var got corev1.Pod
	if err := json.Unmarshal(patched, &got); err != nil {
		t.Fatal(err)
	}
	want := p.DeepCopy()
	s, _ := SettingsFor(sa(map[string]string{AnnotationRoleARN: role}), defaults())
	if _, err := Inject(want, s, defaults()); err != nil {
		t.Fatal(err)
	}
	wantRaw, _ := json.Marshal(want)
	gotRaw, _ := json.Marshal(&got)
	if !bytes.Equal(gotRaw, wantRaw) {
		t.Errorf("patched pod\n%s\nwant\n%s", gotRaw, wantRaw)
	}
	// Re-invocation: the patched pod is returned unchanged.
	if resp := review(t, h, &got); !resp.Allowed || resp.Patch != nil {
		t.Errorf("re-invocation: %+v, want allowed without a patch", resp)
	}
	// Not labelled: untouched.
	unlabelled := pod(nil, "app")
	unlabelled.Labels = nil
	if resp := review(t, h, unlabelled); !resp.Allowed || resp.Patch != nil {
		t.Errorf("unlabelled: %+v, want allowed without a patch", resp)
	}
	// No role annotation, or no ServiceAccount: refused with the reason.
	bare := pod(nil, "app")
	bare.Spec.ServiceAccountName = "bare"
	resp = review(t, h, bare)
	if resp.Allowed || !strings.Contains(resp.Result.Message, "serviceaccount team/bare: annotation credsidecar.io/role-arn: required") {
		t.Errorf("no role: %+v", resp.Result)
	}
	missing := pod(nil, "app")
	missing.Spec.ServiceAccountName = "ghost"
	resp = review(t, h, missing)
	if resp.Allowed || !strings.Contains(resp.Result.Message, "serviceaccount team/ghost does not exist") {
		t.Errorf("missing serviceaccount: %+v", resp.Result)
	}
	for result, want := range map[string]float64{ResultMutated: 1, ResultSkipped: 2, ResultRefused: 2, ResultError: 0} {
		if got := testutil.ToFloat64(h.total.WithLabelValues(result)); got != want {
			t.Errorf("admissions{result=%q} = %v, want %v", result, got, want)
		}
	}
	if n := testutil.CollectAndCount(h.latency); n != 1 {
		t.Errorf("latency histogram: %d series", n)
	}

	// Not a review at all.
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("POST", MutatePath, strings.NewReader("{")))
	if w.Code != http.StatusBadRequest || testutil.ToFloat64(h.total.WithLabelValues(ResultError)) != 1 {
		t.Errorf("bad body: status %d, errors %v", w.Code, testutil.ToFloat64(h.total.WithLabelValues(ResultError)))
	}
}
