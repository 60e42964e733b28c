package testbed

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// KubeAPIOptions configure StartKubeAPI.
type KubeAPIOptions struct {
	// Issuer is --service-account-issuer; empty is the API server's own URL, so that its
	// discovery document and JWKS are served where the tokens say.
	Issuer string
	// Dir holds etcd's data, the keys, the certificates and the logs; empty makes a temporary
	// directory that Close removes.
	Dir string
	// StartTimeout bounds etcd's and the API server's start-up together; zero is 90 s (a cold
	// API server on 2 busy cores takes 10-30 s).
	StartTimeout time.Duration
	// Log receives start/stop events; nil discards them.
	Log *slog.Logger
}

// KubeAPI is a real kube-apiserver on 127.0.0.1 backed by its own etcd: RBAC on, an admin
// bearer token, service-account token signing with a key of its own. No kubelet, scheduler or
// controller manager runs: pods stay Pending, and service accounts exist only once created.
type KubeAPI struct {
	url, issuer, dir, caFile, token string
	etcdURL                         string
	port                            int
	// keys are the service-account key pairs' file stems in dir (sa, sa-2, ...), the signing one
	// last; every one's public half verifies tokens.
	keys            []string
	keepDir         bool
	log             *slog.Logger
	client          *http.Client
	etcd, apiserver *child

	closeOnce sync.Once
	closeErr  error
}

// FindKubeAPIServer returns the kube-apiserver binary: $CREDSIDECAR_KUBE_APISERVER, else
// .cache/bin/kube-apiserver at the repository root (`make kube-apiserver` builds it).
func FindKubeAPIServer() (string, error) {
	return findCached("kube-apiserver", "CREDSIDECAR_KUBE_APISERVER", "make kube-apiserver")
}

// FindEtcd returns etcd from $CREDSIDECAR_ETCD or the PATH (Debian's etcd-server package).
func FindEtcd() (string, error) {
	if p := os.Getenv("CREDSIDECAR_ETCD"); p != "" {
		return p, nil
	}
	p, err := exec.LookPath("etcd")
	if err != nil {
		return "", errors.New("find etcd: not on the PATH: run `make deps` (it installs Debian's etcd-server)")
	}
	return p, nil
}

// findCached finds a binary the Makefile caches under .cache/bin at the repository root, or the
// one the variable env names.
func findCached(name, env, target string) (string, error) {
	if p := os.Getenv(env); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("find %s: %s=%s: %w", name, env, p, err)
		}
		return p, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", fmt.Errorf("find %s: %w", name, err)
	}
	p := filepath.Join(root, ".cache", "bin", name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("find %s: %s is missing: run `%s` (or set %s): %w", name, p, target, env, err)
	}
	return p, nil
}

// StartKubeAPI starts etcd and kube-apiserver on free loopback ports and waits until the API
// server is ready, namespace default exists and anonymous clients may read the issuer's
// discovery document and JWKS (as STS must).
func StartKubeAPI(ctx context.Context, opts KubeAPIOptions) (_ *KubeAPI, err error) {
	apiBin, err := FindKubeAPIServer()
	if err != nil {
		return nil, err
	}
	etcdBin, err := FindEtcd()
	if err != nil {
		return nil, err
	}
	k := &KubeAPI{dir: opts.Dir, log: opts.Log}
	if k.log == nil {
		k.log = slog.New(slog.DiscardHandler)
	}
	if k.dir == "" {
		if k.dir, err = os.MkdirTemp("", "credsidecar-kubeapi-"); err != nil {
			return nil, fmt.Errorf("start kube-apiserver: %w", err)
		}
	} else {
		k.keepDir = true
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, k.Close())
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, durationOr(opts.StartTimeout, 90*time.Second))
	defer cancel()

	ports, err := pickPorts(3)
	if err != nil {
		return nil, fmt.Errorf("start kube-apiserver: %w", err)
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peerURL := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	k.url = "https://127.0.0.1:" + strconv.Itoa(ports[2])
	k.issuer = opts.Issuer
	if k.issuer == "" {
		k.issuer = k.url
	}
	k.etcdURL, k.port = etcdURL, ports[2]
	if err := k.writeFiles(); err != nil {
		return nil, fmt.Errorf("start kube-apiserver: %w", err)
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + k.dir}
	k.etcd, err = startChild("etcd", etcdBin, []string{
		"--name=default", "--data-dir=" + filepath.Join(k.dir, "etcd"),
		"--listen-client-urls=" + etcdURL, "--advertise-client-urls=" + etcdURL,
		"--listen-peer-urls=" + peerURL, "--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=default=" + peerURL, "--log-level=warn",
	}, env, k.dir, k.dir, k.log)
	if err != nil {
		return nil, fmt.Errorf("start kube-apiserver: %w", err)
	}
	if err := k.waitHTTP(ctx, k.etcd, etcdURL+"/health", nil); err != nil {
		return nil, fmt.Errorf("start kube-apiserver: etcd: %w", err)
	}
	k.apiserver, err = startChild("kube-apiserver", apiBin, k.args(etcdURL, ports[2]), env, k.dir, k.dir, k.log)
	if err != nil {
		return nil, fmt.Errorf("start kube-apiserver: %w", err)
	}
	if err := k.waitReady(ctx); err != nil {
		return nil, fmt.Errorf("start kube-apiserver: %w%s", err, k.LogTail())
	}
	k.log.Info("kube-apiserver ready", "url", k.url, "issuer", k.issuer, "dir", k.dir)
	return k, nil
}

// writeFiles writes the service-account signing key and the admin's token file.
func (k *KubeAPI) writeFiles() error {
	if err := k.newKey("sa"); err != nil {
		return err
	}
	k.token = randomHex(24)
	return os.WriteFile(filepath.Join(k.dir, "tokens.csv"), []byte(k.token+`,admin,admin-uid,"system:masters"`+"\n"), 0o600)
}

// newKey writes a service-account key pair, <stem>.key and <stem>.pub, and makes it the signing
// key.
func (k *KubeAPI) newKey(stem string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return fmt.Errorf("generate signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode signing key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return fmt.Errorf("encode public key: %w", err)
	}
	for name, body := range map[string][]byte{stem + ".key": pemBlock("PRIVATE KEY", der), stem + ".pub": pemBlock("PUBLIC KEY", pub)} {
		if err := os.WriteFile(filepath.Join(k.dir, name), body, 0o600); err != nil {
			return err
		}
	}
	k.keys = append(k.keys, stem)
	return nil
}

// RotateSigningKey restarts the API server (etcd and everything stored stay) signing with a new
// key while still accepting tokens of every earlier one, as a key rotation's first step does:
// the JWKS then holds both keys, and new tokens carry the new key's kid.
func (k *KubeAPI) RotateSigningKey(ctx context.Context) error {
	if err := k.newKey(fmt.Sprintf("sa-%d", len(k.keys)+1)); err != nil {
		return fmt.Errorf("rotate signing key: %w", err)
	}
	if err := k.apiserver.stop(10 * time.Second); err != nil {
		return fmt.Errorf("rotate signing key: stop kube-apiserver: %w", err)
	}
	apiBin, err := FindKubeAPIServer()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + k.dir}
	if k.apiserver, err = startChild("kube-apiserver", apiBin, k.args(k.etcdURL, k.port), env, k.dir, k.dir, k.log); err != nil {
		return fmt.Errorf("rotate signing key: %w", err)
	}
	if err := k.waitReady(ctx); err != nil {
		return fmt.Errorf("rotate signing key: %w%s", err, k.LogTail())
	}
	return nil
}

// WriteKubeconfig writes a kubeconfig for the admin user at path: the API server's URL, its CA
// and the admin token, as kubectl and `sidecar issuer publish --kubeconfig` read it.
func (k *KubeAPI) WriteKubeconfig(path string) error {
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: testbed
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: admin
  user:
    token: %s
contexts:
- name: testbed
  context:
    cluster: testbed
    user: admin
current-context: testbed
`, k.url, k.caFile, k.token)
	return os.WriteFile(path, []byte(cfg), 0o600)
}

func (k *KubeAPI) args(etcdURL string, port int) []string {
	args := []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(port),
		// No serving certificate given: the API server makes one for 127.0.0.1 with a CA of its
		// own, and writes both to apiserver.crt (CAFile).
		"--cert-dir=" + filepath.Join(k.dir, "certs"),
		"--authorization-mode=RBAC", "--token-auth-file=" + filepath.Join(k.dir, "tokens.csv"),
		"--service-account-issuer=" + k.issuer,
		"--service-account-signing-key-file=" + filepath.Join(k.dir, k.keys[len(k.keys)-1]+".key"),
		// Required when the server binds to loopback: where discovery says the JWKS is.
		"--service-account-jwks-uri=" + strings.TrimSuffix(k.issuer, "/") + "/openid/v1/jwks",
		"--service-cluster-ip-range=10.96.0.0/24",
		"--enable-priority-and-fairness=false",
		"--profiling=false",
		"--v=1",
	}
	for _, stem := range k.keys {
		args = append(args, "--service-account-key-file="+filepath.Join(k.dir, stem+".pub"))
	}
	return args
}

// waitReady waits for /readyz, namespace default, and then opens the issuer's discovery
// endpoints to anonymous clients.
func (k *KubeAPI) waitReady(ctx context.Context) error {
	caFile := filepath.Join(k.dir, "certs", "apiserver.crt")
	// The certificate appears a moment after the process starts.
	if err := k.waitHTTP(ctx, k.apiserver, "", func() error {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%s holds no certificate yet", caFile)
		}
		k.caFile = caFile
		k.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
		return nil
	}); err != nil {
		return err
	}
	for _, path := range []string{"/readyz", "/api/v1/namespaces/default"} {
		if err := k.waitHTTP(ctx, k.apiserver, "", func() error { return k.Do(ctx, "GET", path, nil, nil) }); err != nil {
			return fmt.Errorf("wait for %s: %w", path, err)
		}
	}
	binding := map[string]any{
		"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
		"metadata": map[string]any{"name": "credsidecar-testbed-issuer-discovery"},
		"roleRef": map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
			"name": "system:service-account-issuer-discovery"},
		"subjects": []map[string]any{{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
			"name": "system:unauthenticated"}},
	}
	err := k.Do(ctx, "POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", binding, nil)
	var apiErr *APIError
	if err != nil && !(errors.As(err, &apiErr) && apiErr.Code == http.StatusConflict) { // a restart finds it
		return fmt.Errorf("open issuer discovery to anonymous clients: %w", err)
	}
	return nil
}

// waitHTTP polls until probe (or a GET of url answering 200) succeeds, the child exits or ctx
// ends, backing off from 20 ms to 500 ms.
func (k *KubeAPI) waitHTTP(ctx context.Context, c *child, url string, probe func() error) error {
	if probe == nil {
		probe = func() error {
			req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
			if err != nil {
				return err
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("GET %s: %s", url, resp.Status)
			}
			return nil
		}
	}
	delay := 20 * time.Millisecond
	for {
		last := probe()
		if last == nil {
			return nil
		}
		t := time.NewTimer(delay)
		select {
		case <-c.exited:
			t.Stop()
			return fmt.Errorf("%s exited before it was ready (%v): %w", c.name, c.waitErr, last)
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s not ready: %w (last probe: %w)", c.name, ctx.Err(), last)
		case <-t.C:
		}
		delay = min(delay*2, 500*time.Millisecond)
	}
}

// URL is the API server's base URL, https://127.0.0.1:<port>.
func (k *KubeAPI) URL() string { return k.url }

// Issuer is --service-account-issuer: the iss of every token it signs.
func (k *KubeAPI) Issuer() string { return k.issuer }

// CAFile is the PEM file of the API server's serving certificate and its CA: give it to a
// client (SeaweedFS's tlsCaCert, a kubeconfig's certificate-authority).
func (k *KubeAPI) CAFile() string { return k.caFile }

// AdminToken is a bearer token of a system:masters user.
func (k *KubeAPI) AdminToken() string { return k.token }

// Dir holds etcd's data, the keys, the certificates and the processes' logs.
func (k *KubeAPI) Dir() string { return k.dir }

// APIError is a Status answer of the API server.
type APIError struct {
	// Code is the HTTP status.
	Code int
	// Reason is the Status's machine-readable reason, such as AlreadyExists or Forbidden.
	Reason string
	// Message is the Status's message, as kubectl would print it.
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("kube-apiserver answered %d %s: %s", e.Code, e.Reason, e.Message)
}

// Do sends body (JSON-encoded unless nil) to path as the admin and decodes a 2xx answer into
// out (unless nil); any other answer is an *APIError.
func (k *KubeAPI) Do(ctx context.Context, method, path string, body, out any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, k.url+path, r)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+k.token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		e := &APIError{Code: resp.StatusCode}
		var st struct{ Reason, Message string }
		if json.Unmarshal(raw, &st) == nil && st.Message != "" {
			e.Reason, e.Message = st.Reason, st.Message
		} else {
			e.Message = strings.TrimSpace(string(raw))
		}
		return fmt.Errorf("%s %s: %w", method, path, e)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

// CreateServiceAccount creates namespace/name with the given annotations.
func (k *KubeAPI) CreateServiceAccount(ctx context.Context, namespace, name string, annotations map[string]string) error {
	sa := map[string]any{"apiVersion": "v1", "kind": "ServiceAccount",
		"metadata": map[string]any{"name": name, "namespace": namespace, "annotations": annotations}}
	return k.Do(ctx, "POST", "/api/v1/namespaces/"+namespace+"/serviceaccounts", sa, nil)
}

// TokenRequest asks the API server for a token of namespace/serviceAccount with exactly the
// given audiences, valid for lifetime (at least 10 min), as the kubelet does for a projected
// volume; it returns the signed JWT.
func (k *KubeAPI) TokenRequest(ctx context.Context, namespace, serviceAccount string, audiences []string, lifetime time.Duration) (string, error) {
	req := map[string]any{"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
		"spec": map[string]any{"audiences": audiences, "expirationSeconds": int64(lifetime / time.Second)}}
	var out struct {
		Status struct{ Token string } `json:"status"`
	}
	path := "/api/v1/namespaces/" + namespace + "/serviceaccounts/" + serviceAccount + "/token"
	if err := k.Do(ctx, "POST", path, req, &out); err != nil {
		return "", fmt.Errorf("token request: %w", err)
	}
	if out.Status.Token == "" {
		return "", fmt.Errorf("token request: %s answered no token", path)
	}
	return out.Status.Token, nil
}

// LogTail is the end of the API server's and etcd's stderr, for a failure message.
func (k *KubeAPI) LogTail() string {
	var b strings.Builder
	for _, name := range []string{"kube-apiserver.stderr.log", "etcd.stderr.log"} {
		if lines := tailLines(filepath.Join(k.dir, name), 15); len(lines) > 0 {
			fmt.Fprintf(&b, "\n--- %s ---\n%s", name, strings.Join(lines, "\n"))
		}
	}
	return b.String()
}

// Close stops the API server, then etcd, and removes Dir unless the caller gave it.
func (k *KubeAPI) Close() error {
	k.closeOnce.Do(func() {
		var errs []error
		for _, c := range []*child{k.apiserver, k.etcd} {
			if c != nil {
				errs = append(errs, c.stop(10*time.Second))
			}
		}
		if !k.keepDir && k.dir != "" {
			errs = append(errs, os.RemoveAll(k.dir))
		}
		if err := errors.Join(errs...); err != nil {
			k.closeErr = fmt.Errorf("close kube-apiserver: %w", err)
		}
	})
	return k.closeErr
}
