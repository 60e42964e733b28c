package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/credsidecar/credsidecar/internal/creds"
)

// Defaults of Input's optional fields.
const (
	// DefaultRoleName is the role name of the walkthrough.
	DefaultRoleName = "AKS-S3-Access-Role"
	// DefaultPolicyName is the inline permission policy's name in the walkthrough.
	DefaultPolicyName = "S3AccessPolicy"
	// DefaultPartition is the commercial AWS partition.
	DefaultPartition = "aws"
)

// File names written by --write-dir and referenced by the commands.
const (
	// TrustPolicyFile holds the role's trust policy.
	TrustPolicyFile = "trust-policy.json"
	// PermissionPolicyFile holds the role's S3 permission policy.
	PermissionPolicyFile = "permission-policy.json"
)

// Version is the IAM policy language version every document uses.
const Version = "2012-10-17"

// S3 actions of the permission policy.
const (
	ActionGetObject    = "s3:GetObject"
	ActionPutObject    = "s3:PutObject"
	ActionDeleteObject = "s3:DeleteObject"
	ActionListBucket   = "s3:ListBucket"
)

// Input is what the policies are rendered from. Zero optional fields take the defaults.
type Input struct {
	// Issuer is the cluster's OIDC issuer URL, the tokens' iss claim.
	Issuer string
	// Namespace and ServiceAccount name the Kubernetes service account allowed to assume the role.
	Namespace, ServiceAccount string
	// AccountID is the 12-digit AWS account that owns the role and the OIDC provider.
	AccountID string
	// Audience is the token audience; DefaultAudience(Issuer) when empty.
	Audience string
	// Bucket, when set, adds the S3 permission policy for that bucket.
	Bucket string
	// RoleName is the IAM role of the sidecar's unnamed role (--role-arn); DefaultRoleName when
	// empty and Roles is empty too.
	RoleName string
	// Roles are the IAM roles of the sidecar's named roles (--role NAME=ARN), besides or instead
	// of the unnamed one. Every role trusts the same service account, so all share the one trust
	// policy.
	Roles []SidecarRole
	// PolicyName is the inline permission policy's name; DefaultPolicyName when empty.
	PolicyName string
	// Partition is the ARN partition (aws, aws-cn, aws-us-gov); DefaultPartition when empty.
	Partition string
}

// SidecarRole is a named role of the sidecar and the IAM role behind it.
type SidecarRole struct {
	// Name is the sidecar's role name: /v1/credentials/NAME, the webhook's credsidecar.io/roles.
	Name string
	// RoleName is the IAM role's name.
	RoleName string
}

// WithDefaults returns in with every empty optional field set to its default.
func (in Input) WithDefaults() Input {
	if in.Audience == "" {
		in.Audience = DefaultAudience(in.Issuer)
	}
	if in.RoleName == "" && len(in.Roles) == 0 {
		in.RoleName = DefaultRoleName
	}
	if in.PolicyName == "" {
		in.PolicyName = DefaultPolicyName
	}
	if in.Partition == "" {
		in.Partition = DefaultPartition
	}
	return in
}

// ProviderPath is how IAM names the OIDC provider of issuer: host and path, without the scheme
// and without a trailing slash. It is the suffix of the provider ARN and the prefix of the
// ":sub" and ":aud" condition keys.
func ProviderPath(issuer string) string {
	p := issuer
	for _, scheme := range []string{"https://", "http://"} {
		if len(p) >= len(scheme) && strings.EqualFold(p[:len(scheme)], scheme) {
			p = p[len(scheme):]
			break
		}
	}
	return strings.TrimRight(p, "/")
}

// DefaultAudience is the AKS convention: the issuer URL with exactly one trailing slash.
func DefaultAudience(issuer string) string { return creds.DefaultAudience(issuer) }

// ProviderARN is the ARN of the IAM OIDC provider for issuer in account.
func ProviderARN(partition, account, issuer string) string {
	return "arn:" + partitionOr(partition) + ":iam::" + account + ":oidc-provider/" + ProviderPath(issuer)
}

// RoleARN is the ARN of role name in account.
func RoleARN(partition, account, name string) string {
	return "arn:" + partitionOr(partition) + ":iam::" + account + ":role/" + name
}

// Subject is the sub claim Kubernetes gives a service account's tokens.
func Subject(namespace, serviceAccount string) string {
	return "system:serviceaccount:" + namespace + ":" + serviceAccount
}

func partitionOr(p string) string {
	if p == "" {
		return DefaultPartition
	}
	return p
}

// Strings is a policy element that IAM accepts as one string or a list: one value is written
// as a plain string, the way the walkthrough and the IAM console write it.
type Strings []string

// MarshalJSON writes a single value as a string and several as an array.
func (s Strings) MarshalJSON() ([]byte, error) {
	if len(s) == 1 {
		return json.Marshal(s[0])
	}
	return json.Marshal([]string(s))
}

// UnmarshalJSON accepts both forms IAM accepts: a string or an array of strings.
func (s *Strings) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = Strings{one}
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return fmt.Errorf("decode policy element: want a string or an array of strings: %w", err)
	}
	*s = list
	return nil
}

// Document is an IAM policy document.
type Document struct {
	Version   string      `json:"Version"`
	Statement []Statement `json:"Statement"`
}

// Statement is one IAM policy statement; a trust policy's has a Principal and no Resource.
type Statement struct {
	Sid       string           `json:"Sid,omitempty"`
	Effect    string           `json:"Effect"`
	Principal *Principal       `json:"Principal,omitempty"`
	Action    Strings          `json:"Action"`
	Resource  Strings          `json:"Resource,omitempty"`
	Condition map[string]Pairs `json:"Condition,omitempty"`
}

// Pair is one key and value of a condition block.
type Pair struct{ Key, Value string }

// Pairs is a JSON object written in its own order, so sub comes before aud as people read them.
type Pairs []Pair

// MarshalJSON writes the pairs as one object, keys in slice order.
func (p Pairs) MarshalJSON() ([]byte, error) {
	var b strings.Builder
	b.WriteByte('{')
	for i, kv := range p {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(quoteJSON(kv.Key))
		b.WriteByte(':')
		b.WriteString(quoteJSON(kv.Value))
	}
	b.WriteByte('}')
	return []byte(b.String()), nil
}

// UnmarshalJSON reads an object of strings, keeping its keys in document order.
func (p *Pairs) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return errors.New("decode condition block: want an object of strings")
	}
	var out Pairs
	for dec.More() {
		var k, v string
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("decode condition block: %w", err)
		}
		k, _ = tok.(string)
		if err := dec.Decode(&v); err != nil {
			return fmt.Errorf("decode condition block: value of %q: %w", k, err)
		}
		out = append(out, Pair{k, v})
	}
	*p = out
	return nil
}

// Principal names who a trust policy admits; for web identity, the OIDC provider's ARN.
type Principal struct {
	Federated string `json:"Federated"`
}

// Conditions are the StringEquals entries a trust policy needs so that only tokens of one
// service account, for one audience, from issuer's provider are admitted. The keys are
// "<ProviderPath>:sub" and "<ProviderPath>:aud".
func Conditions(issuer, subject, audience string) Pairs {
	p := ProviderPath(issuer)
	return Pairs{{p + ":sub", subject}, {p + ":aud", audience}}
}

// ConditionLines renders Conditions as the two lines of JSON to paste into StringEquals, sub
// first, e.g. `"host/path:sub": "system:serviceaccount:ns:sa", "host/path:aud": "https://host/path/"`.
func ConditionLines(issuer, subject, audience string) string {
	p := ProviderPath(issuer)
	return quoteJSON(p+":sub") + ": " + quoteJSON(subject) + ", " + quoteJSON(p+":aud") + ": " + quoteJSON(audience)
}

// Trust is the role's trust policy: the issuer's OIDC provider may call
// sts:AssumeRoleWithWebIdentity for tokens whose sub is the service account and whose aud is
// the audience.
func Trust(in Input) Document {
	in = in.WithDefaults()
	return Document{
		Version: Version,
		Statement: []Statement{{
			Effect:    "Allow",
			Principal: &Principal{Federated: ProviderARN(in.Partition, in.AccountID, in.Issuer)},
			Action:    Strings{"sts:AssumeRoleWithWebIdentity"},
			Condition: map[string]Pairs{
				"StringEquals": Conditions(in.Issuer, Subject(in.Namespace, in.ServiceAccount), in.Audience),
			},
		}},
	}
}

// Permission is the walkthrough's S3 permission policy for in.Bucket (get, put and delete
// objects, list the bucket), or nil when no bucket is set.
func Permission(in Input) *Document {
	if in.Bucket == "" {
		return nil
	}
	in = in.WithDefaults()
	return &Document{
		Version: Version,
		Statement: S3Statements(in.Partition, in.Bucket,
			ActionGetObject, ActionPutObject, ActionDeleteObject, ActionListBucket),
	}
}

// S3Statements allows actions on bucket, split by what each applies to: object actions on
// "arn:aws:s3:::<bucket>/*", bucket actions (s3:ListBucket...) on "arn:aws:s3:::<bucket>".
// Actions keep their order; a statement with no actions is left out.
func S3Statements(partition, bucket string, actions ...string) []Statement {
	var object, bucketLevel Strings
	for _, a := range actions {
		if isBucketAction(a) {
			bucketLevel = append(bucketLevel, a)
		} else {
			object = append(object, a)
		}
	}
	arn := "arn:" + partitionOr(partition) + ":s3:::" + bucket
	var out []Statement
	if len(object) > 0 {
		out = append(out, Statement{Sid: "ObjectAccess", Effect: "Allow", Action: object, Resource: Strings{arn + "/*"}})
	}
	if len(bucketLevel) > 0 {
		out = append(out, Statement{Sid: "ListBucket", Effect: "Allow", Action: bucketLevel, Resource: Strings{arn}})
	}
	return out
}

// isBucketAction reports whether an S3 action applies to the bucket rather than its objects.
func isBucketAction(action string) bool {
	switch action {
	case ActionListBucket, "s3:ListBucketVersions", "s3:ListBucketMultipartUploads", "s3:GetBucketLocation":
		return true
	}
	return false
}

// Commands are the `aws iam` calls that create the OIDC provider and the role and attach the
// permission policy. dir is where the policy files are (the working directory when empty).
// A thumbprint is not passed: IAM has not needed one for providers with publicly trusted
// certificates since 2023.
func Commands(in Input, dir string) []string {
	in = in.WithDefaults()
	file := func(name string) string {
		if dir == "" {
			return "file://" + name
		}
		return "file://" + strings.TrimRight(dir, "/") + "/" + name
	}
	cmds := []string{"aws iam create-open-id-connect-provider --url " + ShellQuote(in.Issuer) +
		" --client-id-list " + ShellQuote(in.Audience)}
	for _, name := range in.roleNames() {
		cmds = append(cmds, "aws iam create-role --role-name "+ShellQuote(name)+
			" --assume-role-policy-document "+ShellQuote(file(TrustPolicyFile)))
		if in.Bucket != "" {
			cmds = append(cmds, "aws iam put-role-policy --role-name "+ShellQuote(name)+
				" --policy-name "+ShellQuote(in.PolicyName)+
				" --policy-document "+ShellQuote(file(PermissionPolicyFile)))
		}
	}
	return cmds
}

// roleNames are the IAM roles to create: the unnamed role's first, then the named roles'.
func (in Input) roleNames() []string {
	var names []string
	if in.RoleName != "" {
		names = append(names, in.RoleName)
	}
	for _, r := range in.Roles {
		names = append(names, r.RoleName)
	}
	return names
}

// ShellQuote returns s unchanged when a POSIX shell would read it as one word as it is, and
// single-quoted otherwise, so printed commands can be pasted.
func ShellQuote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_-./:=@%+,", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// MarshalIndent renders a document the way the files are written: two-space indent, final
// newline, and no HTML escaping, so "&" or "<" in a value stay readable.
func MarshalIndent(v any) ([]byte, error) {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return []byte(b.String()), nil
}

// quoteJSON quotes s as a JSON string without HTML escaping.
func quoteJSON(s string) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return strings.TrimSuffix(b.String(), "\n")
}
