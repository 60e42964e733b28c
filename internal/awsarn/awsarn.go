// Package awsarn owns the one rule for Amazon Resource Names the sidecar reads: IAM role and
// policy ARNs given as settings, and the assumed-role ARNs STS answers with. The settings'
// validators, the instance-metadata documents and the diagnostics all take ARNs apart here,
// so they cannot disagree on what a valid role ARN is.
package awsarn

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// MaxLen is the longest ARN STS takes for RoleArn and PolicyArns.
const MaxLen = 2048

// ARN is an ARN taken apart: arn:<Partition>:<Service>:<Region>:<Account>:<Resource>.
type ARN struct {
	Partition string
	Service   string
	Region    string
	Account   string
	Resource  string
}

// Parse splits s into its six fields. It checks the shape only (the "arn" prefix and six
// colon-separated fields, the resource keeping any further colons), not what the fields hold.
func Parse(s string) (ARN, error) {
	f := strings.SplitN(s, ":", 6)
	if len(f) != 6 || f[0] != "arn" {
		return ARN{}, errors.New("not an ARN: want arn:<partition>:<service>:<region>:<account>:<resource>")
	}
	return ARN{Partition: f[1], Service: f[2], Region: f[3], Account: f[4], Resource: f[5]}, nil
}

// String puts the ARN back together.
func (a ARN) String() string {
	return "arn:" + a.Partition + ":" + a.Service + ":" + a.Region + ":" + a.Account + ":" + a.Resource
}

// Name is the resource's last path segment: the role's name for role/<path/><name>, the
// session's name for assumed-role/<role>/<session>.
func (a ARN) Name() string {
	return a.Resource[strings.LastIndexByte(a.Resource, '/')+1:]
}

// Role is the role's name of an IAM role ARN (role/<path/><name>) or of an STS assumed-role
// ARN (assumed-role/<name>/<session>), or "" for any other ARN.
func (a ARN) Role() string {
	switch {
	case a.Service == "iam" && strings.HasPrefix(a.Resource, "role/"):
		return a.Name()
	case a.Service == "sts" && strings.HasPrefix(a.Resource, "assumed-role/"):
		name, _, _ := strings.Cut(strings.TrimPrefix(a.Resource, "assumed-role/"), "/")
		return name
	}
	return ""
}

// AccountID is the account field when it is a 12-digit account id, else "".
func (a ARN) AccountID() string {
	if !accountID.MatchString(a.Account) {
		return ""
	}
	return a.Account
}

var (
	accountID = regexp.MustCompile(`^[0-9]{12}$`)
	// roleARN is IAM's rule for a role ARN in the aws, aws-cn and aws-us-gov partitions, with or
	// without a path; the character classes are IAM's own.
	roleARN = regexp.MustCompile(`^arn:aws(-cn|-us-gov)?:iam::[0-9]{12}:role/([\x21-\x7e]*/)?[\w+=,.@-]{1,64}$`)
	// policyARN is IAM's rule for a managed policy ARN, AWS-managed ("aws" for the account) or not.
	policyARN = regexp.MustCompile(`^arn:aws(-cn|-us-gov)?:iam::([0-9]{12}|aws):policy/([\x21-\x7e]*/)?[\w+=,.@-]{1,128}$`)
)

// CheckRole says why s is not an IAM role ARN, or returns nil.
func CheckRole(s string) error {
	if len(s) > MaxLen || !roleARN.MatchString(s) {
		return fmt.Errorf("not an IAM role ARN: want arn:aws:iam::<12-digit account id>:role/<name> " +
			"(partition aws, aws-cn or aws-us-gov)")
	}
	return nil
}

// CheckPolicy says why s is not an IAM managed policy ARN, or returns nil.
func CheckPolicy(s string) error {
	if len(s) > MaxLen || !policyARN.MatchString(s) {
		return fmt.Errorf("not an IAM policy ARN: want arn:aws:iam::<12-digit account id or aws>:policy/<name>")
	}
	return nil
}
