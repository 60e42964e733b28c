package policy

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Output is everything `sidecar policy` prints, in the shape of its --output json document.
type Output struct {
	// RoleARN is the value for the sidecar's AWS_ROLE_ARN: its unnamed role; absent when every
	// --role-name names a role.
	RoleARN string `json:"role_arn,omitempty"`
	// Roles are the sidecar's named roles (--role-name NAME=ROLE).
	Roles []NamedRole `json:"roles,omitempty"`
	// SidecarRoles is Roles as the sidecar's CREDSIDECAR_ROLES and the webhook's
	// credsidecar.io/roles annotation take them: NAME=ARN,NAME=ARN.
	SidecarRoles string `json:"sidecar_roles,omitempty"`
	// ProviderARN is the IAM OIDC provider the trust policy names.
	ProviderARN string `json:"provider_arn"`
	// Issuer is the OIDC issuer URL as given.
	Issuer string `json:"issuer"`
	// Audience is the projected token's audience and the provider's client id.
	Audience string `json:"audience"`
	// Subject is the service account's sub claim.
	Subject string `json:"subject"`
	// TrustPolicy is the role's trust policy.
	TrustPolicy Document `json:"trust_policy"`
	// PermissionPolicy is the S3 permission policy; absent without --bucket.
	PermissionPolicy *Document `json:"permission_policy,omitempty"`
	// Commands create the provider and the role, in order.
	Commands []string `json:"commands"`
	// Files are the policy files written with --write-dir.
	Files []string `json:"files,omitempty"`
}

// NamedRole is one of the sidecar's named roles in the Output.
type NamedRole struct {
	// Name is the sidecar's role name.
	Name string `json:"name"`
	// RoleName and RoleARN are the IAM role's.
	RoleName string `json:"role_name"`
	RoleARN  string `json:"role_arn"`
}

// Build renders in (which must be valid) into an Output whose commands read the policy files
// from dir.
func Build(in Input, dir string) Output {
	in = in.WithDefaults()
	out := Output{
		ProviderARN:      ProviderARN(in.Partition, in.AccountID, in.Issuer),
		Issuer:           in.Issuer,
		Audience:         in.Audience,
		Subject:          Subject(in.Namespace, in.ServiceAccount),
		TrustPolicy:      Trust(in),
		PermissionPolicy: Permission(in),
		Commands:         Commands(in, dir),
	}
	if in.RoleName != "" {
		out.RoleARN = RoleARN(in.Partition, in.AccountID, in.RoleName)
	}
	pairs := make([]string, 0, len(in.Roles))
	for _, r := range in.Roles {
		arn := RoleARN(in.Partition, in.AccountID, r.RoleName)
		out.Roles = append(out.Roles, NamedRole{Name: r.Name, RoleName: r.RoleName, RoleARN: arn})
		pairs = append(pairs, r.Name+"="+arn)
	}
	out.SidecarRoles = strings.Join(pairs, ",")
	return out
}

// roleNames is --role-name: each value ROLE is the unnamed role's IAM role, NAME=ROLE a named
// role's; repeatable.
type roleNames struct{ in *Input }

func (r roleNames) String() string {
	if r.in == nil {
		return ""
	}
	return r.in.RoleName
}

func (r roleNames) Set(v string) error {
	if name, role, ok := strings.Cut(v, "="); ok {
		r.in.Roles = append(r.in.Roles, SidecarRole{Name: name, RoleName: role})
		return nil
	}
	if r.in.RoleName != "" {
		return fmt.Errorf("the unnamed role is %s already: name the others NAME=ROLE", r.in.RoleName)
	}
	r.in.RoleName = v
	return nil
}

// options are the command-line settings that are not policy input.
type options struct {
	output   string
	writeDir string
}

func newFlagSet(in *Input, o *options) *flag.FlagSet {
	fs := flag.NewFlagSet("policy", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned and printed once, by Main
	fs.Usage = func() {}
	fs.StringVar(&in.Issuer, "issuer", "", "cluster OIDC issuer URL, https (required)")
	fs.StringVar(&in.Namespace, "namespace", "", "namespace of the service account (required)")
	fs.StringVar(&in.ServiceAccount, "service-account", "", "service account the pod runs as (required)")
	fs.StringVar(&in.AccountID, "account", "", "12-digit AWS account id that owns the role (required)")
	fs.StringVar(&in.Audience, "audience", "", "token audience and the provider's client id (default the issuer URL with a trailing slash, the AKS convention)")
	fs.StringVar(&in.Bucket, "bucket", "", "S3 bucket to allow; adds the permission policy")
	fs.Var(roleNames{in}, "role-name", "IAM role name of the sidecar's unnamed role (default "+DefaultRoleName+
		"); NAME=ROLE for its named role NAME (--role NAME=ARN); repeatable")
	fs.StringVar(&in.PolicyName, "policy-name", DefaultPolicyName, "name of the role's inline permission policy")
	fs.StringVar(&in.Partition, "partition", DefaultPartition, "ARN partition: aws, aws-cn or aws-us-gov")
	fs.StringVar(&o.output, "output", "text", "output format: text or json")
	fs.StringVar(&o.writeDir, "write-dir", "", "also write "+TrustPolicyFile+" and "+PermissionPolicyFile+" into this directory")
	return fs
}

// Usage writes the policy command's help.
func Usage(w io.Writer, program string) {
	var in Input
	var o options
	fs := newFlagSet(&in, &o)
	fmt.Fprintf(w, "Usage: %s policy --issuer URL --namespace NS --service-account SA --account ID [--bucket B] [flags]\n\n", program)
	fmt.Fprintf(w, "Prints the IAM trust policy that lets the service account's projected token assume the role,\n")
	fmt.Fprintf(w, "with --bucket the S3 permission policy, and the aws iam commands that create the OIDC provider\n")
	fmt.Fprintf(w, "and the role. The audience must also be the `audience:` of the pod's projected serviceAccountToken.\n\n")
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// Main runs `sidecar policy` with args (without the command name) and returns the exit code:
// 0 on success, 2 on bad flags, 1 when the files cannot be written.
func Main(args []string, stdout, stderr io.Writer) int {
	var in Input
	var o options
	fs := newFlagSet(&in, &o)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			Usage(stdout, "sidecar")
			return 0
		}
		fmt.Fprintf(stderr, "sidecar policy: %v (see sidecar policy --help)\n", err)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sidecar policy: unexpected argument %q: policy takes flags only\n", fs.Arg(0))
		return 2
	}
	bad := false
	if err := in.Validate(); err != nil {
		var ve *Error
		if errors.As(err, &ve) {
			for _, p := range ve.Problems {
				fmt.Fprintf(stderr, "sidecar policy: %v\n", p)
			}
		} else {
			fmt.Fprintf(stderr, "sidecar policy: %v\n", err)
		}
		bad = true
	}
	if o.output != "text" && o.output != "json" {
		fmt.Fprintf(stderr, "sidecar policy: --output %q: must be text or json\n", o.output)
		bad = true
	}
	if bad {
		return 2
	}

	out := Build(in, o.writeDir)
	if o.writeDir != "" {
		files, err := writeFiles(o.writeDir, out)
		if err != nil {
			fmt.Fprintf(stderr, "sidecar policy: %v\n", err)
			return 1
		}
		out.Files = files
	}
	var err error
	if o.output == "json" {
		err = writeJSON(stdout, out)
	} else {
		err = writeText(stdout, out)
	}
	if err != nil {
		fmt.Fprintf(stderr, "sidecar policy: %v\n", err)
		return 1
	}
	return 0
}

// writeFiles writes the policy documents into dir, creating it, and returns their paths.
func writeFiles(dir string, out Output) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("write policy files: %w", err)
	}
	type file struct {
		name string
		doc  any
	}
	docs := []file{{TrustPolicyFile, out.TrustPolicy}}
	if out.PermissionPolicy != nil {
		docs = append(docs, file{PermissionPolicyFile, out.PermissionPolicy})
	}
	var files []string
	for _, d := range docs {
		b, err := MarshalIndent(d.doc)
		if err != nil {
			return nil, fmt.Errorf("write policy files: encode %s: %w", d.name, err)
		}
		p := filepath.Join(dir, d.name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return nil, fmt.Errorf("write policy files: %w", err)
		}
		files = append(files, p)
	}
	return files, nil
}

func writeJSON(w io.Writer, out Output) error {
	b, err := MarshalIndent(out)
	if err != nil {
		return fmt.Errorf("encode output: %w", err)
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

func writeText(w io.Writer, out Output) error {
	var b strings.Builder
	if out.RoleARN != "" {
		fmt.Fprintf(&b, "# Role ARN (the sidecar's AWS_ROLE_ARN): %s\n", out.RoleARN)
	}
	for _, r := range out.Roles {
		fmt.Fprintf(&b, "# Role %s (the sidecar's --role %s=ARN): %s\n", r.Name, r.Name, r.RoleARN)
	}
	if out.SidecarRoles != "" {
		fmt.Fprintf(&b, "#   CREDSIDECAR_ROLES, or the ServiceAccount's credsidecar.io/roles annotation: %s\n", out.SidecarRoles)
		fmt.Fprintf(&b, "#   every role trusts the one service account through the same trust policy\n")
	}
	fmt.Fprintf(&b, "# OIDC provider: %s\n", out.ProviderARN)
	fmt.Fprintf(&b, "# Audience: %s\n", out.Audience)
	fmt.Fprintf(&b, "#   set it as `audience:` of the pod's projected serviceAccountToken; the provider's client id\n")
	fmt.Fprintf(&b, "#   and the :aud condition below must equal it byte for byte (trailing slash included)\n\n")
	trust, err := MarshalIndent(out.TrustPolicy)
	if err != nil {
		return fmt.Errorf("encode trust policy: %w", err)
	}
	fmt.Fprintf(&b, "# %s\n%s\n", TrustPolicyFile, trust)
	if out.PermissionPolicy != nil {
		perm, err := MarshalIndent(out.PermissionPolicy)
		if err != nil {
			return fmt.Errorf("encode permission policy: %w", err)
		}
		fmt.Fprintf(&b, "# %s\n%s\n", PermissionPolicyFile, perm)
		if len(out.Roles) > 0 {
			fmt.Fprintf(&b, "# (the commands give it to every role: narrow each role's copy to what it needs)\n\n")
		}
	}
	if len(out.Files) > 0 {
		fmt.Fprintf(&b, "# wrote %s\n\n", strings.Join(out.Files, ", "))
	}
	fmt.Fprintf(&b, "# commands\n%s\n", strings.Join(out.Commands, "\n"))
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}
