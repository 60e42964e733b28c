package testbed

import (
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"crypto/x509"

	"github.com/credsidecar/credsidecar/internal/clock"
)

// t0 is a whole second, so iat/exp (whole seconds) compare exactly with the fake clock.
var t0 = time.Date(2026, 11, 25, 17, 21, 52, 0, time.UTC)

// decodeSegment returns the JSON object in a token segment, keys and raw values as written.
func decodeSegment(t *testing.T, seg string) map[string]json.RawMessage {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatalf("segment is not base64url without padding: %v", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("segment is not a JSON object: %v", err)
	}
	return m
}

func keysOf[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func TestMintMatchesServiceAccountTokenShape(t *testing.T) {
	fake := clock.NewFake(t0)
	iss := StartIssuerForTest(t, IssuerOptions{Clock: fake, ClusterFQDN: "aks-x-dns-1.hcp.eastus.azmk8s.io"})
	uuidRE := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

	tests := []struct {
		name     string
		req      TokenRequest
		wantIss  string
		wantSub  string
		wantNS   string
		wantSA   string
		wantAud  []string
		wantLife time.Duration
	}{
		{
			name:    "default",
			wantIss: iss.URL(), wantSub: "system:serviceaccount:default:s3-access-sa",
			wantNS: "default", wantSA: "s3-access-sa",
			wantAud: []string{iss.URL()}, wantLife: time.Hour,
		},
		{
			name:    "other service account",
			req:     TokenRequest{Namespace: "payments", ServiceAccount: "billing", PodName: "billing-0", Lifetime: 10 * time.Minute},
			wantIss: iss.URL(), wantSub: "system:serviceaccount:payments:billing",
			wantNS: "payments", wantSA: "billing",
			wantAud: []string{iss.URL()}, wantLife: 10 * time.Minute,
		},
		{
			name:    "cluster default audiences",
			req:     TokenRequest{Audiences: iss.ClusterAudiences()},
			wantIss: iss.URL(), wantSub: "system:serviceaccount:default:s3-access-sa",
			wantNS: "default", wantSA: "s3-access-sa",
			wantAud:  []string{iss.URL(), "https://kubernetes.default.svc.cluster.local", `"aks-x-dns-1.hcp.eastus.azmk8s.io"`},
			wantLife: time.Hour,
		},
		{
			name:    "https issuer",
			req:     TokenRequest{Issuer: iss.HTTPSURL(), Audiences: []string{iss.HTTPSAudience()}},
			wantIss: iss.HTTPSURL(), wantSub: "system:serviceaccount:default:s3-access-sa",
			wantNS: "default", wantSA: "s3-access-sa",
			wantAud: []string{iss.HTTPSURL()}, wantLife: time.Hour,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := iss.Mint(tt.req)
			if err != nil {
				t.Fatal(err)
			}
			parts := strings.Split(tok, ".")
			if len(parts) != 3 {
				t.Fatalf("token has %d parts, want 3", len(parts))
			}

			header := decodeSegment(t, parts[0])
			if got := keysOf(header); !slices.Equal(got, []string{"alg", "kid"}) {
				t.Errorf("header keys = %v, want exactly [alg kid] as the API server writes", got)
			}
			if string(header["alg"]) != `"RS256"` {
				t.Errorf("alg = %s, want \"RS256\"", header["alg"])
			}
			if string(header["kid"]) != `"`+iss.KeyID()+`"` {
				t.Errorf("kid = %s, want %q", header["kid"], iss.KeyID())
			}

			claims := decodeSegment(t, parts[1])
			wantKeys := []string{"aud", "exp", "iat", "iss", "jti", "kubernetes.io", "nbf", "sub"}
			if got := keysOf(claims); !slices.Equal(got, wantKeys) {
				t.Errorf("claim keys = %v, want %v", got, wantKeys)
			}
			if !strings.HasPrefix(string(claims["aud"]), "[") {
				t.Errorf("aud = %s, want a JSON array as Kubernetes writes it", claims["aud"])
			}
			var k8s map[string]map[string]json.RawMessage
			var k8sRaw map[string]json.RawMessage
			json.Unmarshal(claims["kubernetes.io"], &k8sRaw)
			if got := keysOf(k8sRaw); !slices.Equal(got, []string{"namespace", "node", "pod", "serviceaccount"}) {
				t.Errorf("kubernetes.io keys = %v", got)
			}
			delete(k8sRaw, "namespace")
			b, _ := json.Marshal(k8sRaw)
			if err := json.Unmarshal(b, &k8s); err != nil {
				t.Fatalf("kubernetes.io objects: %v", err)
			}
			for _, obj := range []string{"node", "pod", "serviceaccount"} {
				if got := keysOf(k8s[obj]); !slices.Equal(got, []string{"name", "uid"}) {
					t.Errorf("kubernetes.io.%s keys = %v, want [name uid]", obj, got)
				}
			}

			h, c, err := ParseUnverified(tok)
			if err != nil {
				t.Fatal(err)
			}
			if h.Alg != "RS256" || h.Kid != iss.KeyID() {
				t.Errorf("header = %+v", h)
			}
			if c.Issuer != tt.wantIss || c.Subject != tt.wantSub || !slices.Equal(c.Audience, tt.wantAud) {
				t.Errorf("iss, sub, aud = %q, %q, %q; want %q, %q, %q", c.Issuer, c.Subject, c.Audience, tt.wantIss, tt.wantSub, tt.wantAud)
			}
			if c.IssuedAt != t0.Unix() || c.NotBefore != t0.Unix() || c.Expiry != t0.Add(tt.wantLife).Unix() {
				t.Errorf("iat, nbf, exp = %d, %d, %d; want %d, %d, %d", c.IssuedAt, c.NotBefore, c.Expiry, t0.Unix(), t0.Unix(), t0.Add(tt.wantLife).Unix())
			}
			if !uuidRE.MatchString(c.ID) {
				t.Errorf("jti = %q, want a UUID", c.ID)
			}
			kc := c.Kubernetes
			if kc.Namespace != tt.wantNS || kc.ServiceAccount.Name != tt.wantSA {
				t.Errorf("kubernetes.io namespace, serviceaccount = %q, %q", kc.Namespace, kc.ServiceAccount.Name)
			}
			if kc.Pod == nil || kc.Pod.Name == "" || !uuidRE.MatchString(kc.Pod.UID) || !uuidRE.MatchString(kc.ServiceAccount.UID) {
				t.Errorf("kubernetes.io pod, serviceaccount = %+v, %+v; want names and UUIDs", kc.Pod, kc.ServiceAccount)
			}
			if tt.req.PodName != "" && kc.Pod.Name != tt.req.PodName {
				t.Errorf("pod name = %q, want %q", kc.Pod.Name, tt.req.PodName)
			}
			if _, err := iss.Verify(tok); err != nil {
				t.Errorf("token does not verify against the published JWKS: %v", err)
			}
		})
	}
}

func TestMintNegativeTokens(t *testing.T) {
	fake := clock.NewFake(t0)
	iss := StartIssuerForTest(t, IssuerOptions{Clock: fake})

	tests := []struct {
		name       string
		req        TokenRequest
		wantVerify string // substring of the Verify error; "" means it verifies
		check      func(t *testing.T, h Header, c Claims)
	}{
		{
			name:       "foreign key under its own kid",
			req:        TokenRequest{Key: ForeignKey},
			wantVerify: "not in the jwks",
			check: func(t *testing.T, h Header, _ Claims) {
				if h.Kid == iss.KeyID() {
					t.Error("foreign token names the published kid")
				}
			},
		},
		{
			name:       "foreign key under the published kid",
			req:        TokenRequest{Key: ForeignKeyCurrentKID},
			wantVerify: "verification error",
			check: func(t *testing.T, h Header, _ Claims) {
				if h.Kid != iss.KeyID() {
					t.Errorf("kid = %q, want the published %q", h.Kid, iss.KeyID())
				}
			},
		},
		{
			name: "expired",
			req:  TokenRequest{IssuedAt: t0.Add(-2 * time.Hour)},
			check: func(t *testing.T, _ Header, c Claims) {
				if exp := time.Unix(c.Expiry, 0); !exp.Before(fake.Now()) {
					t.Errorf("exp %s is not before now %s", exp, fake.Now())
				}
			},
		},
		{
			name: "given expiry",
			req:  TokenRequest{Expiry: t0.Add(-time.Minute), Lifetime: 10 * time.Minute},
			check: func(t *testing.T, _ Header, c Claims) {
				if c.Expiry != t0.Add(-time.Minute).Unix() || c.IssuedAt != t0.Add(-11*time.Minute).Unix() {
					t.Errorf("iat, exp = %d, %d; want exp a minute ago, iat 10 min before it", c.IssuedAt, c.Expiry)
				}
			},
		},
		{
			name: "wrong audience",
			req:  TokenRequest{Audiences: []string{"sts.amazonaws.com"}},
			check: func(t *testing.T, _ Header, c Claims) {
				if !slices.Equal(c.Audience, []string{"sts.amazonaws.com"}) {
					t.Errorf("aud = %q", c.Audience)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := iss.Mint(tt.req)
			if err != nil {
				t.Fatal(err)
			}
			h, c, err := ParseUnverified(tok)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, h, c)
			_, err = iss.Verify(tok)
			switch {
			case tt.wantVerify == "" && err != nil:
				t.Errorf("Verify: %v, want success", err)
			case tt.wantVerify != "" && (err == nil || !strings.Contains(err.Error(), tt.wantVerify)):
				t.Errorf("Verify error = %v, want one containing %q", err, tt.wantVerify)
			}
		})
	}
}

func TestDiscoveryAndJWKSOverHTTPAndHTTPS(t *testing.T) {
	iss := StartIssuerForTest(t, IssuerOptions{})
	trusting := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: iss.CertPool()},
	}}
	t.Cleanup(trusting.CloseIdleConnections)
	tok, err := iss.Mint(TokenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	h, _, _ := ParseUnverified(tok)

	tests := []struct {
		name string
		base string
	}{
		{name: "http", base: iss.URL()},
		{name: "https", base: iss.HTTPSURL()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var doc struct {
				Issuer  string   `json:"issuer"`
				JWKSURI string   `json:"jwks_uri"`
				Algs    []string `json:"id_token_signing_alg_values_supported"`
			}
			// SeaweedFS (like AWS) trims the issuer's trailing slash before appending the path.
			getJSON(t, trusting, strings.TrimSuffix(tt.base, "/")+"/.well-known/openid-configuration", &doc)
			if doc.Issuer != tt.base {
				t.Errorf("discovery issuer = %q, want %q", doc.Issuer, tt.base)
			}
			if doc.JWKSURI != tt.base+"openid/v1/jwks" {
				t.Errorf("jwks_uri = %q, want %q", doc.JWKSURI, tt.base+"openid/v1/jwks")
			}
			if !slices.Equal(doc.Algs, []string{"RS256"}) {
				t.Errorf("algs = %q", doc.Algs)
			}
			var set JWKS
			getJSON(t, trusting, doc.JWKSURI, &set)
			if len(set.Keys) != 1 || set.Keys[0].Kid != h.Kid || set.Keys[0].Kty != "RSA" || set.Keys[0].Alg != "RS256" || set.Keys[0].Use != "sig" {
				t.Fatalf("jwks = %+v, want the one signing key %q", set, h.Kid)
			}
			if _, err := set.Keys[0].publicKey(); err != nil {
				t.Errorf("published key does not decode: %v", err)
			}
		})
	}

	t.Run("https without the CA is refused", func(t *testing.T) {
		plain := &http.Client{Timeout: 5 * time.Second}
		resp, err := plain.Get(iss.HTTPSURL() + ".well-known/openid-configuration")
		if err == nil {
			resp.Body.Close()
			t.Fatal("a client without the CA accepted the issuer's certificate")
		}
		if !errors.As(err, new(x509.UnknownAuthorityError)) {
			t.Errorf("error = %v, want x509.UnknownAuthorityError", err)
		}
	})

	t.Run("CA file", func(t *testing.T) {
		pemBytes, err := os.ReadFile(iss.CAFile())
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			t.Fatalf("%s holds no PEM certificate", iss.CAFile())
		}
		if !strings.HasPrefix(iss.CAFile(), "/") {
			t.Errorf("CAFile %q is not absolute; SeaweedFS requires an absolute tlsCaCert", iss.CAFile())
		}
	})
}

func getJSON(t *testing.T, c *http.Client, url string, v any) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

func TestKeyRotationKeepsOldKeyForGracePeriod(t *testing.T) {
	fake := clock.NewFake(t0)
	iss := StartIssuerForTest(t, IssuerOptions{Clock: fake, KeyGracePeriod: time.Hour})
	kids := func() []string {
		var ks []string
		for _, k := range iss.JWKS().Keys {
			ks = append(ks, k.Kid)
		}
		return ks
	}
	oldKid := iss.KeyID()
	oldTok, err := iss.Mint(TokenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	newKid, err := iss.RotateKey()
	if err != nil {
		t.Fatal(err)
	}
	if newKid == oldKid || iss.KeyID() != newKid {
		t.Fatalf("after rotation kid = %q (returned %q), old %q", iss.KeyID(), newKid, oldKid)
	}
	newTok, err := iss.Mint(TokenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if h, _, _ := ParseUnverified(newTok); h.Kid != newKid {
		t.Errorf("new token kid = %q, want %q", h.Kid, newKid)
	}

	steps := []struct {
		name       string
		advance    time.Duration
		wantKids   []string
		oldVerifes bool
	}{
		{name: "just rotated", wantKids: []string{oldKid, newKid}, oldVerifes: true},
		{name: "end of grace period", advance: time.Hour - time.Second, wantKids: []string{oldKid, newKid}, oldVerifes: true},
		{name: "grace period over", advance: time.Second, wantKids: []string{newKid}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			fake.Advance(st.advance)
			if got := kids(); !slices.Equal(got, st.wantKids) {
				t.Errorf("published kids = %q, want %q", got, st.wantKids)
			}
			if _, err := iss.Verify(newTok); err != nil {
				t.Errorf("new token: %v", err)
			}
			if _, err := iss.Verify(oldTok); (err == nil) != st.oldVerifes {
				t.Errorf("old token verifies = %v, want %v", err == nil, st.oldVerifes)
			}
		})
	}

	t.Run("drop retired keys at once", func(t *testing.T) {
		if _, err := iss.RotateKey(); err != nil {
			t.Fatal(err)
		}
		if n := len(iss.JWKS().Keys); n != 2 {
			t.Fatalf("%d keys published after a rotation, want 2", n)
		}
		iss.DropRetiredKeys()
		if got := kids(); !slices.Equal(got, []string{iss.KeyID()}) {
			t.Errorf("published kids = %q, want only %q", got, iss.KeyID())
		}
	})
}

func TestIssuerCloseIsIdempotentAndStopsListening(t *testing.T) {
	iss, err := NewIssuer(IssuerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := iss.CAFile()
	for range 2 {
		if err := iss.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	c := &http.Client{Timeout: 2 * time.Second}
	if resp, err := c.Get(iss.URL() + ".well-known/openid-configuration"); err == nil {
		resp.Body.Close()
		t.Error("issuer still answers after Close")
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("CA file %s left behind: %v", dir, err)
	}
}
