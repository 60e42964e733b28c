package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/credsidecar/credsidecar/internal/awsarn"
)

// MaxRoles bounds the named roles of one sidecar: each is one more STS call per refresh and one
// more series per role-labelled metric.
const MaxRoles = 16

// Role is a named role (--role NAME=ARN): its own credentials, served at
// /v1/credentials/NAME, with its own chain and session policies. The unnamed role is RoleARN
// and the un-prefixed chain and policy settings.
type Role struct {
	// Name is [a-z0-9-]{1,32}: a URL path segment, a profile name and a metric label value.
	Name string
	// ARN is the role assumed with the web-identity token.
	ARN string
	// ChainRoleARNs and ChainExternalIDs chain further roles, as --chain-role-arn does.
	ChainRoleARNs    []string
	ChainExternalIDs []string
	// SessionPolicy and SessionPolicyARNs limit the web-identity session, as --session-policy does.
	SessionPolicy     string
	SessionPolicyARNs []string
}

var roleNameRule = regexp.MustCompile(`^[a-z0-9-]{1,32}$`)

// CheckRoleName says why name cannot name a role, or returns nil: the one rule for role names,
// in the sidecar's flags and the webhook's annotations alike.
func CheckRoleName(name string) error {
	if !roleNameRule.MatchString(name) {
		return fmt.Errorf("role name %q: want 1 to 32 of a-z, 0-9 and -", name)
	}
	return nil
}

// ParseRoles reads NAME=ARN pairs (--role, CREDSIDECAR_ROLES, the webhook's credsidecar.io/roles
// annotation): names valid and distinct, ARNs role ARNs, at most MaxRoles.
func ParseRoles(pairs []string) ([]Role, error) {
	var roles []Role
	for _, p := range pairs {
		name, arn, err := splitPair(p, "ARN")
		if err != nil {
			return nil, err
		}
		if err := awsarn.CheckRole(arn); err != nil {
			return nil, fmt.Errorf("role %q: %q is %v", name, arn, err)
		}
		if slices.ContainsFunc(roles, func(r Role) bool { return r.Name == name }) {
			return nil, fmt.Errorf("role %q is named twice", name)
		}
		roles = append(roles, Role{Name: name, ARN: arn})
	}
	if len(roles) > MaxRoles {
		return nil, fmt.Errorf("%d roles, at most %d: each is one more STS call per refresh", len(roles), MaxRoles)
	}
	return roles, nil
}

// splitPair splits NAME=VALUE and checks the name.
func splitPair(p, what string) (name, value string, err error) {
	name, value, ok := strings.Cut(strings.TrimSpace(p), "=")
	if !ok || value == "" {
		return "", "", fmt.Errorf("%q: want NAME=%s", p, what)
	}
	if err := CheckRoleName(name); err != nil {
		return "", "", err
	}
	return name, value, nil
}

// role returns the named role of c, or an error naming the roles there are.
func (c *Config) role(name string) (*Role, error) {
	for i := range c.Roles {
		if c.Roles[i].Name == name {
			return &c.Roles[i], nil
		}
	}
	names := make([]string, len(c.Roles))
	for i, r := range c.Roles {
		names[i] = r.Name
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no role %q: name it with --role %s=ARN first", name, name)
	}
	return nil, fmt.Errorf("no role %q: the roles are %s", name, strings.Join(names, ", "))
}

// setRolePairs applies NAME=VALUE pairs to the named roles with apply.
func (c *Config) setRolePairs(vs []string, what string, apply func(r *Role, v string)) error {
	for _, p := range vs {
		name, v, err := splitPair(p, what)
		if err != nil {
			return err
		}
		r, err := c.role(name)
		if err != nil {
			return err
		}
		apply(r, v)
	}
	return nil
}

// setRoleSessionPolicies reads a JSON object from role name to policy document.
func (c *Config) setRoleSessionPolicies(v string) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(v), &m); err != nil {
		return errors.New(`must be a JSON object from role name to policy document, {"reader": {"Version": ...}}`)
	}
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		r, err := c.role(name)
		if err != nil {
			return err
		}
		doc := m[name]
		var s string
		if json.Unmarshal(doc, &s) == nil { // a policy given as a JSON string
			r.SessionPolicy = s
			continue
		}
		r.SessionPolicy = string(doc)
	}
	return nil
}

// roleSettings are the named roles' settings; they follow --role in the table, since each
// names a role --role declared.
func roleSettings() []setting {
	return []setting{
		{flag: "role", envs: []string{"CREDSIDECAR_ROLES"}, kind: "name=arn", defHelp: "none",
			usage: "a named role, served at /v1/credentials/NAME besides --role-arn's at /v1/credentials; repeat " +
				"for more, at most 16; NAME is 1-32 of a-z, 0-9 and -; the variable takes a comma-separated list",
			setList: func(c *Config, vs []string) error {
				roles, err := ParseRoles(vs)
				c.Roles = roles
				return err
			}},
		{flag: "role-chain-role-arn", envs: []string{"CREDSIDECAR_ROLE_CHAIN_ROLE_ARNS"}, kind: "name=arn", defHelp: "none",
			usage: "--chain-role-arn for the named role; repeat, in hop order; the variable takes a comma-separated list",
			setList: func(c *Config, vs []string) error {
				return c.setRolePairs(vs, "ARN", func(r *Role, v string) { r.ChainRoleARNs = append(r.ChainRoleARNs, v) })
			}},
		{flag: "role-chain-external-id", envs: []string{"CREDSIDECAR_ROLE_CHAIN_EXTERNAL_IDS"}, kind: "name=id", defHelp: "none",
			usage: "--chain-external-id for the named role; one per --role-chain-role-arn of that role, in order",
			setList: func(c *Config, vs []string) error {
				return c.setRolePairs(vs, "ID", func(r *Role, v string) { r.ChainExternalIDs = append(r.ChainExternalIDs, v) })
			}},
		{flag: "role-session-policy-arn", envs: []string{"CREDSIDECAR_ROLE_SESSION_POLICY_ARNS"}, kind: "name=arn", defHelp: "none",
			usage: "--session-policy-arn for the named role; repeat for more; the variable takes a comma-separated list",
			setList: func(c *Config, vs []string) error {
				return c.setRolePairs(vs, "ARN", func(r *Role, v string) { r.SessionPolicyARNs = append(r.SessionPolicyARNs, v) })
			}},
		{flag: "role-session-policies", envs: []string{"CREDSIDECAR_ROLE_SESSION_POLICIES"}, kind: "json", defHelp: "none",
			usage: `--session-policy per named role, as a JSON object: {"reader": {"Version": "2012-10-17", ...}}`,
			set:   func(c *Config, v string) error { return c.setRoleSessionPolicies(v) }},
	}
}

// RoleNames returns the named roles' names, in the order given.
func (c Config) RoleNames() []string {
	names := make([]string, len(c.Roles))
	for i, r := range c.Roles {
		names[i] = r.Name
	}
	return names
}

// chained reports whether the unnamed role or any named one chains.
func (c Config) chained() bool {
	return len(c.ChainRoleARNs) > 0 || slices.ContainsFunc(c.Roles, func(r Role) bool { return len(r.ChainRoleARNs) > 0 })
}

// validateRoles checks the named roles as built (tests and callers may set Roles directly) and
// each one's chain and policies with the rules of the unnamed role's.
func (c Config) validateRoles(add func(flagName, formatted, problem string)) {
	pairs := make([]string, len(c.Roles))
	for i, r := range c.Roles {
		pairs[i] = r.Name + "=" + r.ARN
	}
	if _, err := ParseRoles(pairs); err != nil {
		add("role", strings.Join(pairs, ","), err.Error())
		return
	}
	for _, r := range c.Roles {
		if r.Name == c.CredentialsProfile && c.CredentialsFile != "" {
			add("credentials-profile", c.CredentialsProfile, "is also a --role name: the credentials file holds "+
				"[<this>] for --role-arn's credentials and [NAME] for each named role's, so the two would collide")
		}
		checkChain(chainSpec{
			arns: r.ChainRoleARNs, ids: r.ChainExternalIDs, policy: r.SessionPolicy, policyARNs: r.SessionPolicyARNs,
			arnFlag: "role-chain-role-arn", idFlag: "role-chain-external-id", policyFlag: "role-session-policies",
			policyARNFlag: "role-session-policy-arn", what: fmt.Sprintf("role %q: ", r.Name),
		}, add)
	}
}
