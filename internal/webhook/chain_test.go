package webhook_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credsidecar/credsidecar/internal/testkit/await"
	"github.com/credsidecar/credsidecar/internal/testkit/sidecarproc"
	"github.com/credsidecar/credsidecar/internal/testkit/testbed"
	"github.com/credsidecar/credsidecar/internal/webhook"
)

// TestWholeChain follows a pod from admission to S3: the webhook mutates it on a real API server,
// the API server signs a TokenRequest token for the pod's ServiceAccount and audience (written in
// the kubelet's layout, as the projected volume would be), the built sidecar runs with the mutated
// sidecar container's args and env against SeaweedFS trusting that API server's issuer, and an
// SDK client configured only with the env the webhook gave the app container uploads to S3.
func TestWholeChain(t *testing.T) {
	var weed *testbed.SeaweedFS
	c := startCluster(t, func(k *testbed.KubeAPI) webhook.Defaults {
		aud := k.Issuer() + "/"
		weed = testbed.StartSeaweedFSForTest(t, testbed.SeaweedFSOptions{IAM: ptr(testbed.KubeAPIIAMConfig(k, testbed.DefaultBucket, aud))})
		return webhook.Defaults{Image: "ghcr.io/credsidecar/credsidecar:test", Audience: aud, Region: testbed.Region,
			TokenExpiration: time.Hour}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	c.serviceAccount(t, testbed.DefaultServiceAccount, map[string]string{
		webhook.AnnotationRoleARN:     testbed.DefaultRoleARN,
		webhook.AnnotationSTSEndpoint: weed.Endpoint(),
	})
	pod := createMutated(t, c, appPod("uploader", testbed.DefaultServiceAccount, true, nil, "uploader"))

	// The projected volume, as the kubelet would fill it: a TokenRequest for the pod's
	// ServiceAccount with the volume's audience and lifetime.
	var proj *corev1.ServiceAccountTokenProjection
	for _, v := range pod.Spec.Volumes {
		if v.Name == webhook.TokenVolume {
			proj = v.Projected.Sources[0].ServiceAccountToken
		}
	}
	dir := t.TempDir()
	tokens := testbed.NewProjectorForTest(t, testbed.ProjectorOptions{Dir: filepath.Join(dir, "token"),
		Minter: func(time.Time) (string, error) {
			return c.kube.TokenRequest(ctx, "default", pod.Spec.ServiceAccountName, []string{proj.Audience},
				time.Duration(*proj.ExpirationSeconds)*time.Second)
		}})

	// The mutated sidecar container, its paths moved into dir and its ports onto free ones.
	side := pod.Spec.InitContainers[0]
	paths := strings.NewReplacer(webhook.TokenDir, tokens.Dir(), webhook.AuthDir, filepath.Join(dir, "auth"))
	var args []string
	for _, a := range side.Args {
		switch {
		case strings.HasPrefix(a, "--listen="):
			a = "--listen=127.0.0.1:0"
		case strings.HasPrefix(a, "--metrics-listen="):
			a = "--metrics-listen=127.0.0.1:0"
		}
		args = append(args, paths.Replace(a))
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "POD_NAMESPACE=default", "POD_NAME=" + pod.Name}
	for _, e := range side.Env {
		if e.ValueFrom == nil {
			env = append(env, e.Name+"="+paths.Replace(e.Value))
		}
	}
	credsURL, metricsURL := runSidecar(t, ctx, args, env)
	checkReady(t, ctx, metricsURL)

	// The app container's env, as the webhook wrote it, with the same moves.
	app := pod.Spec.Containers[0]
	for _, e := range app.Env {
		v := paths.Replace(e.Value)
		if e.Name == "AWS_CONTAINER_CREDENTIALS_FULL_URI" {
			v = credsURL
		}
		t.Setenv(e.Name, v)
	}
	for _, name := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
		"AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"} {
		t.Setenv(name, "")
		os.Unsetenv(name)
	}
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "no-config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "no-credentials"))
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	id, err := sts.NewFromConfig(cfg, func(o *sts.Options) { o.BaseEndpoint = aws.String(weed.Endpoint()) }).
		GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatalf("GetCallerIdentity through the default chain: %v", err)
	}
	if !strings.Contains(aws.ToString(id.Arn), "assumed-role/"+testbed.DefaultRoleName+"/") {
		t.Errorf("caller %q, want a session of %s", aws.ToString(id.Arn), testbed.DefaultRoleName)
	}
	s3c := s3.NewFromConfig(cfg, func(o *s3.Options) { o.BaseEndpoint, o.UsePathStyle = aws.String(weed.Endpoint()), true })
	if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(testbed.DefaultBucket),
		Key: aws.String("webhook-chain.txt"), Body: strings.NewReader("admitted, injected, uploaded")}); err != nil {
		t.Fatalf("PutObject through the default chain: %v", err)
	}
}

// createMutated creates p and returns it as stored, failing unless the webhook injected it.
func createMutated(t *testing.T, c *cluster, p *corev1.Pod) *corev1.Pod {
	t.Helper()
	got, err := c.client.CoreV1().Pods("default").Create(t.Context(), p, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s: %v", p.Name, err)
	}
	if !webhook.Injected(got) {
		t.Fatalf("pod %s stored without the sidecar", p.Name)
	}
	return got
}

// runSidecar runs the built sidecar with args and env, waits (within a deadline) until it logs
// that it fetched credentials, and returns its credentials URL and metrics base URL, read from
// its start-up log line.
func runSidecar(t *testing.T, ctx context.Context, args, env []string) (credsURL, metricsURL string) {
	t.Helper()
	bin, err := sidecarproc.Build(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	type started struct{ creds, metrics string }
	found := make(chan started, 1)
	fetched := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var rec struct {
				Msg         string `json:"msg"`
				Credentials string `json:"credentials_url"`
				Metrics     string `json:"metrics_addr"`
			}
			if json.Unmarshal(sc.Bytes(), &rec) != nil {
				continue
			}
			switch rec.Msg {
			case "credsidecar starting":
				found <- started{rec.Credentials, "http://" + rec.Metrics}
			case "fetched credentials":
				close(fetched)
				return
			}
		}
	}()
	s := await.Receive(t, 30*time.Second, found, "the sidecar's start-up log line")
	await.Receive(t, 30*time.Second, fetched, "the sidecar's \"fetched credentials\" log line")
	return s.creds, s.metrics
}

// checkReady says whether /readyz answers 200.
func checkReady(t *testing.T, ctx context.Context, metricsURL string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", metricsURL+"/readyz", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz answered %s after the credentials were fetched", resp.Status)
	}
}

func ptr[T any](v T) *T { return &v }
