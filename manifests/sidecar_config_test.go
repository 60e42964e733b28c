package manifests

import (
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/credsidecar/credsidecar/internal/config"
)

// TestSidecarAcceptsManifestConfig feeds each rendered sidecar's args and env to the sidecar's
// own configuration parser, then checks that what it will do matches what the app containers
// and the kubelet expect: the endpoint the apps call, the auth token file they read, the token
// the volume projects, the port the probes hit, and a shutdown shorter than the grace period.
func TestSidecarAcceptsManifestConfig(t *testing.T) {
	type podCase struct {
		dir, kind, name string
		pod             func(*objects) corev1.PodSpec
	}
	cases := []podCase{
		{dir: ".", kind: "Job", name: "s3-upload-test", pod: func(o *objects) corev1.PodSpec { return o.Jobs["s3-upload-test"].Spec.Template.Spec }},
		{dir: "examples/deployment", kind: "Deployment", name: "inventory-sync", pod: func(o *objects) corev1.PodSpec { return o.Deployments["inventory-sync"].Spec.Template.Spec }},
		{dir: "issuer-publish", kind: "CronJob", name: "issuer-publish", pod: func(o *objects) corev1.PodSpec {
			return o.CronJobs["issuer-publish"].Spec.JobTemplate.Spec.Template.Spec
		}},
		{dir: "examples/several-roles", kind: "Deployment", name: "catalog-import", pod: func(o *objects) corev1.PodSpec { return o.Deployments["catalog-import"].Spec.Template.Spec }},
		{dir: "testdata/component-kinds", kind: "CronJob", name: "nightly-export", pod: func(o *objects) corev1.PodSpec {
			return o.CronJobs["nightly-export"].Spec.JobTemplate.Spec.Template.Spec
		}},
		{dir: "testdata/component-kinds", kind: "StatefulSet", name: "db-backup", pod: func(o *objects) corev1.PodSpec { return o.StatefulSets["db-backup"].Spec.Template.Spec }},
	}
	for _, tc := range cases {
		t.Run(tc.dir+"/"+tc.kind+"/"+tc.name, func(t *testing.T) {
			pod := tc.pod(decodeAll(t, render(t, tc.dir)))
			var sidecar *corev1.Container
			for i := range pod.InitContainers {
				if pod.InitContainers[i].Name == sidecarName {
					sidecar = &pod.InitContainers[i]
				}
			}
			if sidecar == nil || len(sidecar.Args) == 0 || sidecar.Args[0] != "serve" {
				t.Fatal("no credsidecar init container running serve")
			}
			// The container's environment as the kubelet would set it; the downward API
			// fields get stand-in values.
			env := map[string]string{}
			for _, e := range sidecar.Env {
				switch {
				case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil:
					env[e.Name] = "from-" + e.ValueFrom.FieldRef.FieldPath
				case e.ValueFrom != nil:
					t.Fatalf("%s comes from %+v, which this test cannot resolve", e.Name, e.ValueFrom)
				default:
					env[e.Name] = e.Value
				}
			}
			cfg, err := config.Parse(sidecar.Args[1:], func(k string) string { return env[k] })
			if err != nil {
				t.Fatalf("the sidecar rejects its manifest configuration: %v", err)
			}

			tokenMount, _ := mountOf(*sidecar, tokenVolume)
			if cfg.TokenFile != tokenMount.MountPath+"/token" {
				t.Errorf("sidecar reads token %s, the volume projects %s/token", cfg.TokenFile, tokenMount.MountPath)
			}
			for _, c := range pod.Containers {
				uri, _ := envValue(c.Env, "AWS_CONTAINER_CREDENTIALS_FULL_URI")
				u, err := url.Parse(uri.Value)
				if err != nil || u.Host != cfg.Listen || !servesPath(cfg, u.Path) {
					t.Errorf("%s calls %s, the sidecar listens on %s and serves %s", c.Name, uri.Value, cfg.Listen,
						strings.Join(servedPaths(cfg), ", "))
				}
				tok, _ := envValue(c.Env, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
				if tok.Value != cfg.AuthTokenFile {
					t.Errorf("%s reads auth token %s, the sidecar writes %s", c.Name, tok.Value, cfg.AuthTokenFile)
				}
			}
			_, port, err := net.SplitHostPort(cfg.MetricsListen)
			if err != nil || port != strconv.Itoa(metricsPort) {
				t.Errorf("sidecar serves probes and metrics on %s, the manifest probes port %d", cfg.MetricsListen, metricsPort)
			}
			grace := int64(corev1.DefaultTerminationGracePeriodSeconds)
			if pod.TerminationGracePeriodSeconds != nil {
				grace = *pod.TerminationGracePeriodSeconds
			}
			if cfg.ShutdownTimeout >= time.Duration(grace)*time.Second {
				t.Errorf("sidecar shutdown timeout %v is not below terminationGracePeriodSeconds %d", cfg.ShutdownTimeout, grace)
			}
		})
	}
}

// servedPaths are the credentials paths a sidecar configured with cfg answers: the unnamed
// role's when it has one, and each named role's.
func servedPaths(cfg config.Config) []string {
	var paths []string
	if cfg.RoleARN != "" {
		paths = append(paths, "/v1/credentials")
	}
	for _, name := range cfg.RoleNames() {
		paths = append(paths, "/v1/credentials/"+name)
	}
	return paths
}

func servesPath(cfg config.Config, path string) bool { return slices.Contains(servedPaths(cfg), path) }
