package policy

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/credsidecar/credsidecar/internal/config"
)

var (
	// accountID is an AWS account id: exactly 12 digits.
	accountID = regexp.MustCompile(`^[0-9]{12}$`)
	// dns1123Label is Kubernetes' rule for namespace names.
	dns1123Label = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	// dns1123Subdomain is Kubernetes' rule for service account names.
	dns1123Subdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	// iamName is IAM's character set for role and policy names.
	iamName = regexp.MustCompile(`^[\w+=,.@-]+$`)
	// bucketName is S3's rule for general purpose bucket names (length checked apart).
	bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]*[a-z0-9]$`)
)

// FieldError is one invalid input; Flag names the command-line flag it came from.
type FieldError struct {
	// Flag is the flag's name without dashes.
	Flag string
	// Value is the value as given.
	Value string
	// Problem says what a valid value looks like.
	Problem string
}

// Error reads like `--account "12345": must be the 12-digit AWS account id`.
func (e *FieldError) Error() string {
	return fmt.Sprintf("--%s %q: %s", e.Flag, e.Value, e.Problem)
}

// Error lists every invalid input Validate found.
type Error struct {
	// Problems holds at least one problem, in flag order.
	Problems []*FieldError
}

// Error joins the problems on one line.
func (e *Error) Error() string {
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msgs[i] = p.Error()
	}
	return "invalid policy input: " + strings.Join(msgs, "; ")
}

// Validate checks every field and returns an *Error naming each bad one's flag, or nil.
func (in Input) Validate() error {
	var errs []*FieldError
	add := func(flagName, value, problem string) {
		errs = append(errs, &FieldError{Flag: flagName, Value: value, Problem: problem})
	}
	if p := issuerProblem(in.Issuer); p != "" {
		add("issuer", in.Issuer, p)
	}
	switch {
	case in.Namespace == "":
		add("namespace", "", "required: the Kubernetes namespace of the service account")
	case len(in.Namespace) > 63 || !dns1123Label.MatchString(in.Namespace):
		add("namespace", in.Namespace, "must be a DNS-1123 label: at most 63 characters of a-z, 0-9 and '-', "+
			"starting and ending with a letter or digit")
	}
	switch {
	case in.ServiceAccount == "":
		add("service-account", "", "required: the name of the Kubernetes service account the pod runs as")
	case len(in.ServiceAccount) > 253 || !dns1123Subdomain.MatchString(in.ServiceAccount):
		add("service-account", in.ServiceAccount, "must be a DNS-1123 subdomain: at most 253 characters of "+
			"a-z, 0-9, '-' and '.', each dot-separated part starting and ending with a letter or digit")
	}
	switch {
	case in.AccountID == "":
		add("account", "", "required: the 12-digit AWS account id that owns the role")
	case !accountID.MatchString(in.AccountID):
		add("account", in.AccountID, "must be the 12-digit AWS account id, such as 111122223333")
	}
	if in.Audience != "" {
		if len(in.Audience) > 255 || !utf8.ValidString(in.Audience) || strings.IndexFunc(in.Audience, isSpaceOrControl) >= 0 {
			add("audience", in.Audience, "must be at most 255 characters without spaces: IAM's limit for an OIDC client id")
		}
	}
	if in.Bucket != "" {
		if p := BucketProblem(in.Bucket); p != "" {
			add("bucket", in.Bucket, p)
		}
	}
	if in.RoleName != "" && !isIAMRoleName(in.RoleName) {
		add("role-name", in.RoleName, iamRoleNameRule)
	}
	checkRoles(in, func(value, problem string) { add("role-name", value, problem) })
	if in.PolicyName != "" && (len(in.PolicyName) > 128 || !iamName.MatchString(in.PolicyName)) {
		add("policy-name", in.PolicyName, "must be an IAM policy name: 1-128 characters of letters, digits and _+=,.@-")
	}
	switch in.Partition {
	case "", "aws", "aws-cn", "aws-us-gov":
	default:
		add("partition", in.Partition, "must be aws, aws-cn or aws-us-gov")
	}
	if len(errs) > 0 {
		return &Error{Problems: errs}
	}
	return nil
}

// iamRoleNameRule says what isIAMRoleName accepts.
const iamRoleNameRule = "must be an IAM role name: 1-64 characters of letters, digits and _+=,.@-"

func isIAMRoleName(s string) bool { return len(s) <= 64 && iamName.MatchString(s) }

// checkRoles passes each problem of the named roles to add: sidecar role names as the sidecar
// takes them, IAM role names, neither given twice (create-role would fail the second time), at
// most config.MaxRoles.
func checkRoles(in Input, add func(value, problem string)) {
	names := map[string]bool{}
	iamNames := map[string]bool{in.RoleName: in.RoleName != ""}
	for _, r := range in.Roles {
		v := r.Name + "=" + r.RoleName
		nameErr := config.CheckRoleName(r.Name)
		switch {
		case nameErr != nil:
			add(v, "NAME must be the sidecar's "+nameErr.Error())
		case !isIAMRoleName(r.RoleName):
			add(v, iamRoleNameRule)
		case names[r.Name]:
			add(v, "role "+r.Name+" is named twice")
		case iamNames[r.RoleName]:
			add(v, "IAM role "+r.RoleName+" is given twice: one IAM role per sidecar role")
		}
		names[r.Name], iamNames[r.RoleName] = true, true
	}
	if len(in.Roles) > config.MaxRoles {
		add(fmt.Sprint(len(in.Roles), " named roles"), fmt.Sprintf("at most %d: the sidecar serves no more", config.MaxRoles))
	}
}

// issuerProblem accepts an https URL with a host, and plain http only on loopback, where the
// test bed's issuer runs: IAM refuses non-https provider URLs.
func issuerProblem(raw string) string {
	if raw == "" {
		return "required: the cluster's OIDC issuer URL (az aks show --query oidcIssuerProfile.issuerUrl)"
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil || !utf8.ValidString(raw) || strings.IndexFunc(raw, isSpaceOrControl) >= 0:
		return "not a URL"
	case u.Scheme == "http" && !isLoopbackHost(u.Hostname()):
		return "must be an https URL: IAM accepts only https OIDC issuers (http is allowed for loopback test issuers)"
	case u.Scheme != "https" && u.Scheme != "http":
		return "must be an https URL, such as https://eastus.oic.prod-aks.azure.com/<tenant>/<cluster>/"
	case u.Host == "":
		return "has no host"
	case u.User != nil:
		return "must not carry credentials"
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return "must not have a query or fragment: the issuer is compared to the token's iss byte for byte"
	}
	return ""
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func isSpaceOrControl(r rune) bool {
	return r <= ' ' || r == 0x7f
}

// BucketProblem says why name is not an S3 bucket name, or returns "" when it is one.
func BucketProblem(name string) string {
	if len(name) < 3 || len(name) > 63 || !bucketName.MatchString(name) || strings.Contains(name, "..") {
		return "must be an S3 bucket name: 3-63 characters of a-z, 0-9, '.' and '-', starting and ending with a letter or digit"
	}
	return ""
}
