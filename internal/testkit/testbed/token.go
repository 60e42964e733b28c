package testbed

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// Defaults of a minted token: the service account the default role trusts, in the namespace it
// trusts, for the lifetime the kubelet asks for by default.
const (
	DefaultNamespace      = "default"
	DefaultServiceAccount = "s3-access-sa"
	DefaultTokenLifetime  = time.Hour
)

// KeyChoice selects the key that signs a minted token.
type KeyChoice int

const (
	// CurrentKey signs with the issuer's published signing key.
	CurrentKey KeyChoice = iota
	// ForeignKey signs with a key that is never published, under its own kid.
	ForeignKey
	// ForeignKeyCurrentKID signs with the unpublished key but names the published key's kid, as a
	// forger would: the kid resolves and the signature check fails.
	ForeignKeyCurrentKID
)

// TokenRequest describes a service-account token to mint. The zero value asks for the token a
// pod running as DefaultServiceAccount gets with audience Issuer.Audience().
type TokenRequest struct {
	Namespace      string   // DefaultNamespace when empty
	ServiceAccount string   // DefaultServiceAccount when empty
	PodName        string   // "<service account>-<random>" when empty
	NodeName       string   // an AKS-style node name when empty
	Audiences      []string // Issuer.Audience() when nil; see Issuer.ClusterAudiences
	// IssuedAt is iat and nbf; the issuer's clock when zero, or Expiry - Lifetime when Expiry is
	// set.
	IssuedAt time.Time
	Lifetime time.Duration // exp - iat; DefaultTokenLifetime when 0
	// Expiry is exp when set, e.g. a minute ago for an expired token; else IssuedAt + Lifetime.
	Expiry time.Time
	Issuer string // iss; Issuer.URL() when empty (Issuer.HTTPSURL() for the TLS provider)
	Key    KeyChoice
}

// Claims are the claims of a projected service-account token, named as the API server names them.
type Claims struct {
	Issuer     string           `json:"iss"`
	Subject    string           `json:"sub"`
	Audience   []string         `json:"aud"`
	Expiry     int64            `json:"exp"`
	IssuedAt   int64            `json:"iat"`
	NotBefore  int64            `json:"nbf"`
	ID         string           `json:"jti"`
	Kubernetes KubernetesClaims `json:"kubernetes.io"`
}

// KubernetesClaims is the "kubernetes.io" claim: what the token is bound to.
type KubernetesClaims struct {
	Namespace      string     `json:"namespace"`
	Node           *ObjectRef `json:"node,omitempty"`
	Pod            *ObjectRef `json:"pod,omitempty"`
	ServiceAccount ObjectRef  `json:"serviceaccount"`
}

// ObjectRef names a Kubernetes object by name and uid.
type ObjectRef struct {
	Name string `json:"name"`
	UID  string `json:"uid"`
}

// Header is a token's JOSE header. The API server writes alg and kid only.
type Header struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
}

// Mint signs a service-account token.
func (i *Issuer) Mint(req TokenRequest) (string, error) {
	ns := valueOr(req.Namespace, DefaultNamespace)
	sa := valueOr(req.ServiceAccount, DefaultServiceAccount)
	lifetime := req.Lifetime
	if lifetime == 0 {
		lifetime = DefaultTokenLifetime
	}
	iat, exp := req.IssuedAt, req.Expiry
	switch {
	case iat.IsZero() && !exp.IsZero():
		iat = exp.Add(-lifetime)
	case iat.IsZero():
		iat = i.clock.Now()
	}
	if exp.IsZero() {
		exp = iat.Add(lifetime)
	}
	aud := req.Audiences
	if aud == nil {
		aud = []string{i.Audience()}
	}
	claims := Claims{
		Issuer:    valueOr(req.Issuer, i.URL()),
		Subject:   "system:serviceaccount:" + ns + ":" + sa,
		Audience:  aud,
		Expiry:    exp.Unix(),
		IssuedAt:  iat.Unix(),
		NotBefore: iat.Unix(),
		ID:        newUUID(),
		Kubernetes: KubernetesClaims{
			Namespace:      ns,
			Node:           &ObjectRef{Name: valueOr(req.NodeName, "aks-nodepool1-12345678-vmss000000"), UID: newUUID()},
			Pod:            &ObjectRef{Name: valueOr(req.PodName, sa+"-"+randomSuffix()), UID: newUUID()},
			ServiceAccount: ObjectRef{Name: sa, UID: newUUID()},
		},
	}
	key, kid, err := i.signer(req.Key)
	if err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	tok, err := signJWT(key.priv, Header{Alg: "RS256", Kid: kid}, claims)
	if err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	return tok, nil
}

// Minter returns a Minter for the Projector that mints req afresh, issued at the time it is
// called with.
func (i *Issuer) Minter(req TokenRequest) Minter {
	return func(now time.Time) (string, error) {
		r := req
		r.IssuedAt, r.Expiry = now, time.Time{}
		return i.Mint(r)
	}
}

func signJWT(key *rsa.PrivateKey, h Header, claims any) (string, error) {
	hj, err := json.Marshal(h)
	if err != nil {
		return "", fmt.Errorf("encode header: %w", err)
	}
	cj, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("encode claims: %w", err)
	}
	input := base64.RawURLEncoding.EncodeToString(hj) + "." + base64.RawURLEncoding.EncodeToString(cj)
	sum := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// ParseUnverified decodes a token's header and claims without checking its signature, for tests
// that inspect what was minted or projected.
func ParseUnverified(token string) (Header, Claims, error) {
	var h Header
	var c Claims
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return h, c, errors.New("parse token: not three dot-separated parts")
	}
	hj, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return h, c, fmt.Errorf("parse token header: %w", err)
	}
	if err := json.Unmarshal(hj, &h); err != nil {
		return h, c, fmt.Errorf("parse token header: %w", err)
	}
	cj, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return h, c, fmt.Errorf("parse token claims: %w", err)
	}
	if err := json.Unmarshal(cj, &c); err != nil {
		return h, c, fmt.Errorf("parse token claims: %w", err)
	}
	return h, c, nil
}

// Verify checks token's RS256 signature against the issuer's published JWKS and returns its
// claims. It checks nothing else (not exp, not aud): STS's verdict is what tests assert on.
func (i *Issuer) Verify(token string) (Claims, error) {
	h, c, err := ParseUnverified(token)
	if err != nil {
		return c, fmt.Errorf("verify token: %w", err)
	}
	if h.Alg != "RS256" {
		return c, fmt.Errorf("verify token: alg %q is not RS256", h.Alg)
	}
	var pub *rsa.PublicKey
	for _, k := range i.JWKS().Keys {
		if k.Kid == h.Kid {
			pub, err = k.publicKey()
			if err != nil {
				return c, fmt.Errorf("verify token: %w", err)
			}
		}
	}
	if pub == nil {
		return c, fmt.Errorf("verify token: kid %q not in the jwks", h.Kid)
	}
	dot := strings.LastIndexByte(token, '.')
	sig, err := base64.RawURLEncoding.DecodeString(token[dot+1:])
	if err != nil {
		return c, fmt.Errorf("verify token: signature encoding: %w", err)
	}
	sum := sha256.Sum256([]byte(token[:dot]))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
		return c, fmt.Errorf("verify token: %w", err)
	}
	return c, nil
}

func (k JWK) publicKey() (*rsa.PublicKey, error) {
	n, err := base64.RawURLEncoding.DecodeString(k.N)
	if err != nil {
		return nil, fmt.Errorf("jwk n: %w", err)
	}
	e, err := base64.RawURLEncoding.DecodeString(k.E)
	if err != nil {
		return nil, fmt.Errorf("jwk e: %w", err)
	}
	var exp int
	for _, b := range e {
		exp = exp<<8 | int(b)
	}
	return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: exp}, nil
}

func valueOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// randomSuffix imitates the "<replicaset hash>-<pod hash>" tail of a Deployment's pod name.
func randomSuffix() string {
	const alphabet = "bcdfghjklmnpqrstvwxz2456789"
	var b [16]byte
	rand.Read(b[:])
	out := make([]byte, 0, 16)
	for j, c := range b {
		if j == 10 {
			out = append(out, '-')
		}
		if j >= 15 {
			break
		}
		out = append(out, alphabet[int(c)%len(alphabet)])
	}
	return string(out)
}
