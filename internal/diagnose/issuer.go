package diagnose

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/credsidecar/credsidecar/internal/creds"
	"github.com/credsidecar/credsidecar/internal/findings"
	"github.com/credsidecar/credsidecar/internal/issuer"
)

// publishFix is the way out for a cluster whose issuer STS cannot read.
const publishFix = "on kind, kubeadm and on-prem clusters publish the issuer to a bucket with `sidecar issuer publish " +
	"--bucket <bucket> --set-bucket-policy` and set the API server's --service-account-issuer to the URL it prints " +
	"(README: kind, kubeadm and on-prem); on AKS enable the cluster's OIDC issuer"

// checkIssuer fetches the token's issuer discovery document and JWKS anonymously, as STS does
// before it verifies a token, and reports what would stop STS: unreachable documents, a
// discovery document naming another issuer, the token's key missing from the JWKS. A plain-http
// issuer off loopback is token-warnings' issuer-not-https; it is not fetched.
func (r *Report) checkIssuer(ctx context.Context, opts Options, raw []byte, claims *creds.TokenClaims) {
	iss := claims.Issuer
	u, err := url.Parse(iss)
	if err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && findings.IsLoopbackHost(u.Hostname()))) {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	client := &http.Client{Timeout: opts.Timeout}
	discURL := strings.TrimSuffix(iss, "/") + issuer.DiscoveryPath
	body, err := issuer.FetchPublic(ctx, client, discURL)
	if err != nil {
		r.Findings = append(r.Findings, unreachable("discovery document", discURL, err))
		return
	}
	var disc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &disc); err != nil || disc.JWKSURI == "" {
		r.Findings = append(r.Findings, unreachable("discovery document", discURL, errors.New("not a discovery document (no jwks_uri)")))
		return
	}
	if disc.Issuer != iss {
		r.Findings = append(r.Findings, findings.Finding{
			ID:       findings.IDIssuerMismatch,
			Severity: findings.SeverityError,
			What:     fmt.Sprintf("the discovery document at %s names issuer %q; the token's iss is %q", discURL, disc.Issuer, iss),
			Why:      "STS accepts a token only from the issuer its discovery document names, character for character",
			Fix: fmt.Sprintf("publish the documents for the URL the tokens carry (`sidecar issuer publish --public-url %s`), or "+
				"restart the API server with --service-account-issuer=%s first", iss, disc.Issuer),
		})
		return
	}
	jwks, err := issuer.FetchPublic(ctx, client, disc.JWKSURI)
	if err != nil {
		r.Findings = append(r.Findings, unreachable("JWKS", disc.JWKSURI, err))
		return
	}
	kid := tokenKid(raw)
	if kid == "" || issuer.HasKid(jwks, kid) {
		return
	}
	_, kids, _ := issuer.CheckJWKS(jwks)
	r.Findings = append(r.Findings, findings.Finding{
		ID:       findings.IDIssuerKeyMissing,
		Severity: findings.SeverityError,
		What:     fmt.Sprintf("the token is signed with key %q, which the JWKS at %s does not hold (it holds %s)", kid, disc.JWKSURI, findings.QuoteList(kids)),
		Why:      "STS cannot verify the token's signature: the API server signs with a key that was not published",
		Fix: "publish the JWKS again (`sidecar issuer publish`, its CronJob or --watch) after adding the new key to the API " +
			"server's --service-account-key-file, and only then make it the signing key",
	})
}

func unreachable(what, rawURL string, err error) findings.Finding {
	return findings.Finding{
		ID:       findings.IDIssuerUnreachable,
		Severity: findings.SeverityError,
		What:     fmt.Sprintf("the issuer's %s cannot be fetched anonymously: %v", what, errorText(err, rawURL)),
		Why:      "STS fetches the discovery document and the JWKS from the token's issuer without credentials before it accepts a token; without them every AssumeRoleWithWebIdentity fails",
		Fix:      publishFix,
	}
}

// errorText names the URL once.
func errorText(err error, rawURL string) string {
	var se *issuer.StatusError
	if errors.As(err, &se) {
		return "GET " + se.URL + ": " + se.Status
	}
	return "GET " + rawURL + ": " + err.Error()
}

// tokenKid is the kid of a JWT's header, "" when it has none.
func tokenKid(raw []byte) string {
	head, _, ok := strings.Cut(strings.TrimSpace(string(raw)), ".")
	if !ok {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return ""
	}
	var h struct {
		Kid string `json:"kid"`
	}
	_ = json.Unmarshal(b, &h)
	return h.Kid
}
