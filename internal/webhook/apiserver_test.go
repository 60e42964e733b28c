package webhook_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/credsidecar/credsidecar/internal/testkit/await"
	"github.com/credsidecar/credsidecar/internal/testkit/testbed"
	"github.com/credsidecar/credsidecar/internal/webhook"
)

const roleARN = "arn:aws:iam::111122223333:role/app"

// cluster is a real API server with the webhook registered on it, served by this test process.
type cluster struct {
	kube   *testbed.KubeAPI
	client kubernetes.Interface
	stop   func() // stops the webhook's server: the API server can no longer reach it
	// warnings are the admission warnings the API server passed on to the client.
	warnings *warningLog
	// tls is the webhook's certificate volume; reloaded receives after each certificate load.
	tls      *testbed.SecretVolume
	reloaded chan struct{}
	// mutateAddr is the webhook's HTTPS address, metricsURL its probes' base URL.
	mutateAddr, metricsURL string
}

// tlsFiles is a kubernetes.io/tls Secret's files for cert.
func tlsFiles(t *testing.T, cert *testbed.ServingCert) map[string]string {
	t.Helper()
	crt, err := os.ReadFile(cert.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(cert.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{"tls.crt": string(crt), "tls.key": string(key)}
}

// warningLog keeps the Warning headers of the API server's answers, instead of client-go's
// default of logging them.
type warningLog struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warningLog) HandleWarningHeaderWithContext(_ context.Context, _ int, _ string, msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, msg)
}

// since returns the warnings after the first n.
func (w *warningLog) since(n int) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.msgs[n:]...)
}

func (w *warningLog) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.msgs)
}

// startCluster starts an API server and registers the webhook, with defaults d (the API
// server's issuer URL with a slash as the audience, eu-west-1, when d is nil).
func startCluster(t *testing.T, d func(k *testbed.KubeAPI) webhook.Defaults) *cluster {
	t.Helper()
	k := testbed.StartKubeAPIForTest(t, testbed.KubeAPIOptions{})
	warnings := &warningLog{}
	client, err := kubernetes.NewForConfig(&rest.Config{Host: k.URL(), BearerToken: k.AdminToken(),
		TLSClientConfig: rest.TLSClientConfig{CAFile: k.CAFile()}, WarningHandlerWithContext: warnings})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cert, err := testbed.NewServingCert(dir, "webhook")
	if err != nil {
		t.Fatal(err)
	}
	vol, err := testbed.NewSecretVolume(filepath.Join(dir, "tls"), tlsFiles(t, cert))
	if err != nil {
		t.Fatal(err)
	}
	def := webhook.Defaults{Image: "ghcr.io/credsidecar/credsidecar:test", Audience: k.Issuer() + "/", Region: "eu-west-1",
		TokenExpiration: time.Hour}
	if d != nil {
		def = d(k)
	}
	cfg := webhook.DefaultConfig()
	cfg.Listen, cfg.MetricsListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.TLSCertFile, cfg.TLSKeyFile = vol.Path("tls.crt"), vol.Path("tls.key")
	cfg.Defaults = testDefaults(def)
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan [2]net.Addr, 1)
	reloaded := make(chan struct{}, 16)
	done := make(chan error, 1)
	go func() {
		done <- webhook.Run(ctx, cfg, webhook.Options{Client: client, Listening: func(m, p net.Addr) { addrs <- [2]net.Addr{m, p} },
			CertReloaded: func() { reloaded <- struct{}{} }})
	}()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			if err := await.Receive(t, 30*time.Second, done, "the webhook's Run returning after cancel"); err != nil {
				t.Errorf("webhook Run = %v", err)
			}
		}
	}
	t.Cleanup(stop)
	bound := await.Receive(t, 30*time.Second, addrs, "the webhook's listeners")
	await.Receive(t, 30*time.Second, reloaded, "the webhook's first certificate load")
	ln := bound[0]

	url := "https://" + ln.String() + webhook.MutatePath
	fail, none, ifNeeded := admissionregv1.Fail, admissionregv1.SideEffectClassNone, admissionregv1.IfNeededReinvocationPolicy
	timeout := int32(5)
	mwc := &admissionregv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "credsidecar"},
		Webhooks: []admissionregv1.MutatingWebhook{{
			Name:                    "pods.credsidecar.io",
			ClientConfig:            admissionregv1.WebhookClientConfig{URL: &url, CABundle: cert.CAPEM},
			Rules:                   []admissionregv1.RuleWithOperations{{Operations: []admissionregv1.OperationType{admissionregv1.Create}, Rule: admissionregv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}}}},
			ObjectSelector:          &metav1.LabelSelector{MatchLabels: map[string]string{webhook.LabelInject: "true"}},
			FailurePolicy:           &fail,
			SideEffects:             &none,
			ReinvocationPolicy:      &ifNeeded,
			TimeoutSeconds:          &timeout,
			AdmissionReviewVersions: []string{"v1"},
		}},
	}
	if _, err := client.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(t.Context(), mwc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c := &cluster{kube: k, client: client, stop: stop, warnings: warnings, tls: vol, reloaded: reloaded,
		mutateAddr: ln.String(), metricsURL: "http://" + bound[1].String()}
	c.waitRegistered(t)
	return c
}

// waitRegistered returns once the API server calls the webhook. It learns of a new
// MutatingWebhookConfiguration through a watch and gives no signal when it has: the only way to
// know is to ask, so this sends dry-run pods (nothing is stored) every 50 ms until one comes
// back mutated, and fails after 30 s.
func (c *cluster) waitRegistered(t *testing.T) {
	t.Helper()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "registration-probe",
		Annotations: map[string]string{webhook.AnnotationRoleARN: roleARN}}}
	if _, err := c.client.CoreV1().ServiceAccounts("default").Create(t.Context(), sa, metav1.CreateOptions{}); err != nil &&
		!apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(30 * time.Second)
	for {
		p, err := c.client.CoreV1().Pods("default").Create(t.Context(), appPod("probe", sa.Name, true, nil, "app"),
			metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil && hasSidecar(p) {
			return
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("the API server did not call the webhook within 30 s of its registration: last answer %v", err)
		}
	}
}

func testDefaults(d webhook.Defaults) webhook.Defaults {
	d.CPURequest = mustQuantity("10m")
	d.MemoryRequest = mustQuantity("32Mi")
	d.MemoryLimit = mustQuantity("64Mi")
	return d
}

func (c *cluster) serviceAccount(t *testing.T, name string, ann map[string]string) {
	t.Helper()
	_, err := c.client.CoreV1().ServiceAccounts("default").Create(t.Context(),
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

func appPod(name, sa string, labelled bool, ann map[string]string, containers ...string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann},
		Spec: corev1.PodSpec{ServiceAccountName: sa}}
	if labelled {
		p.Labels = map[string]string{webhook.LabelInject: "true"}
	}
	for _, c := range containers {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: c, Image: "registry.example/" + c + ":1"})
	}
	return p
}

// create creates p through the API server.
func (c *cluster) create(t *testing.T, p *corev1.Pod) (*corev1.Pod, error) {
	t.Helper()
	return c.client.CoreV1().Pods("default").Create(t.Context(), p, metav1.CreateOptions{})
}

func hasSidecar(p *corev1.Pod) bool { return webhook.Injected(p) }

func envValue(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

func TestWebhookOnAPIServer(t *testing.T) {
	c := startCluster(t, nil)
	c.serviceAccount(t, "app", map[string]string{webhook.AnnotationRoleARN: roleARN})
	c.serviceAccount(t, "bare", nil)

	t.Run("labelled pod with an annotated serviceaccount is stored with the sidecar", func(t *testing.T) {
		pod := appPod("mutated", "app", true, nil, "app", "shipper")
		pod.Spec.Containers[1].Env = []corev1.EnvVar{{Name: "AWS_ROLE_ARN", Value: "arn:aws:iam::111122223333:role/own"}}
		before := c.warnings.count()
		p, err := c.create(t, pod)
		if err != nil {
			t.Fatal(err)
		}
		got := strings.Join(c.warnings.since(before), "\n")
		if !strings.Contains(got, "container shipper sets AWS_ROLE_ARN") || !strings.Contains(got, "pod had no fsGroup") {
			t.Errorf("admission warnings %q, want shipper's AWS_ROLE_ARN and the added fsGroup named", got)
		}
		if envValue(p.Spec.Containers[1], "AWS_ROLE_ARN") != "arn:aws:iam::111122223333:role/own" {
			t.Error("the container's own AWS_ROLE_ARN was not kept")
		}
		if len(p.Spec.InitContainers) != 1 || p.Spec.InitContainers[0].Name != webhook.SidecarName {
			t.Fatalf("stored init containers %v, want exactly the sidecar (re-invocation must not add a second)", p.Spec.InitContainers)
		}
		if got := envValue(p.Spec.InitContainers[0], "AWS_ROLE_ARN"); got != roleARN {
			t.Errorf("sidecar AWS_ROLE_ARN %q, want %q", got, roleARN)
		}
		for _, app := range p.Spec.Containers {
			if envValue(app, "AWS_CONTAINER_CREDENTIALS_FULL_URI") == "" {
				t.Errorf("container %s has no AWS_CONTAINER_CREDENTIALS_FULL_URI", app.Name)
			}
		}
	})
	t.Run("unlabelled pod is untouched", func(t *testing.T) {
		p, err := c.create(t, appPod("plain", "app", false, nil, "app"))
		if err != nil {
			t.Fatal(err)
		}
		if hasSidecar(p) || envValue(p.Spec.Containers[0], "AWS_CONTAINER_CREDENTIALS_FULL_URI") != "" {
			t.Error("an unlabelled pod was mutated")
		}
	})
	t.Run("labelled pod without a role annotation is refused with the reason", func(t *testing.T) {
		_, err := c.create(t, appPod("norole", "bare", true, nil, "app"))
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "serviceaccount default/bare: annotation credsidecar.io/role-arn: required") {
			t.Errorf("create = %v, want Forbidden naming the serviceaccount and the annotation", err)
		}
	})
	t.Run("a serviceaccount created a moment before its pod is found", func(t *testing.T) {
		c.serviceAccount(t, "fresh", map[string]string{webhook.AnnotationRoleARN: roleARN})
		p, err := c.create(t, appPod("fresh", "fresh", true, nil, "app"))
		if err != nil || !hasSidecar(p) {
			t.Errorf("create = %v (sidecar %v), want the pod stored with the sidecar", err, p != nil && hasSidecar(p))
		}
	})
	t.Run("skip and include containers", func(t *testing.T) {
		p, err := c.create(t, appPod("skip", "app", true, map[string]string{webhook.AnnotationSkipContainers: "shipper"},
			"app", "shipper"))
		if err != nil {
			t.Fatal(err)
		}
		if envValue(p.Spec.Containers[0], "AWS_CONTAINER_CREDENTIALS_FULL_URI") == "" ||
			envValue(p.Spec.Containers[1], "AWS_CONTAINER_CREDENTIALS_FULL_URI") != "" {
			t.Error("skip-containers: want app configured and shipper not")
		}
		p, err = c.create(t, appPod("include", "app", true, map[string]string{webhook.AnnotationIncludeContainers: "shipper"},
			"app", "shipper"))
		if err != nil {
			t.Fatal(err)
		}
		if envValue(p.Spec.Containers[0], "AWS_CONTAINER_CREDENTIALS_FULL_URI") != "" ||
			envValue(p.Spec.Containers[1], "AWS_CONTAINER_CREDENTIALS_FULL_URI") == "" {
			t.Error("include-containers: want shipper configured and app not")
		}
	})
	t.Run("several roles: each container pointed at its role, an unknown role refused", func(t *testing.T) {
		reader, writer := "arn:aws:iam::111122223333:role/reader", "arn:aws:iam::444455556666:role/writer"
		c.serviceAccount(t, "multi", map[string]string{webhook.AnnotationRoles: "writer=" + writer + ",reader=" + reader})
		p, err := c.create(t, appPod("multi", "multi", true, map[string]string{webhook.AnnotationContainerRoles: "app=reader,loader=writer"},
			"app", "loader", "shipper"))
		if err != nil {
			t.Fatal(err)
		}
		for i, want := range []string{"http://127.0.0.1:9910/v1/credentials/reader", "http://127.0.0.1:9910/v1/credentials/writer", ""} {
			if got := envValue(p.Spec.Containers[i], "AWS_CONTAINER_CREDENTIALS_FULL_URI"); got != want {
				t.Errorf("stored container %s: FULL_URI %q, want %q", p.Spec.Containers[i].Name, got, want)
			}
		}
		sc := p.Spec.InitContainers[0]
		if got := envValue(sc, "CREDSIDECAR_ROLES"); got != "reader="+reader+",writer="+writer {
			t.Errorf("stored sidecar CREDSIDECAR_ROLES %q", got)
		}
		if got := envValue(sc, "AWS_ROLE_ARN"); got != "" {
			t.Errorf("stored sidecar AWS_ROLE_ARN %q, want none: the serviceaccount names no unnamed role", got)
		}
		_, err = c.create(t, appPod("multi-bad", "multi", true, map[string]string{webhook.AnnotationContainerRoles: "app=admin"}, "app"))
		want := `credsidecar: pod default/multi-bad: pod annotation credsidecar.io/container-roles="app=admin": container "app" asks for ` +
			`role "admin", but serviceaccount default/multi names the roles reader, writer`
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), want) {
			t.Errorf("create = %v, want Forbidden with %q", err, want)
		}
	})
	t.Run("dry run is mutated and not stored", func(t *testing.T) {
		p, err := c.client.CoreV1().Pods("default").Create(t.Context(), appPod("dry", "app", true, nil, "app"),
			metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil || !hasSidecar(p) {
			t.Fatalf("dry-run create = %v, want the mutated pod", err)
		}
		if _, err := c.client.CoreV1().Pods("default").Get(t.Context(), "dry", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("dry-run pod stored: %v", err)
		}
	})
	t.Run("a rotated certificate is served without a restart", func(t *testing.T) {
		next, err := testbed.NewServingCert(t.TempDir(), "rotated")
		if err != nil {
			t.Fatal(err)
		}
		// As cert-manager does: the Secret's files swapped through ..data, and the CA injector
		// updating the caBundle.
		if err := c.tls.Write(tlsFiles(t, next)); err != nil {
			t.Fatal(err)
		}
		await.Receive(t, 30*time.Second, c.reloaded, "the webhook's reload of the rotated certificate")
		conn, err := tls.Dial("tcp", c.mutateAddr, &tls.Config{RootCAs: next.Pool})
		if err != nil {
			t.Fatalf("TLS handshake trusting only the rotated CA: %v", err)
		}
		conn.Close()
		mwc, err := c.client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(t.Context(), "credsidecar", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		mwc.Webhooks[0].ClientConfig.CABundle = next.CAPEM
		if _, err := c.client.AdmissionregistrationV1().MutatingWebhookConfigurations().Update(t.Context(), mwc, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		c.waitRegistered(t)
	})
	t.Run("the webhook's probes", func(t *testing.T) {
		for path, want := range map[string]int{"/healthz": 200, "/readyz": 200} {
			resp, err := http.Get(c.metricsURL + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("GET %s: %s, want %d", path, resp.Status, want)
			}
		}
		resp, err := http.Get(c.metricsURL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(body), `credsidecar_webhook_admissions_total{result="mutated"}`) {
			t.Errorf("/metrics lacks the admissions counter:\n%.2000s", body)
		}
	})
	t.Run("webhook down: labelled pods refused, unlabelled admitted", func(t *testing.T) {
		c.stop()
		_, err := c.create(t, appPod("down", "app", true, nil, "app"))
		var status apierrors.APIStatus
		if err == nil || !errors.As(err, &status) || !strings.Contains(err.Error(), "pods.credsidecar.io") {
			t.Errorf("labelled pod with the webhook down: %v, want a refusal naming the webhook", err)
		}
		if _, err := c.create(t, appPod("down-plain", "app", false, nil, "app")); err != nil {
			t.Errorf("unlabelled pod with the webhook down: %v, want it admitted", err)
		}
	})
}

func mustQuantity(s string) resource.Quantity { return resource.MustParse(s) }
