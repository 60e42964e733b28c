// Package issuer is `sidecar issuer publish`: it makes a self-managed cluster's service-account
// issuer public the way AWS STS needs it. STS fetches <iss>/.well-known/openid-configuration
// and the JWKS it points at, anonymously and over https, for every AssumeRoleWithWebIdentity;
// AKS, GKE and EKS host those documents, kind, kubeadm and most on-prem clusters do not. This
// package reads them from the API server, rewrites them for a public URL (an S3 bucket's),
// uploads them when they changed, checks them there as STS will fetch them, and says what is
// left to configure on the API server and in IAM.
package issuer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// The two documents' paths, under the issuer URL and under the bucket prefix alike.
const (
	DiscoveryPath = "/.well-known/openid-configuration"
	JWKSPath      = "/openid/v1/jwks"
)

// privateMembers are the JWK members that carry private key material (RFC 7518 §6.2.2, §6.4):
// a JWKS holding any of them would publish a signing key.
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// Documents are the discovery document and JWKS as published.
type Documents struct {
	Discovery, JWKS []byte
	// APIIssuer is the issuer the API server's own discovery document names: what its tokens
	// carry as iss.
	APIIssuer string
	// Kids are the JWKS's key ids.
	Kids []string
}

// Rewrite turns the API server's discovery document and JWKS into the published ones: issuer
// becomes publicURL and jwks_uri <publicURL>/openid/v1/jwks, every other field kept; the JWKS
// is refused if any key carries private material or has no kid.
func Rewrite(discovery, jwks []byte, publicURL string) (*Documents, error) {
	var disc map[string]any
	if err := json.Unmarshal(discovery, &disc); err != nil {
		return nil, fmt.Errorf("the API server's discovery document is not JSON: %w", err)
	}
	apiIssuer, _ := disc["issuer"].(string)
	if apiIssuer == "" {
		return nil, errors.New("the API server's discovery document has no issuer")
	}
	publicURL = strings.TrimSuffix(publicURL, "/")
	disc["issuer"] = publicURL
	disc["jwks_uri"] = publicURL + JWKSPath
	d := &Documents{APIIssuer: apiIssuer}
	var err error
	if d.Discovery, err = json.MarshalIndent(disc, "", "  "); err != nil {
		return nil, err
	}
	if d.JWKS, d.Kids, err = CheckJWKS(jwks); err != nil {
		return nil, err
	}
	return d, nil
}

// CheckJWKS refuses a JWKS holding anything but public keys with key ids, naming the key, and
// returns it re-encoded (stable, indented) with its key ids.
func CheckJWKS(jwks []byte) ([]byte, []string, error) {
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(jwks, &set); err != nil {
		return nil, nil, fmt.Errorf("the API server's JWKS is not JSON: %w", err)
	}
	if len(set.Keys) == 0 {
		return nil, nil, errors.New("the API server's JWKS holds no keys")
	}
	var kids []string
	for i, k := range set.Keys {
		kid, _ := k["kid"].(string)
		if kid == "" {
			return nil, nil, fmt.Errorf("key %d of the JWKS has no kid: STS picks the key by the token's kid", i)
		}
		for _, m := range privateMembers {
			if _, ok := k[m]; ok {
				return nil, nil, fmt.Errorf("key %s of the JWKS carries private key material (%q): refusing to publish it", kid, m)
			}
		}
		kids = append(kids, kid)
	}
	out, err := json.MarshalIndent(set, "", "  ")
	return out, kids, err
}

// DefaultPublicURL is a bucket's virtual-hosted https URL plus the prefix: what STS can reach
// without any other hosting.
func DefaultPublicURL(bucket, region, prefix string) string {
	host := bucket + ".s3.amazonaws.com"
	if region != "" && region != "us-east-1" {
		host = bucket + ".s3." + region + ".amazonaws.com"
	}
	return "https://" + host + prefixPath(prefix)
}

// prefixPath is "/prefix" for a non-empty prefix, without a trailing slash, else "".
func prefixPath(prefix string) string {
	prefix = strings.Trim(prefix, "/")
	if prefix == "" {
		return ""
	}
	return "/" + prefix
}

// objectKey is the bucket key of a document's path under prefix.
func objectKey(prefix, path string) string { return strings.TrimPrefix(prefixPath(prefix)+path, "/") }

// PolicySid names the one bucket-policy statement publish manages.
const PolicySid = "CredsidecarIssuerPublicRead"

// MergePolicy returns the bucket policy with publish's public-read statement for the two
// objects under prefix, every other statement kept as it was; changed is false when current
// already holds exactly that statement. current may be empty (no policy yet).
func MergePolicy(current []byte, bucket, prefix string) (policy []byte, changed bool, err error) {
	doc := map[string]any{"Version": "2012-10-17"}
	if len(bytes.TrimSpace(current)) > 0 {
		if err := json.Unmarshal(current, &doc); err != nil {
			return nil, false, fmt.Errorf("the bucket's policy is not JSON: %w", err)
		}
	}
	var stmts []any
	switch s := doc["Statement"].(type) {
	case []any:
		stmts = s
	case map[string]any:
		stmts = []any{s}
	case nil:
	default:
		return nil, false, errors.New("the bucket's policy has a Statement that is neither a list nor an object")
	}
	ours := map[string]any{
		"Sid":       PolicySid,
		"Effect":    "Allow",
		"Principal": "*",
		"Action":    "s3:GetObject",
		"Resource": []any{
			"arn:aws:s3:::" + bucket + "/" + objectKey(prefix, DiscoveryPath),
			"arn:aws:s3:::" + bucket + "/" + objectKey(prefix, JWKSPath),
		},
	}
	var kept []any
	for _, st := range stmts {
		if m, ok := st.(map[string]any); ok && m["Sid"] == PolicySid {
			if jsonEqual(m, ours) {
				return current, false, nil
			}
			continue
		}
		kept = append(kept, st)
	}
	doc["Statement"] = append(kept, ours)
	out, err := json.MarshalIndent(doc, "", "  ")
	return out, true, err
}

func jsonEqual(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

// SameJSON reports whether two documents hold the same JSON value, whatever their formatting.
func SameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return jsonEqual(x, y)
}

// FetchPublic GETs a document anonymously, as STS does: no credentials, at most maxDocument
// bytes; anything but 200 is a *StatusError.
func FetchPublic(ctx context.Context, client *http.Client, rawURL string) ([]byte, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("%q is not an absolute URL", rawURL)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocument))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &StatusError{URL: rawURL, Status: resp.Status, Code: resp.StatusCode}
	}
	return body, nil
}

// StatusError is a public document answered with another status than 200.
type StatusError struct {
	URL, Status string
	Code        int
}

func (e *StatusError) Error() string { return "GET " + e.URL + ": " + e.Status }

// HasKid reports whether a JWKS holds a key with kid.
func HasKid(jwks []byte, kid string) bool {
	_, kids, err := CheckJWKS(jwks)
	return err == nil && slices.Contains(kids, kid)
}
