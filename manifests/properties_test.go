package manifests

import (
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/credsidecar/credsidecar/internal/config"
)

// The contract between the manifests, the sidecar's flags and the SDKs (see PROTOCOL.md).
const (
	sidecarName     = "credsidecar"
	imageRepo       = "ghcr.io/credsidecar/credsidecar:"
	tokenVolume     = "credsidecar-token"
	tokenDir        = "/var/run/secrets/credsidecar/serviceaccount"
	authVolume      = "credsidecar-auth"
	authDir         = "/var/run/credsidecar"
	authTokenFile   = authDir + "/auth-token"
	fullURI         = "http://127.0.0.1:9910/v1/credentials"
	metricsPort     = 9912
	sidecarShutdown = 5 // seconds the sidecar takes to drain
)

// injection is what a pod's sidecar must be configured with.
type injection struct {
	roleARN, audience, region string
	// containerRoles are the containers pointed at a named role, by name; the others use the
	// unnamed role's endpoint.
	containerRoles map[string]string
}

// Variables that must never reach an app container: each one wins over the container endpoint
// in the SDKs' chains, or leaks a credential.
func forbiddenAppEnv() []string {
	return []string{
		"AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
		"AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
	}
}

// deref prints what a pointer field holds, or "unset".
func deref[T any](p *T) any {
	if p == nil {
		return "unset"
	}
	return *p
}

func envValue(env []corev1.EnvVar, name string) (corev1.EnvVar, int) {
	var found corev1.EnvVar
	n := 0
	for _, e := range env {
		if e.Name == name {
			found, n = e, n+1
		}
	}
	return found, n
}

func mountOf(c corev1.Container, volume string) (corev1.VolumeMount, bool) {
	for _, m := range c.VolumeMounts {
		if m.Name == volume {
			return m, true
		}
	}
	return corev1.VolumeMount{}, false
}

// resolvePort turns a probe's port (number or name) into a number using the container's ports.
func resolvePort(c corev1.Container, p intstr.IntOrString) int32 {
	if p.Type == intstr.Int {
		return p.IntVal
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort
		}
	}
	return -1
}

func checkHTTPProbe(t *testing.T, c corev1.Container, kind string, p *corev1.Probe, path string) {
	t.Helper()
	if p == nil || p.HTTPGet == nil {
		t.Errorf("%s: no HTTP %s probe", c.Name, kind)
		return
	}
	if p.HTTPGet.Path != path || resolvePort(c, p.HTTPGet.Port) != metricsPort {
		t.Errorf("%s: %s probe GET %s on port %v, want %s on %d", c.Name, kind, p.HTTPGet.Path, p.HTTPGet.Port.String(), path, metricsPort)
	}
}

// checkRestrictedContainer asserts the pod security "restricted" profile for one container,
// taking the pod-level settings into account.
// imageUID is the image's USER (distroless nonroot): a container that sets no runAsUser runs as it.
const imageUID = 65532

// effectiveUID is the uid a container runs as: its own runAsUser, else the pod's, else the image's.
func effectiveUID(pod corev1.PodSpec, c corev1.Container) int64 {
	switch {
	case c.SecurityContext != nil && c.SecurityContext.RunAsUser != nil:
		return *c.SecurityContext.RunAsUser
	case pod.SecurityContext != nil && pod.SecurityContext.RunAsUser != nil:
		return *pod.SecurityContext.RunAsUser
	}
	return imageUID
}

// checkSidecarUID: the sidecar runs as a uid of its own, set on the container (a pod-level or
// image default would be the apps' too), so that with shareProcessNamespace no app can open the
// service-account token through /proc/<sidecar pid>/root; and it runs in a group the apps share
// (its runAsGroup or the pod's fsGroup), so they can read the 0640 auth token it writes.
func checkSidecarUID(t *testing.T, pod corev1.PodSpec, sidecar corev1.Container) {
	t.Helper()
	sc := sidecar.SecurityContext
	if sc == nil || sc.RunAsUser == nil {
		t.Errorf("sidecar sets no runAsUser: it would run as the apps' uid (pod or image default %d)", imageUID)
		return
	}
	uid := *sc.RunAsUser
	if pod.SecurityContext != nil && pod.SecurityContext.RunAsUser != nil && *pod.SecurityContext.RunAsUser == uid {
		t.Errorf("sidecar runAsUser %d is the pod's: apps could read its token through /proc/<pid>/root", uid)
	}
	for _, c := range append(slices.Clone(pod.InitContainers), pod.Containers...) {
		if c.Name != sidecar.Name && effectiveUID(pod, c) == uid {
			t.Errorf("container %s runs as the sidecar's uid %d: it could read the token through /proc/<pid>/root", c.Name, uid)
		}
	}
	shared := pod.SecurityContext != nil && pod.SecurityContext.FSGroup != nil
	if sc.RunAsGroup != nil && *sc.RunAsGroup == imageUID {
		shared = true // the apps' default group
	}
	if !shared {
		t.Errorf("sidecar group %v and no pod fsGroup: the apps could not read the 0640 auth token", deref(sc.RunAsGroup))
	}
}

func checkRestrictedContainer(t *testing.T, pod corev1.PodSpec, c corev1.Container) {
	t.Helper()
	sc := c.SecurityContext
	if sc == nil {
		t.Errorf("%s: no securityContext", c.Name)
		return
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("%s: allowPrivilegeEscalation is not false", c.Name)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("%s: readOnlyRootFilesystem is not true", c.Name)
	}
	if sc.Capabilities == nil || !reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
		t.Errorf("%s: capabilities %+v, want drop [ALL] and no add", c.Name, sc.Capabilities)
	}
	nonRoot := sc.RunAsNonRoot != nil && *sc.RunAsNonRoot
	if !nonRoot && pod.SecurityContext != nil && pod.SecurityContext.RunAsNonRoot != nil {
		nonRoot = *pod.SecurityContext.RunAsNonRoot
	}
	if !nonRoot {
		t.Errorf("%s: runAsNonRoot is not set on the container or the pod", c.Name)
	}
	seccomp := sc.SeccompProfile
	if seccomp == nil && pod.SecurityContext != nil {
		seccomp = pod.SecurityContext.SeccompProfile
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: seccompProfile is not RuntimeDefault on the container or the pod", c.Name)
	}
}

func checkResources(t *testing.T, c corev1.Container) {
	t.Helper()
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
		t.Errorf("%s: requests %v lack cpu or memory", c.Name, c.Resources.Requests)
	}
	if c.Resources.Limits.Memory().IsZero() {
		t.Errorf("%s: limits %v lack memory", c.Name, c.Resources.Limits)
	}
}

// checkSidecarPod asserts every property the design relies on for one pod template.
func checkSidecarPod(t *testing.T, meta metav1.ObjectMeta, pod corev1.PodSpec, want injection) {
	t.Helper()
	// The sidecar: one native sidecar init container.
	var sidecar *corev1.Container
	for i := range pod.InitContainers {
		if pod.InitContainers[i].Name == sidecarName {
			if sidecar != nil {
				t.Fatal("two credsidecar init containers")
			}
			sidecar = &pod.InitContainers[i]
		}
	}
	if sidecar == nil {
		t.Fatal("no credsidecar init container")
	}
	for _, c := range pod.Containers {
		if c.Name == sidecarName {
			t.Error("credsidecar is a regular container; it must be a native sidecar (init container)")
		}
	}
	if sidecar.RestartPolicy == nil || *sidecar.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Errorf("sidecar restartPolicy %v, want Always (native sidecar)", deref(sidecar.RestartPolicy))
	}
	if !strings.HasPrefix(sidecar.Image, imageRepo) || sidecar.Image == imageRepo {
		t.Errorf("sidecar image %q, want %s<version>", sidecar.Image, imageRepo)
	}
	if len(sidecar.Command) != 0 {
		t.Errorf("sidecar command %v overrides the image's /sidecar entrypoint", sidecar.Command)
	}
	wantArgs := []string{"serve", "--listen=127.0.0.1:9910", "--auth-token-file=" + authTokenFile, "--metrics-listen=:9912"}
	if !reflect.DeepEqual(sidecar.Args, wantArgs) {
		t.Errorf("sidecar args %q, want %q", sidecar.Args, wantArgs)
	}
	wantEnv := map[string]string{
		"AWS_ROLE_ARN":                want.roleARN,
		"AWS_WEB_IDENTITY_TOKEN_FILE": tokenDir + "/token",
		"AWS_REGION":                  want.region,
	}
	for name, v := range wantEnv {
		if e, n := envValue(sidecar.Env, name); n != 1 || e.Value != v {
			t.Errorf("sidecar %s = %q (%d times), want %q once", name, e.Value, n, v)
		}
	}
	for name, field := range map[string]string{"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace",
		"POD_IP": "status.podIP", "HOST_IP": "status.hostIP"} {
		e, n := envValue(sidecar.Env, name)
		if n != 1 || e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != field {
			t.Errorf("sidecar %s is not the downward API's %s", name, field)
		}
	}
	for _, e := range sidecar.Env {
		if strings.HasPrefix(e.Name, "AWS_CONTAINER_") || e.Name == "AWS_ACCESS_KEY_ID" {
			t.Errorf("sidecar has %s: it calls STS anonymously and must not pick up other credentials", e.Name)
		}
	}
	if len(sidecar.Ports) != 1 || sidecar.Ports[0].ContainerPort != metricsPort || sidecar.Ports[0].Name != "metrics" {
		t.Errorf("sidecar ports %+v, want only metrics:%d (the credentials port stays on loopback, undeclared)", sidecar.Ports, metricsPort)
	}
	checkHTTPProbe(t, *sidecar, "startup", sidecar.StartupProbe, "/readyz")
	checkHTTPProbe(t, *sidecar, "readiness", sidecar.ReadinessProbe, "/readyz")
	checkHTTPProbe(t, *sidecar, "liveness", sidecar.LivenessProbe, "/healthz")
	checkRestrictedContainer(t, pod, *sidecar)
	checkResources(t, *sidecar)
	checkSidecarUID(t, pod, *sidecar)
	if m, ok := mountOf(*sidecar, tokenVolume); !ok || m.MountPath != tokenDir || !m.ReadOnly {
		t.Errorf("sidecar token mount %+v, want %s read-only", m, tokenDir)
	}
	if m, ok := mountOf(*sidecar, authVolume); !ok || m.MountPath != authDir || m.ReadOnly {
		t.Errorf("sidecar auth mount %+v, want %s writable", m, authDir)
	}

	// The volumes: one projected token with one explicit audience, one memory emptyDir.
	var token, auth *corev1.Volume
	for i := range pod.Volumes {
		switch pod.Volumes[i].Name {
		case tokenVolume:
			token = &pod.Volumes[i]
		case authVolume:
			auth = &pod.Volumes[i]
		}
	}
	if token == nil || token.Projected == nil || len(token.Projected.Sources) != 1 || token.Projected.Sources[0].ServiceAccountToken == nil {
		t.Fatalf("volume %s is not a projected volume with one serviceAccountToken source: %+v", tokenVolume, token)
	}
	sat := token.Projected.Sources[0].ServiceAccountToken
	if sat.Audience != want.audience {
		t.Errorf("token audience %q, want %q", sat.Audience, want.audience)
	}
	if !strings.HasPrefix(sat.Audience, "https://") || !strings.HasSuffix(sat.Audience, "/") {
		t.Errorf("token audience %q is not an issuer URL with its trailing slash", sat.Audience)
	}
	if sat.ExpirationSeconds == nil || *sat.ExpirationSeconds != 3600 {
		t.Errorf("token expirationSeconds %v, want 3600", deref(sat.ExpirationSeconds))
	}
	if sat.Path != "token" {
		t.Errorf("token path %q, want token (AWS_WEB_IDENTITY_TOKEN_FILE names it)", sat.Path)
	}
	if auth == nil || auth.EmptyDir == nil || auth.EmptyDir.Medium != corev1.StorageMediumMemory {
		t.Errorf("volume %s is not a memory-backed emptyDir: %+v", authVolume, auth)
	}

	// Every other container: never the token; app containers get exactly the credentials pair.
	for _, c := range pod.InitContainers {
		if c.Name == sidecarName {
			continue
		}
		if _, ok := mountOf(c, tokenVolume); ok {
			t.Errorf("init container %s mounts the web identity token", c.Name)
		}
		if _, n := envValue(c.Env, "AWS_CONTAINER_CREDENTIALS_FULL_URI"); n > 0 {
			t.Errorf("init container %s got the credentials env; it runs before the sidecar is ready", c.Name)
		}
	}
	for _, c := range pod.Containers {
		if _, ok := mountOf(c, tokenVolume); ok {
			t.Errorf("%s mounts the web identity token: only the sidecar may", c.Name)
		}
		uri := fullURI
		if role := want.containerRoles[c.Name]; role != "" {
			uri += "/" + role
		}
		if e, n := envValue(c.Env, "AWS_CONTAINER_CREDENTIALS_FULL_URI"); n != 1 || e.Value != uri {
			t.Errorf("%s: AWS_CONTAINER_CREDENTIALS_FULL_URI = %q (%d times), want %q once", c.Name, e.Value, n, uri)
		}
		if e, n := envValue(c.Env, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"); n != 1 || e.Value != authTokenFile {
			t.Errorf("%s: AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE = %q (%d times), want %q once", c.Name, e.Value, n, authTokenFile)
		}
		for _, bad := range forbiddenAppEnv() {
			if _, n := envValue(c.Env, bad); n > 0 {
				t.Errorf("%s has %s, which would shadow the container endpoint", c.Name, bad)
			}
		}
		if m, ok := mountOf(c, authVolume); !ok || m.MountPath != authDir || !m.ReadOnly {
			t.Errorf("%s: auth mount %+v, want %s read-only", c.Name, m, authDir)
		}
	}

	// Scraping: label for the PodMonitor, annotations for annotation-based Prometheus.
	if meta.Labels["credsidecar.io/sidecar"] != "true" {
		t.Errorf("pod labels %v lack credsidecar.io/sidecar=true (the PodMonitor selects it)", meta.Labels)
	}
	wantAnn := map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": "9912", "prometheus.io/path": "/metrics"}
	for k, v := range wantAnn {
		if meta.Annotations[k] != v {
			t.Errorf("pod annotation %s = %q, want %q", k, meta.Annotations[k], v)
		}
	}
}

func TestSampleJob(t *testing.T) {
	o := decodeAll(t, render(t, "."))
	job := o.Jobs["s3-upload-test"]
	sa := o.ServiceAccounts["s3-access-sa"]
	if job == nil || sa == nil || len(o.Jobs) != 1 || len(o.ServiceAccounts) != 1 || o.count != 2 {
		t.Fatalf("want exactly Job s3-upload-test and ServiceAccount s3-access-sa, got %d objects", o.count)
	}
	if job.Namespace != "default" || sa.Namespace != "default" {
		t.Errorf("namespaces %q %q, want default", job.Namespace, sa.Namespace)
	}
	pod := job.Spec.Template.Spec
	checkSidecarPod(t, job.Spec.Template.ObjectMeta, pod, injection{
		roleARN:  "arn:aws:iam::111122223333:role/AKS-S3-Access-Role",
		audience: "https://oidc.prod-aks.azure.com/<tenant-id>/<issuer-guid>/",
		region:   "ap-northeast-2",
	})
	if pod.ServiceAccountName != sa.Name {
		t.Errorf("serviceAccountName %q, want %q", pod.ServiceAccountName, sa.Name)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("pod automountServiceAccountToken is not false")
	}
	if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
		t.Error("service account automountServiceAccountToken is not false")
	}
	if pod.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("restartPolicy %q, want Never", pod.RestartPolicy)
	}
	if g := pod.TerminationGracePeriodSeconds; g == nil || *g <= sidecarShutdown {
		t.Errorf("terminationGracePeriodSeconds %v, want more than the sidecar's %d s shutdown", deref(g), sidecarShutdown)
	}
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != 65532 ||
		psc.FSGroup == nil || *psc.FSGroup != 65532 || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext %+v, want runAsNonRoot, runAsUser 65532, fsGroup 65532, seccomp RuntimeDefault", psc)
	}
	if len(pod.Containers) != 1 || pod.Containers[0].Name != "uploader" {
		t.Fatalf("containers %v, want the uploader only", pod.Containers)
	}
	up := pod.Containers[0]
	if !reflect.DeepEqual(up.Command, []string{"/uploader"}) || !strings.HasPrefix(up.Image, imageRepo) {
		t.Errorf("uploader image %q command %q, want %s<version> running /uploader", up.Image, up.Command, imageRepo)
	}
	var names []string
	for _, e := range up.Env {
		names = append(names, e.Name)
	}
	slices.Sort(names)
	want := []string{"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_REGION", "S3_BUCKET_NAME"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("uploader env %v, want exactly %v", names, want)
	}
	checkRestrictedContainer(t, pod, up)
	checkResources(t, up)
	if job.Spec.ActiveDeadlineSeconds == nil || job.Spec.BackoffLimit == nil {
		t.Error("job has no activeDeadlineSeconds or backoffLimit: a broken trust setup would retry forever")
	}
}

// settingsOf reads the credsidecar-settings ConfigMap the overlay gives the component.
func settingsOf(t *testing.T, path string) injection {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	o := decodeAll(t, raw)
	cm := o.ConfigMaps["credsidecar-settings"]
	if cm == nil {
		t.Fatalf("%s holds no credsidecar-settings ConfigMap", path)
	}
	if cm.Annotations["config.kubernetes.io/local-config"] != "true" {
		t.Errorf("%s: settings are not local-config: they would be deployed", path)
	}
	return injection{roleARN: cm.Data["roleArn"], audience: cm.Data["audience"], region: cm.Data["region"]}
}

func TestComponentInjectsEveryKind(t *testing.T) {
	const dir = "testdata/component-kinds"
	want := settingsOf(t, filepath.Join(dir, "settings.yaml"))
	out := decodeAll(t, render(t, dir))
	rawIn, err := os.ReadFile(filepath.Join(dir, "workloads.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	in := decodeAll(t, rawIn)
	if len(out.ConfigMaps) != 0 {
		t.Error("the local-config settings ConfigMap reached the output")
	}

	type podOf struct {
		meta   metav1.ObjectMeta
		spec   corev1.PodSpec
		inSpec corev1.PodSpec
	}
	pods := map[string]podOf{}
	for name, d := range out.Deployments {
		pods["Deployment/"+name] = podOf{d.Spec.Template.ObjectMeta, d.Spec.Template.Spec, in.Deployments[name].Spec.Template.Spec}
	}
	for name, s := range out.StatefulSets {
		pods["StatefulSet/"+name] = podOf{s.Spec.Template.ObjectMeta, s.Spec.Template.Spec, in.StatefulSets[name].Spec.Template.Spec}
	}
	for name, j := range out.Jobs {
		pods["Job/"+name] = podOf{j.Spec.Template.ObjectMeta, j.Spec.Template.Spec, in.Jobs[name].Spec.Template.Spec}
	}
	for name, c := range out.CronJobs {
		pods["CronJob/"+name] = podOf{c.Spec.JobTemplate.Spec.Template.ObjectMeta, c.Spec.JobTemplate.Spec.Template.Spec, in.CronJobs[name].Spec.JobTemplate.Spec.Template.Spec}
	}
	for _, name := range []string{"Deployment/web", "StatefulSet/db-backup", "Job/report", "CronJob/nightly-export"} {
		t.Run(name, func(t *testing.T) {
			p, ok := pods[name]
			if !ok {
				t.Fatalf("%s missing from the output", name)
			}
			checkSidecarPod(t, p.meta, p.spec, want)
			// The workload's own parts survive: containers, their other env and mounts, volumes,
			// init containers, in their order.
			if len(p.spec.Containers) != len(p.inSpec.Containers) {
				t.Fatalf("%d containers, the input had %d", len(p.spec.Containers), len(p.inSpec.Containers))
			}
			for i, c := range p.spec.Containers {
				orig := p.inSpec.Containers[i]
				if c.Name != orig.Name || c.Image != orig.Image || !reflect.DeepEqual(c.Args, orig.Args) {
					t.Errorf("container %d changed: %s %s, was %s %s", i, c.Name, c.Image, orig.Name, orig.Image)
				}
				var kept []corev1.EnvVar
				for _, e := range c.Env {
					if e.Name != "AWS_CONTAINER_CREDENTIALS_FULL_URI" && e.Name != "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE" {
						kept = append(kept, e)
					}
				}
				var origKept []corev1.EnvVar
				for _, e := range orig.Env {
					if e.Name != "AWS_CONTAINER_CREDENTIALS_FULL_URI" {
						origKept = append(origKept, e)
					}
				}
				if !reflect.DeepEqual(kept, origKept) {
					t.Errorf("%s: env besides the credentials pair is %v, was %v", c.Name, kept, origKept)
				}
				for _, m := range orig.VolumeMounts {
					if got, ok := mountOf(c, m.Name); !ok || !reflect.DeepEqual(got, m) {
						t.Errorf("%s lost its mount %+v", c.Name, m)
					}
				}
			}
			for _, v := range p.inSpec.Volumes {
				if !slices.ContainsFunc(p.spec.Volumes, func(x corev1.Volume) bool { return reflect.DeepEqual(x, v) }) {
					t.Errorf("volume %s lost or changed", v.Name)
				}
			}
			for _, ic := range p.inSpec.InitContainers {
				if !slices.ContainsFunc(p.spec.InitContainers, func(x corev1.Container) bool { return reflect.DeepEqual(x, ic) }) {
					t.Errorf("init container %s lost or changed", ic.Name)
				}
			}
			if p.spec.ServiceAccountName != p.inSpec.ServiceAccountName || p.spec.RestartPolicy != p.inSpec.RestartPolicy {
				t.Errorf("serviceAccountName/restartPolicy changed: %q %q", p.spec.ServiceAccountName, p.spec.RestartPolicy)
			}
		})
	}
	t.Run("unlabelled workload untouched", func(t *testing.T) {
		got, wantPod := out.Deployments["frontend"], in.Deployments["frontend"]
		if got == nil {
			t.Fatal("frontend missing from the output")
		}
		if !reflect.DeepEqual(got.Spec, wantPod.Spec) {
			t.Errorf("frontend's spec changed:\n got  %+v\n want %+v", got.Spec.Template.Spec, wantPod.Spec.Template.Spec)
		}
	})
}

func TestExampleDeployment(t *testing.T) {
	const dir = "examples/deployment"
	want := settingsOf(t, filepath.Join(dir, "settings.yaml"))
	o := decodeAll(t, render(t, dir))
	if len(o.ConfigMaps) != 0 {
		t.Error("the local-config settings ConfigMap reached the output")
	}
	d := o.Deployments["inventory-sync"]
	if d == nil || len(o.Deployments) != 1 {
		t.Fatalf("want the one Deployment inventory-sync, got %d", len(o.Deployments))
	}
	checkSidecarPod(t, d.Spec.Template.ObjectMeta, d.Spec.Template.Spec, want)
	for _, c := range d.Spec.Template.Spec.Containers {
		checkRestrictedContainer(t, d.Spec.Template.Spec, c)
	}
	if sa := o.ServiceAccounts[d.Spec.Template.Spec.ServiceAccountName]; sa == nil {
		t.Errorf("no ServiceAccount %q in the example", d.Spec.Template.Spec.ServiceAccountName)
	}
}

// TestExampleSeveralRoles: the by-hand several-roles example is the component's pod plus the
// named roles, each app container pointed at a role the sidecar serves, each role once.
func TestExampleSeveralRoles(t *testing.T) {
	const dir = "examples/several-roles"
	want := settingsOf(t, filepath.Join(dir, "settings.yaml"))
	want.containerRoles = map[string]string{"app": "reader", "loader": "writer"}
	o := decodeAll(t, render(t, dir))
	d := o.Deployments["catalog-import"]
	if d == nil || len(o.Deployments) != 1 || len(o.ConfigMaps) != 0 {
		t.Fatalf("want the one Deployment catalog-import and no ConfigMap, got %d and %d", len(o.Deployments), len(o.ConfigMaps))
	}
	spec := d.Spec.Template.Spec
	checkSidecarPod(t, d.Spec.Template.ObjectMeta, spec, want)
	for _, c := range spec.Containers {
		checkRestrictedContainer(t, spec, c)
	}
	var roles string
	for _, c := range spec.InitContainers {
		if c.Name == sidecarName {
			e, n := envValue(c.Env, "CREDSIDECAR_ROLES")
			if n != 1 {
				t.Fatalf("sidecar has CREDSIDECAR_ROLES %d times, want once", n)
			}
			roles = e.Value
		}
	}
	parsed, err := config.ParseRoles(strings.Split(roles, ","))
	if err != nil {
		t.Fatalf("CREDSIDECAR_ROLES=%q: %v", roles, err)
	}
	served := map[string]bool{}
	for _, r := range parsed {
		served["/v1/credentials/"+r.Name] = true
	}
	got := map[string]string{}
	for _, c := range spec.Containers {
		e, n := envValue(c.Env, "AWS_CONTAINER_CREDENTIALS_FULL_URI")
		u, err := url.Parse(e.Value)
		if n != 1 || err != nil || !served[u.Path] {
			t.Errorf("%s: AWS_CONTAINER_CREDENTIALS_FULL_URI %q (%d times), want one of the named roles' paths", c.Name, e.Value, n)
			continue
		}
		got[c.Name] = u.Path
	}
	if got["app"] != "/v1/credentials/reader" || got["loader"] != "/v1/credentials/writer" {
		t.Errorf("containers point at %v, want app at reader and loader at writer", got)
	}
}

// TestIssuerPublishCronJob: the publisher runs `sidecar issuer publish` with the component's
// sidecar for its S3 credentials, under a service account bound to the issuer discovery role
// and nothing else, one run at a time.
func TestIssuerPublishCronJob(t *testing.T) {
	const dir = "issuer-publish"
	o := decodeAll(t, render(t, dir))
	cj := o.CronJobs["issuer-publish"]
	if cj == nil || len(o.CronJobs) != 1 {
		t.Fatalf("want the one CronJob issuer-publish, got %d", len(o.CronJobs))
	}
	spec := cj.Spec.JobTemplate.Spec.Template.Spec
	checkSidecarPod(t, cj.Spec.JobTemplate.Spec.Template.ObjectMeta, spec, settingsOf(t, filepath.Join(dir, "settings.yaml")))
	for _, c := range spec.Containers {
		checkRestrictedContainer(t, spec, c)
	}
	c := spec.Containers[0]
	if strings.Join(c.Command, " ") != "/sidecar issuer publish" {
		t.Errorf("the publisher runs %q", c.Command)
	}
	for _, name := range []string{"CREDSIDECAR_ISSUER_BUCKET", "AWS_REGION"} {
		if e, n := envValue(c.Env, name); n != 1 || e.Value == "" {
			t.Errorf("publisher lacks %s", name)
		}
	}
	if cj.Spec.ConcurrencyPolicy != "Forbid" {
		t.Errorf("concurrencyPolicy %q: two publishers could race on the bucket", cj.Spec.ConcurrencyPolicy)
	}
	if sa := o.ServiceAccounts[spec.ServiceAccountName]; sa == nil || sa.AutomountServiceAccountToken == nil || !*sa.AutomountServiceAccountToken {
		t.Errorf("service account %q must exist and mount its token: the publisher reads the API server", spec.ServiceAccountName)
	}
	var roles []string
	for _, b := range o.ClusterRoleBindings {
		for _, s := range b.Subjects {
			if s.Kind == "ServiceAccount" && s.Name == spec.ServiceAccountName && s.Namespace == cj.Namespace {
				roles = append(roles, b.RoleRef.Kind+"/"+b.RoleRef.Name)
			}
		}
	}
	if strings.Join(roles, ",") != "ClusterRole/system:service-account-issuer-discovery" {
		t.Errorf("the publisher is bound to %v, want system:service-account-issuer-discovery and nothing else", roles)
	}
}

// The two patches carry the same pod template at different depths; they must not drift.
func TestComponentPatchesAgree(t *testing.T) {
	read := func(name string) *objects {
		raw, err := os.ReadFile(filepath.Join("components", "credsidecar", name))
		if err != nil {
			t.Fatal(err)
		}
		return decodeAll(t, raw)
	}
	var dep, cron = read("pod-template.yaml"), read("cronjob.yaml")
	if len(dep.Deployments) != 1 || len(cron.CronJobs) != 1 {
		t.Fatal("pod-template.yaml must hold one Deployment-shaped patch, cronjob.yaml one CronJob-shaped patch")
	}
	for _, d := range dep.Deployments {
		for _, c := range cron.CronJobs {
			if !reflect.DeepEqual(d.Spec.Template, c.Spec.JobTemplate.Spec.Template) {
				t.Errorf("pod templates differ:\n pod-template.yaml %+v\n cronjob.yaml      %+v", d.Spec.Template, c.Spec.JobTemplate.Spec.Template)
			}
		}
	}
}

// A kustomization that uses the component without settings, or with one missing, must fail to
// build rather than deploy a placeholder role or audience.
func TestComponentRequiresSettings(t *testing.T) {
	workload, err := os.ReadFile(filepath.Join("examples", "deployment", "deployment.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	settings := func(data string) string {
		return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: credsidecar-settings\n  annotations:\n    config.kubernetes.io/local-config: \"true\"\ndata:\n" + data
	}
	tests := []struct {
		name, settings, wantErr string
	}{
		{name: "no settings", wantErr: "credsidecar-settings"},
		{name: "no audience", settings: settings("  roleArn: arn:aws:iam::111122223333:role/x\n  region: us-east-1\n"), wantErr: "data.audience"},
		{name: "no role", settings: settings("  audience: https://issuer.example/\n  region: us-east-1\n"), wantErr: "data.roleArn"},
		{name: "no region", settings: settings("  roleArn: arn:aws:iam::111122223333:role/x\n  audience: https://issuer.example/\n"), wantErr: "data.region"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// An in-memory tree: the component as shipped, beside an overlay written here.
			fs := filesys.MakeFsInMemory()
			entries, err := os.ReadDir(filepath.Join("components", "credsidecar"))
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				b, err := os.ReadFile(filepath.Join("components", "credsidecar", e.Name()))
				if err != nil {
					t.Fatal(err)
				}
				if err := fs.WriteFile("/component/"+e.Name(), b); err != nil {
					t.Fatal(err)
				}
			}
			resources := "  - deployment.yaml\n"
			if tt.settings != "" {
				resources += "  - settings.yaml\n"
				if err := fs.WriteFile("/overlay/settings.yaml", []byte(tt.settings)); err != nil {
					t.Fatal(err)
				}
			}
			kust := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n" + resources + "components:\n  - ../component\n"
			for name, body := range map[string][]byte{"kustomization.yaml": []byte(kust), "deployment.yaml": workload} {
				if err := fs.WriteFile("/overlay/"+name, body); err != nil {
					t.Fatal(err)
				}
			}
			m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(fs, "/overlay")
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				var out []byte
				if m != nil {
					out, _ = m.AsYaml()
				}
				t.Fatalf("build error %v; want an error naming %s; output:\n%s", err, tt.wantErr, out)
			}
		})
	}
}

func TestPodMonitorScrapesTheSidecar(t *testing.T) {
	o := decodeAll(t, render(t, "monitoring"))
	pm := o.PodMonitors["credsidecar"]
	if pm == nil || len(o.PodMonitors) != 1 {
		t.Fatal("want the one PodMonitor credsidecar")
	}
	sel, err := metav1.LabelSelectorAsSelector(&pm.Selector)
	if err != nil || sel.Empty() {
		t.Fatalf("selector %v: %v (an empty selector would scrape every pod)", pm.Selector, err)
	}
	if len(pm.Endpoints) != 1 || pm.Endpoints[0].Port != "metrics" || pm.Endpoints[0].Path != "/metrics" {
		t.Errorf("endpoints %+v, want port metrics path /metrics", pm.Endpoints)
	}
	// It selects the sample Job's pods and the component's pods, whose sidecar names the port.
	job := decodeAll(t, render(t, ".")).Jobs["s3-upload-test"]
	comp := decodeAll(t, render(t, "examples/deployment")).Deployments["inventory-sync"]
	for name, tmpl := range map[string]corev1.PodTemplateSpec{"sample job": job.Spec.Template, "component": comp.Spec.Template} {
		if !sel.Matches(labels.Set(tmpl.Labels)) {
			t.Errorf("%s: pod labels %v not selected by %v", name, tmpl.Labels, sel)
		}
		found := false
		for _, c := range tmpl.Spec.InitContainers {
			for _, p := range c.Ports {
				if p.Name == pm.Endpoints[0].Port && p.ContainerPort == metricsPort {
					found = true
				}
			}
		}
		if !found {
			t.Errorf("%s: no container port named %s on %d", name, pm.Endpoints[0].Port, metricsPort)
		}
	}
}
