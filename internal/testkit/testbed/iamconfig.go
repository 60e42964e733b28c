package testbed

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
)

// The trust setup the test bed writes by default, shaped like the AWS side of an AKS workload
// identity: one role a service account may assume, allowed to use one bucket.
const (
	AccountID         = "111122223333"
	DefaultRoleName   = "AKS-S3-Access-Role"
	DefaultRoleARN    = "arn:aws:iam::" + AccountID + ":role/" + DefaultRoleName
	DefaultPolicyName = "S3AccessPolicy"
	DefaultBucket     = "credsidecar-test"
	// ProviderName is the provider that trusts Issuer.URL(). SeaweedFS names a trust policy's
	// Principal.Federated by provider name where AWS uses the provider's ARN.
	ProviderName = "aks-oidc"
	// TLSProviderName is the provider that trusts Issuer.HTTPSURL(), reaching it through
	// tlsCaCert.
	TLSProviderName = "aks-oidc-tls"
	// KubeProviderName is the provider that trusts a KubeAPI's issuer (KubeAPIIAMConfig).
	KubeProviderName = "kube-apiserver-oidc"
)

// IAMConfig is SeaweedFS's advanced IAM file (-s3.iam.config), as read by
// weed/s3api/s3api_server.go loadIAMManagerFromConfig.
type IAMConfig struct {
	STS       STSConfig     `json:"sts"`
	Policy    *EngineConfig `json:"policy,omitempty"`
	Providers []Provider    `json:"providers"`
	Roles     []Role        `json:"roles"`
	Policies  []Policy      `json:"policies"`
}

// STSConfig is the "sts" section. SigningKey signs the session tokens SeaweedFS hands out.
type STSConfig struct {
	TokenDuration    string `json:"tokenDuration,omitempty"`
	MaxSessionLength string `json:"maxSessionLength,omitempty"`
	Issuer           string `json:"issuer,omitempty"`
	SigningKey       []byte `json:"signingKey,omitempty"`
	AccountID        string `json:"accountId,omitempty"`
}

// EngineConfig is the "policy" section: what happens when no policy statement matches.
type EngineConfig struct {
	DefaultEffect string `json:"defaultEffect"`
	StoreType     string `json:"storeType"`
}

// Provider is one OIDC identity provider.
type Provider struct {
	Name   string         `json:"name"`
	Type   string         `json:"type"`
	Config ProviderConfig `json:"config"`
}

// ProviderConfig is an OIDC provider's settings. ClientIDs are the accepted audiences (AWS's
// client ID list); a token passes when any of its aud values is listed.
type ProviderConfig struct {
	Issuer    string   `json:"issuer"`
	ClientIDs []string `json:"clientIds"`
	// TLSCACert is an absolute path to a PEM CA trusted for the issuer's HTTPS endpoints.
	TLSCACert string `json:"tlsCaCert,omitempty"`
	// JWKSCacheTTLSeconds bounds how long fetched keys are cached (SeaweedFS default 3600); an
	// unknown kid always triggers a refetch.
	JWKSCacheTTLSeconds int `json:"jwksCacheTTLSeconds,omitempty"`
}

// Role is an assumable role: who may assume it and which policies it gets.
type Role struct {
	RoleName           string         `json:"roleName"`
	RoleArn            string         `json:"roleArn"`
	TrustPolicy        PolicyDocument `json:"trustPolicy"`
	AttachedPolicies   []string       `json:"attachedPolicies"`
	MaxSessionDuration int64          `json:"maxSessionDuration,omitempty"`
}

// Policy is a named permission policy that roles attach.
type Policy struct {
	Name     string         `json:"name"`
	Document PolicyDocument `json:"document"`
}

// PolicyDocument is an IAM policy document.
type PolicyDocument struct {
	Version   string      `json:"Version"`
	Statement []Statement `json:"Statement"`
}

// Statement is one IAM policy statement. Trust policies set Principal and leave Resource empty.
type Statement struct {
	Sid       string                    `json:"Sid,omitempty"`
	Effect    string                    `json:"Effect"`
	Principal map[string]any            `json:"Principal,omitempty"`
	Action    []string                  `json:"Action"`
	Resource  []string                  `json:"Resource,omitempty"`
	Condition map[string]map[string]any `json:"Condition,omitempty"`
}

// Subject is the sub claim of a service account's token.
func Subject(namespace, serviceAccount string) string {
	return "system:serviceaccount:" + namespace + ":" + serviceAccount
}

// RoleARN is the ARN of role name in the test bed's account.
func RoleARN(name string) string { return "arn:aws:iam::" + AccountID + ":role/" + name }

// DefaultIAMConfig returns the trust setup of an AKS workload identity against iss: providers for
// its HTTP and HTTPS URLs accepting audience (iss.Audience() when empty; the HTTPS provider
// accepts iss.HTTPSAudience()), the role DefaultRoleARN trusting DefaultServiceAccount in
// DefaultNamespace through either provider, and DefaultPolicyName allowing Get/Put/DeleteObject
// on bucket's objects and ListBucket on bucket.
func DefaultIAMConfig(iss *Issuer, bucket, audience string) IAMConfig {
	if audience == "" {
		audience = iss.Audience()
	}
	return trustConfig(bucket,
		Provider{Name: ProviderName, Type: "oidc", Config: ProviderConfig{
			Issuer:    iss.URL(),
			ClientIDs: []string{audience},
		}},
		Provider{Name: TLSProviderName, Type: "oidc", Config: ProviderConfig{
			Issuer:    iss.HTTPSURL(),
			ClientIDs: []string{iss.HTTPSAudience()},
			TLSCACert: iss.CAFile(),
		}})
}

// KubeAPIIAMConfig is DefaultIAMConfig's trust setup against a real API server's issuer:
// SeaweedFS fetches its discovery document and JWKS over https, trusting k.CAFile(), and
// accepts tokens whose aud holds audience.
func KubeAPIIAMConfig(k *KubeAPI, bucket, audience string) IAMConfig {
	return trustConfig(bucket, Provider{Name: KubeProviderName, Type: "oidc", Config: ProviderConfig{
		Issuer:    k.Issuer(),
		ClientIDs: []string{audience},
		TLSCACert: k.CAFile(),
	}})
}

// PublishedIssuerIAMConfig is DefaultIAMConfig's trust setup against an issuer published to a
// bucket (`sidecar issuer publish`): SeaweedFS fetches the discovery document and JWKS from
// issuerURL over https, trusting caFile, and accepts tokens whose aud holds audience. The
// provider is named KubeProviderName, which the default role trusts.
func PublishedIssuerIAMConfig(issuerURL, caFile, bucket, audience string) IAMConfig {
	return trustConfig(bucket, Provider{Name: KubeProviderName, Type: "oidc", Config: ProviderConfig{
		Issuer:    issuerURL,
		ClientIDs: []string{audience},
		TLSCACert: caFile,
	}})
}

// trustConfig is the bed's STS settings, the providers, the role DefaultRoleARN for
// DefaultServiceAccount in DefaultNamespace, and its bucket policy.
func trustConfig(bucket string, providers ...Provider) IAMConfig {
	return IAMConfig{
		STS: STSConfig{
			TokenDuration:    "1h",
			MaxSessionLength: "12h",
			Issuer:           "credsidecar-testbed-sts",
			AccountID:        AccountID,
		},
		Policy:    &EngineConfig{DefaultEffect: "Deny", StoreType: "memory"},
		Providers: providers,
		Roles:     []Role{WebIdentityRole(DefaultRoleName, Subject(DefaultNamespace, DefaultServiceAccount), DefaultPolicyName)},
		Policies:  []Policy{BucketPolicy(DefaultPolicyName, bucket)},
	}
}

// WebIdentityRole is a role that tokens from any test-bed provider whose sub is subject may
// assume with AssumeRoleWithWebIdentity.
//
// Only sub is conditioned: SeaweedFS sets the oidc:aud condition key only when aud is a single
// string, never for the array a Kubernetes token carries, so an aud condition would refuse every
// projected token. The audience is still enforced, by the provider's clientIds.
func WebIdentityRole(name, subject string, policies ...string) Role {
	return Role{
		RoleName: name,
		RoleArn:  RoleARN(name),
		TrustPolicy: PolicyDocument{
			Version: "2012-10-17",
			Statement: []Statement{{
				Effect:    "Allow",
				Principal: map[string]any{"Federated": []string{ProviderName, TLSProviderName, KubeProviderName}},
				Action:    []string{"sts:AssumeRoleWithWebIdentity"},
				Condition: map[string]map[string]any{"StringEquals": {"oidc:sub": subject}},
			}},
		},
		AttachedPolicies: policies,
	}
}

// ChainedRole is a role that sessions of the role fromRoleName may assume with AssumeRole, for
// role-chaining tests.
//
// AWS would write Principal {"AWS": <role ARN>}. SeaweedFS compares that principal verbatim with
// the caller's session ARN, which names the session and (a SeaweedFS quirk) no account:
// arn:aws:sts::assumed-role/<role>/<session>. So any principal is admitted and the session ARN is
// matched with StringLike on aws:PrincipalArn, in both spellings.
func ChainedRole(name, fromRoleName string, policies ...string) Role {
	return Role{
		RoleName: name,
		RoleArn:  RoleARN(name),
		TrustPolicy: PolicyDocument{
			Version: "2012-10-17",
			Statement: []Statement{{
				Effect:    "Allow",
				Principal: map[string]any{"AWS": "*"},
				Action:    []string{"sts:AssumeRole"},
				Condition: map[string]map[string]any{"StringLike": {"aws:PrincipalArn": []string{
					"arn:aws:sts::assumed-role/" + fromRoleName + "/*",
					"arn:aws:sts::" + AccountID + ":assumed-role/" + fromRoleName + "/*",
				}}},
			}},
		},
		AttachedPolicies: policies,
	}
}

// BucketPolicy allows s3:GetObject, s3:PutObject and s3:DeleteObject on bucket's objects and
// s3:ListBucket on bucket, and nothing else.
func BucketPolicy(name, bucket string) Policy {
	return Policy{
		Name: name,
		Document: PolicyDocument{
			Version: "2012-10-17",
			Statement: []Statement{
				{
					Sid:      "Objects",
					Effect:   "Allow",
					Action:   []string{"s3:GetObject", "s3:PutObject", "s3:DeleteObject"},
					Resource: []string{"arn:aws:s3:::" + bucket + "/*"},
				},
				{
					Sid:      "List",
					Effect:   "Allow",
					Action:   []string{"s3:ListBucket"},
					Resource: []string{"arn:aws:s3:::" + bucket},
				},
			},
		},
	}
}

// marshal fills in a random STS signing key when none is set and encodes the file.
func (c IAMConfig) marshal() ([]byte, error) {
	if len(c.STS.SigningKey) == 0 {
		c.STS.SigningKey = make([]byte, 32)
		rand.Read(c.STS.SigningKey)
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode iam config: %w", err)
	}
	return b, nil
}
