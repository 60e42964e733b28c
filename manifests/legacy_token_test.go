package manifests

import (
	"net/url"
	"path"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/credsidecar/credsidecar/internal/config"
)

// TestLegacyTokenExample checks the legacy token mode's example: the sidecar reads the auth
// token from a mounted Secret, the app gets the same Secret key as AWS_CONTAINER_AUTHORIZATION_TOKEN,
// and nothing else tells the app's SDK where credentials are.
func TestLegacyTokenExample(t *testing.T) {
	o := decodeAll(t, render(t, "examples/legacy-token"))
	d := o.Deployments["report-export"]
	if d == nil || len(o.Deployments) != 1 || o.ServiceAccounts[d.Spec.Template.Spec.ServiceAccountName] == nil {
		t.Fatalf("want the one Deployment report-export and its ServiceAccount, got %d objects", o.count)
	}
	pod := d.Spec.Template.Spec

	var sidecar *corev1.Container
	for i := range pod.InitContainers {
		if pod.InitContainers[i].Name == sidecarName {
			sidecar = &pod.InitContainers[i]
		}
	}
	if sidecar == nil || len(sidecar.Args) == 0 || sidecar.Args[0] != "serve" {
		t.Fatal("no credsidecar init container running serve")
	}
	if sidecar.RestartPolicy == nil || *sidecar.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Errorf("sidecar restartPolicy %v, want Always (native sidecar)", deref(sidecar.RestartPolicy))
	}
	env := map[string]string{}
	for _, e := range sidecar.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil:
			env[e.Name] = "from-" + e.ValueFrom.FieldRef.FieldPath
		case e.ValueFrom != nil:
			t.Fatalf("sidecar %s comes from %+v, which this test cannot resolve", e.Name, e.ValueFrom)
		default:
			env[e.Name] = e.Value
		}
	}
	cfg, err := config.Parse(sidecar.Args[1:], func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("the sidecar rejects its manifest configuration: %v", err)
	}

	// The file the sidecar reads is the Secret key's file in a secret volume only it mounts.
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	var secretName, secretKey string
	for _, m := range sidecar.VolumeMounts {
		v := volumes[m.Name]
		if v.Secret == nil || path.Dir(cfg.AuthTokenFile) != path.Clean(m.MountPath) {
			continue
		}
		if !m.ReadOnly {
			t.Errorf("the sidecar mounts the Secret %s writable", v.Secret.SecretName)
		}
		if v.Secret.Optional != nil && *v.Secret.Optional {
			t.Error("the auth token Secret is optional: without it the sidecar would generate a token the app never gets")
		}
		secretName, secretKey = v.Secret.SecretName, path.Base(cfg.AuthTokenFile)
		for _, it := range v.Secret.Items {
			if it.Path == path.Base(cfg.AuthTokenFile) {
				secretKey = it.Key
			}
		}
	}
	if secretName == "" {
		t.Fatalf("--auth-token-file %s is not in a Secret volume the sidecar mounts", cfg.AuthTokenFile)
	}
	if tok, ok := mountOf(*sidecar, tokenVolume); !ok || cfg.TokenFile != tok.MountPath+"/token" {
		t.Errorf("sidecar reads token %s, the projected volume is mounted at %s", cfg.TokenFile, tok.MountPath)
	}
	if v := volumes[tokenVolume]; v.Projected == nil || len(v.Projected.Sources) != 1 || v.Projected.Sources[0].ServiceAccountToken == nil ||
		v.Projected.Sources[0].ServiceAccountToken.Audience == "" {
		t.Errorf("volume %s is not a projected token with an explicit audience", tokenVolume)
	}
	checkRestrictedContainer(t, pod, *sidecar)
	checkResources(t, *sidecar)

	if len(pod.Containers) == 0 {
		t.Fatal("no app container")
	}
	for _, c := range pod.Containers {
		tok, n := envValue(c.Env, "AWS_CONTAINER_AUTHORIZATION_TOKEN")
		ref := (*corev1.SecretKeySelector)(nil)
		if tok.ValueFrom != nil {
			ref = tok.ValueFrom.SecretKeyRef
		}
		if n != 1 || tok.Value != "" || ref == nil || ref.Name != secretName || ref.Key != secretKey || (ref.Optional != nil && *ref.Optional) {
			t.Errorf("%s: AWS_CONTAINER_AUTHORIZATION_TOKEN (%d times) is %+v, want once, from Secret %s key %s, not optional",
				c.Name, n, tok, secretName, secretKey)
		}
		if _, n := envValue(c.Env, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"); n != 0 {
			t.Errorf("%s has AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: SDKs take exactly one of the pair", c.Name)
		}
		uri, n := envValue(c.Env, "AWS_CONTAINER_CREDENTIALS_FULL_URI")
		u, err := url.Parse(uri.Value)
		if n != 1 || err != nil || u.Scheme != "http" || u.Host != cfg.Listen || u.Path != "/v1/credentials" {
			t.Errorf("%s calls %q, the sidecar listens on %s", c.Name, uri.Value, cfg.Listen)
		}
		for _, bad := range forbiddenAppEnv() {
			if bad == "AWS_CONTAINER_AUTHORIZATION_TOKEN" {
				continue
			}
			if _, n := envValue(c.Env, bad); n > 0 {
				t.Errorf("%s has %s, which would shadow the container endpoint", c.Name, bad)
			}
		}
		for _, m := range c.VolumeMounts {
			if v := volumes[m.Name]; v.Secret != nil && v.Secret.SecretName == secretName || m.Name == tokenVolume {
				t.Errorf("%s mounts %s: only the sidecar needs the token files", c.Name, m.Name)
			}
		}
		checkRestrictedContainer(t, pod, c)
	}
}
