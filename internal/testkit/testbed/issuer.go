package testbed

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/credsidecar/credsidecar/internal/clock"
)

// KubernetesDefaultAudience is the in-cluster API server audience that a token minted without an
// explicit audience carries on most clusters, AKS included.
const KubernetesDefaultAudience = "https://kubernetes.default.svc.cluster.local"

// DefaultKeyGracePeriod is how long a rotated-out signing key stays in the JWKS. It outlives the
// default token lifetime, so tokens signed just before a rotation keep verifying until they expire.
const DefaultKeyGracePeriod = 2 * time.Hour

// IssuerOptions configures NewIssuer. The zero value is usable.
type IssuerOptions struct {
	// Clock stamps iat/nbf/exp and times the key grace period; clock.Real() when nil. TLS
	// certificates always use the wall clock, because the peers that check them do.
	Clock clock.Clock
	// Path is the issuer URL's path, starting and ending with "/". Empty means an AKS-shaped
	// "/<tenant-uuid>/<cluster-uuid>/".
	Path string
	// Dir receives the CA certificate. Empty means a fresh temporary directory removed by Close.
	Dir string
	// ClusterFQDN is the API server name quoted into the cluster's default audiences, as AKS does.
	// Empty means "testbed-dns-5f1c2a3b.hcp.eastus.azmk8s.io".
	ClusterFQDN string
	// KeyGracePeriod is how long a rotated-out key stays published; DefaultKeyGracePeriod when 0.
	KeyGracePeriod time.Duration
	// Logger receives the issuer's events; discarded when nil.
	Logger *slog.Logger
}

// Issuer is a Kubernetes-style OIDC issuer on loopback: discovery and JWKS over HTTP and, with
// a self-signed CA written to disk, over HTTPS; it signs service-account tokens with RS256.
type Issuer struct {
	clock       clock.Clock
	log         *slog.Logger
	path        string
	fqdn        string
	grace       time.Duration
	dir         string
	ownDir      bool
	caFile      string
	caPool      *x509.CertPool
	httpURL     string
	httpsURL    string
	httpServer  *http.Server
	httpsServer *http.Server
	wg          sync.WaitGroup

	mu      sync.Mutex
	keys    []*signingKey // oldest first; the last one signs
	foreign *signingKey   // created on first use; never published

	closeOnce sync.Once
	closeErr  error
}

type signingKey struct {
	kid       string
	priv      *rsa.PrivateKey
	retiredAt time.Time // zero while the key signs
}

// NewIssuer generates a signing key and a CA, and starts the HTTP and HTTPS listeners on
// 127.0.0.1 ports chosen by the kernel. Close stops them.
func NewIssuer(opts IssuerOptions) (_ *Issuer, err error) {
	i := &Issuer{
		clock: opts.Clock,
		log:   opts.Logger,
		path:  opts.Path,
		fqdn:  opts.ClusterFQDN,
		grace: opts.KeyGracePeriod,
		dir:   opts.Dir,
	}
	if i.clock == nil {
		i.clock = clock.Real()
	}
	if i.log == nil {
		i.log = slog.New(slog.DiscardHandler)
	}
	if i.fqdn == "" {
		i.fqdn = "testbed-dns-5f1c2a3b.hcp.eastus.azmk8s.io"
	}
	if i.grace <= 0 {
		i.grace = DefaultKeyGracePeriod
	}
	if i.path == "" {
		i.path = "/" + newUUID() + "/" + newUUID() + "/"
	}
	if i.path[0] != '/' || i.path[len(i.path)-1] != '/' {
		return nil, fmt.Errorf("new issuer: path %q must start and end with /", i.path)
	}
	if i.dir == "" {
		d, err := os.MkdirTemp("", "credsidecar-issuer-")
		if err != nil {
			return nil, fmt.Errorf("new issuer: %w", err)
		}
		i.dir, i.ownDir = d, true
	}
	defer func() {
		if err != nil {
			i.Close()
		}
	}()
	key, err := newSigningKey()
	if err != nil {
		return nil, fmt.Errorf("new issuer: %w", err)
	}
	i.keys = []*signingKey{key}

	serverCert, err := i.writeCA()
	if err != nil {
		return nil, fmt.Errorf("new issuer: %w", err)
	}
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("new issuer: listen http: %w", err)
	}
	httpsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		httpLn.Close()
		return nil, fmt.Errorf("new issuer: listen https: %w", err)
	}
	i.httpURL = "http://" + httpLn.Addr().String() + i.path
	i.httpsURL = "https://" + httpsLn.Addr().String() + i.path
	i.httpServer = newIssuerServer(i.handler(i.httpURL), nil)
	i.httpsServer = newIssuerServer(i.handler(i.httpsURL), &tls.Config{
		Certificates: []tls.Certificate{serverCert},
		MinVersion:   tls.VersionTLS12,
	})
	i.serve(i.httpServer, httpLn, false)
	i.serve(i.httpsServer, httpsLn, true)
	i.log.Info("issuer started", "url", i.httpURL, "https_url", i.httpsURL, "kid", key.kid)
	return i, nil
}

func newIssuerServer(h http.Handler, tlsConfig *tls.Config) *http.Server {
	return &http.Server{
		Handler:           h,
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       30 * time.Second,
		MaxHeaderBytes:    16 << 10,
		// The TLS handshake errors of probing clients are expected noise in tests.
		ErrorLog: slog.NewLogLogger(slog.DiscardHandler, slog.LevelError),
	}
}

func (i *Issuer) serve(srv *http.Server, ln net.Listener, useTLS bool) {
	i.wg.Add(1)
	go func() {
		defer i.wg.Done()
		var err error
		if useTLS {
			err = srv.ServeTLS(ln, "", "")
		} else {
			err = srv.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			i.log.Error("issuer listener stopped", "error", err)
		}
	}()
}

// handler serves one listener: its discovery document names that listener's own URLs, because
// an https issuer must publish an https jwks_uri.
func (i *Issuer) handler(base string) http.Handler {
	mux := http.NewServeMux()
	discovery, _ := json.Marshal(map[string]any{
		"issuer":                                base,
		"jwks_uri":                              base + "openid/v1/jwks",
		"response_types_supported":              []string{"id_token"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
	})
	mux.HandleFunc("GET "+i.path+".well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(discovery)
	})
	mux.HandleFunc("GET "+i.path+"openid/v1/jwks", func(w http.ResponseWriter, _ *http.Request) {
		body, err := json.Marshal(i.JWKS())
		if err != nil {
			http.Error(w, "encode jwks", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Write(body)
	})
	return mux
}

// URL is the issuer URL served over HTTP, with the trailing slash AKS issuer URLs have. It is the
// iss claim of minted tokens unless TokenRequest.Issuer says otherwise.
func (i *Issuer) URL() string { return i.httpURL }

// HTTPSURL is the same issuer served over HTTPS with a certificate signed by CAFile.
func (i *Issuer) HTTPSURL() string { return i.httpsURL }

// Audience is the audience AKS workloads conventionally request: the issuer URL, trailing slash
// included. Minted tokens carry it unless TokenRequest.Audiences says otherwise.
func (i *Issuer) Audience() string { return i.httpURL }

// HTTPSAudience is Audience for tokens issued under HTTPSURL.
func (i *Issuer) HTTPSAudience() string { return i.httpsURL }

// ClusterAudiences are the three audiences of a token projected without an explicit audience on
// AKS: the issuer URL, the in-cluster API server and the quoted API server name.
func (i *Issuer) ClusterAudiences() []string {
	return []string{i.httpURL, KubernetesDefaultAudience, `"` + i.fqdn + `"`}
}

// CAFile is the absolute path of the PEM CA certificate that signed the HTTPS listener's
// certificate (SeaweedFS's tlsCaCert).
func (i *Issuer) CAFile() string { return i.caFile }

// CertPool holds the CA certificate, for Go clients of HTTPSURL.
func (i *Issuer) CertPool() *x509.CertPool { return i.caPool }

// KeyID is the kid of the key that signs new tokens.
func (i *Issuer) KeyID() string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.keys[len(i.keys)-1].kid
}

// RotateKey makes a new key the signing key and keeps the previous one published for the grace
// period, as an API server does when its service-account key is rotated. It returns the new kid.
func (i *Issuer) RotateKey() (string, error) {
	key, err := newSigningKey()
	if err != nil {
		return "", fmt.Errorf("rotate issuer key: %w", err)
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.keys[len(i.keys)-1].retiredAt = i.clock.Now()
	i.keys = append(i.keys, key)
	i.log.Info("issuer key rotated", "kid", key.kid, "grace", i.grace)
	return key.kid, nil
}

// DropRetiredKeys unpublishes every rotated-out key now instead of at the end of its grace period.
func (i *Issuer) DropRetiredKeys() {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.keys = i.keys[len(i.keys)-1:]
}

// JWKS returns the published key set: the signing key and the rotated-out keys still in their
// grace period. Keys past their grace period are forgotten.
func (i *Issuer) JWKS() JWKS {
	i.mu.Lock()
	defer i.mu.Unlock()
	now := i.clock.Now()
	live := i.keys[:0]
	for _, k := range i.keys {
		if k.retiredAt.IsZero() || now.Before(k.retiredAt.Add(i.grace)) {
			live = append(live, k)
		}
	}
	i.keys = live
	set := JWKS{Keys: make([]JWK, 0, len(live))}
	for _, k := range live {
		set.Keys = append(set.Keys, JWK{
			Use: "sig",
			Kty: "RSA",
			Kid: k.kid,
			Alg: "RS256",
			N:   base64.RawURLEncoding.EncodeToString(k.priv.N.Bytes()),
			E:   base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.priv.E)).Bytes()),
		})
	}
	return set
}

// JWKS is a JSON Web Key Set as the Kubernetes API server publishes it.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// JWK is one RSA public key of a JWKS.
type JWK struct {
	Use string `json:"use"`
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	N   string `json:"n"`
	E   string `json:"e"`
}

// Close stops both listeners and removes the temporary directory it created. It is idempotent.
func (i *Issuer) Close() error {
	i.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, srv := range []*http.Server{i.httpServer, i.httpsServer} {
			if srv == nil {
				continue
			}
			if err := srv.Shutdown(ctx); err != nil {
				srv.Close()
				i.closeErr = errors.Join(i.closeErr, fmt.Errorf("close issuer: %w", err))
			}
		}
		i.wg.Wait()
		if i.ownDir {
			if err := os.RemoveAll(i.dir); err != nil {
				i.closeErr = errors.Join(i.closeErr, fmt.Errorf("close issuer: %w", err))
			}
		}
	})
	return i.closeErr
}

func (i *Issuer) signer(choice KeyChoice) (*signingKey, string, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	current := i.keys[len(i.keys)-1]
	switch choice {
	case CurrentKey:
		return current, current.kid, nil
	case ForeignKey, ForeignKeyCurrentKID:
		if i.foreign == nil {
			k, err := newSigningKey()
			if err != nil {
				return nil, "", err
			}
			i.foreign = k
		}
		if choice == ForeignKeyCurrentKID {
			return i.foreign, current.kid, nil
		}
		return i.foreign, i.foreign.kid, nil
	default:
		return nil, "", fmt.Errorf("unknown key choice %d", choice)
	}
}

func newSigningKey() (*signingKey, error) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate rsa key: %w", err)
	}
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("marshal public key: %w", err)
	}
	// The API server's kid: base64url of the SHA-256 of the DER public key.
	sum := sha256.Sum256(der)
	return &signingKey{kid: base64.RawURLEncoding.EncodeToString(sum[:]), priv: priv}, nil
}

// writeCA makes the HTTPS listener's certificate and writes its CA to issuer-ca.pem, the file
// SeaweedFS's tlsCaCert names.
func (i *Issuer) writeCA() (tls.Certificate, error) {
	c, err := NewServingCert(i.dir, "issuer")
	if err != nil {
		return tls.Certificate{}, err
	}
	i.caFile, i.caPool = c.CAFile, c.Pool
	return c.TLS, nil
}

// newUUID returns a random RFC 4122 version 4 UUID.
func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
