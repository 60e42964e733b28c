package issuer

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// The in-cluster service account's files and the variables the kubelet sets, as client-go's
// rest.InClusterConfig reads them.
const (
	inClusterTokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"
	inClusterCAFile    = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
	// maxDocument caps what is read from the API server, a bucket or the public URL.
	maxDocument = 1 << 20
)

// Kube reads the API server's issuer discovery endpoints: what `kubectl get --raw` would.
type Kube struct {
	// Server is the API server's base URL.
	Server string
	// Token, when set, is sent as a bearer token; TokenFile is re-read at each request instead
	// (an in-cluster token rotates).
	Token, TokenFile string
	// Client carries the TLS settings (CA, client certificate).
	Client *http.Client
	// From says where the settings came from, for errors.
	From string
}

// Get fetches path from the API server.
func (k *Kube) Get(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(k.Server, "/")+path, nil)
	if err != nil {
		return nil, err
	}
	tok := k.Token
	if k.TokenFile != "" {
		b, err := os.ReadFile(k.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("read the API server token: %w", err)
		}
		tok = strings.TrimSpace(string(b))
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	resp, err := k.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s from the API server (%s): %w", path, k.From, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocument))
	if err != nil {
		return nil, fmt.Errorf("GET %s from the API server (%s): %w", path, k.From, err)
	}
	if resp.StatusCode != http.StatusOK {
		hint := ""
		if resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusUnauthorized {
			hint = ": bind the ClusterRole system:service-account-issuer-discovery to this user or service account"
		}
		return nil, fmt.Errorf("GET %s from the API server (%s): %s%s", path, k.From, resp.Status, hint)
	}
	return body, nil
}

// LoadKube finds the API server: the kubeconfig file when given, else the in-cluster service
// account when running in a pod, else $KUBECONFIG, else ~/.kube/config.
func LoadKube(kubeconfig string, getenv func(string) string) (*Kube, error) {
	if kubeconfig != "" {
		return fromKubeconfig(kubeconfig)
	}
	if host, port := getenv("KUBERNETES_SERVICE_HOST"), getenv("KUBERNETES_SERVICE_PORT"); host != "" && port != "" {
		if _, err := os.Stat(inClusterTokenFile); err == nil {
			pool, err := loadPool(inClusterCAFile, nil)
			if err != nil {
				return nil, fmt.Errorf("in-cluster API server: %w", err)
			}
			return &Kube{Server: "https://" + net.JoinHostPort(host, port), TokenFile: inClusterTokenFile,
				Client: client(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}), From: "in-cluster service account"}, nil
		}
	}
	if v := getenv("KUBECONFIG"); v != "" {
		return fromKubeconfig(strings.Split(v, string(os.PathListSeparator))[0])
	}
	if home := getenv("HOME"); home != "" {
		return fromKubeconfig(filepath.Join(home, ".kube", "config"))
	}
	return nil, errors.New("no API server: not in a pod, and neither --kubeconfig nor KUBECONFIG is set")
}

func client(cfg *tls.Config) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, Proxy: http.ProxyFromEnvironment}}
}

// kubeconfig is the part of a kubeconfig file read here.
type kubeconfig struct {
	CurrentContext string `json:"current-context"`
	Contexts       []struct {
		Name    string `json:"name"`
		Context struct {
			Cluster string `json:"cluster"`
			User    string `json:"user"`
		} `json:"context"`
	} `json:"contexts"`
	Clusters []struct {
		Name    string `json:"name"`
		Cluster struct {
			Server                   string `json:"server"`
			CertificateAuthority     string `json:"certificate-authority"`
			CertificateAuthorityData string `json:"certificate-authority-data"`
			InsecureSkipTLSVerify    bool   `json:"insecure-skip-tls-verify"`
		} `json:"cluster"`
	} `json:"clusters"`
	Users []struct {
		Name string `json:"name"`
		User struct {
			Token                 string `json:"token"`
			TokenFile             string `json:"tokenFile"`
			ClientCertificate     string `json:"client-certificate"`
			ClientCertificateData string `json:"client-certificate-data"`
			ClientKey             string `json:"client-key"`
			ClientKeyData         string `json:"client-key-data"`
			Exec                  any    `json:"exec"`
		} `json:"user"`
	} `json:"users"`
}

// fromKubeconfig reads the current context of a kubeconfig file: the server, its CA, and a
// bearer token or client certificate. Exec plugins are not run.
func fromKubeconfig(path string) (*Kube, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	var kc kubeconfig
	if err := yaml.Unmarshal(raw, &kc); err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("kubeconfig %s: %s", path, fmt.Sprintf(format, a...))
	}
	var clusterName, userName string
	for _, c := range kc.Contexts {
		if c.Name == kc.CurrentContext {
			clusterName, userName = c.Context.Cluster, c.Context.User
		}
	}
	if clusterName == "" {
		return nil, bad("current-context %q names no context with a cluster", kc.CurrentContext)
	}
	k := &Kube{From: "kubeconfig " + path + ", context " + kc.CurrentContext}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	rel := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(filepath.Dir(path), p)
	}
	found := false
	for _, c := range kc.Clusters {
		if c.Name != clusterName {
			continue
		}
		found = true
		k.Server = c.Cluster.Server
		tlsCfg.InsecureSkipVerify = c.Cluster.InsecureSkipTLSVerify
		var data []byte
		if c.Cluster.CertificateAuthorityData != "" {
			if data, err = base64.StdEncoding.DecodeString(c.Cluster.CertificateAuthorityData); err != nil {
				return nil, bad("cluster %s: certificate-authority-data is not base64", clusterName)
			}
		}
		if ca := rel(c.Cluster.CertificateAuthority); ca != "" || data != nil {
			if tlsCfg.RootCAs, err = loadPool(ca, data); err != nil {
				return nil, bad("cluster %s: %v", clusterName, err)
			}
		}
	}
	if !found || k.Server == "" {
		return nil, bad("no server for cluster %q", clusterName)
	}
	for _, u := range kc.Users {
		if u.Name != userName {
			continue
		}
		k.Token, k.TokenFile = u.User.Token, rel(u.User.TokenFile)
		certPEM, keyPEM := []byte(nil), []byte(nil)
		if u.User.ClientCertificateData != "" {
			certPEM, _ = base64.StdEncoding.DecodeString(u.User.ClientCertificateData)
		} else if f := rel(u.User.ClientCertificate); f != "" {
			if certPEM, err = os.ReadFile(f); err != nil {
				return nil, bad("user %s: %v", userName, err)
			}
		}
		if u.User.ClientKeyData != "" {
			keyPEM, _ = base64.StdEncoding.DecodeString(u.User.ClientKeyData)
		} else if f := rel(u.User.ClientKey); f != "" {
			if keyPEM, err = os.ReadFile(f); err != nil {
				return nil, bad("user %s: %v", userName, err)
			}
		}
		if certPEM != nil || keyPEM != nil {
			cert, err := tls.X509KeyPair(certPEM, keyPEM)
			if err != nil {
				return nil, bad("user %s: client certificate: %v", userName, err)
			}
			tlsCfg.Certificates = []tls.Certificate{cert}
		}
		if u.User.Exec != nil && k.Token == "" && k.TokenFile == "" && tlsCfg.Certificates == nil {
			return nil, bad("user %s authenticates with an exec plugin, which this command does not run: use a "+
				"kubeconfig with a token or client certificate, or run it in the cluster", userName)
		}
	}
	k.Client = client(tlsCfg)
	return k, nil
}

// loadPool returns a pool of the system's roots plus the CA in file or data.
func loadPool(file string, data []byte) (*x509.CertPool, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		data = b
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(data) {
		return nil, errors.New("certificate authority holds no PEM certificate")
	}
	return pool, nil
}
