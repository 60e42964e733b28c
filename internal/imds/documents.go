package imds

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"runtime"
	"time"

	"github.com/credsidecar/credsidecar/internal/awsarn"
	"github.com/credsidecar/credsidecar/internal/creds"
)

// timeFormat is how IMDS writes times: RFC 3339, whole seconds, UTC. botocore parses exactly
// "%Y-%m-%dT%H:%M:%SZ" and gives up on anything else.
const timeFormat = "2006-01-02T15:04:05Z"

// fallbackRole names the role when the credentials carry no role ARN, so that the listing and
// the credentials path still agree.
const fallbackRole = "credsidecar"

// Placeholders for the identity document's fields that describe an EC2 instance this pod is
// not. They are well-formed, so that parsers accept them, and obviously synthetic (all zeros),
// so that nobody mistakes them for a real instance.
const (
	placeholderInstanceID   = "i-00000000000000000"
	placeholderImageID      = "ami-00000000000000000"
	placeholderInstanceType = "t3.micro"
	placeholderPrivateIP    = "127.0.0.1"
	identityVersion         = "2017-09-30"
)

// documents are the response bodies that depend on one credentials value, encoded once when
// the value is first served rather than on every request.
type documents struct {
	from        *creds.Credentials
	role        string
	credentials []byte
	info        []byte
	identity    []byte
}

// credentialsDocument is the body of /latest/meta-data/iam/security-credentials/<role>, in
// IMDS's field order. Code must be exactly "Success" for the Go SDK v1. AccountId is not in
// the classic IMDS document (it is in the newer "extended" one); the JavaScript SDK reads it
// when present and every other SDK ignores it.
type credentialsDocument struct {
	Code            string
	LastUpdated     string
	Type            string
	AccessKeyID     string `json:"AccessKeyId"`
	SecretAccessKey string
	Token           string
	Expiration      string
	AccountID       string `json:"AccountId,omitempty"`
}

type infoDocument struct {
	Code               string
	LastUpdated        string
	InstanceProfileArn string
	InstanceProfileID  string `json:"InstanceProfileId"`
}

// identityDocument is /latest/dynamic/instance-identity/document in IMDS's field order; the
// Go SDK v2 reads its region from here.
type identityDocument struct {
	AccountID               string   `json:"accountId"`
	Architecture            string   `json:"architecture"`
	AvailabilityZone        string   `json:"availabilityZone"`
	BillingProducts         []string `json:"billingProducts"`
	DevpayProductCodes      []string `json:"devpayProductCodes"`
	MarketplaceProductCodes []string `json:"marketplaceProductCodes"`
	ImageID                 string   `json:"imageId"`
	InstanceID              string   `json:"instanceId"`
	InstanceType            string   `json:"instanceType"`
	KernelID                *string  `json:"kernelId"`
	PendingTime             string   `json:"pendingTime"`
	PrivateIP               string   `json:"privateIp"`
	RamdiskID               *string  `json:"ramdiskId"`
	Region                  string   `json:"region"`
	Version                 string   `json:"version"`
}

// documentsFor returns the encoded documents for c, encoding them on c's first request.
// Two requests racing on a new value both encode it; either result is right.
func (s *Server) documentsFor(c *creds.Credentials) *documents {
	if d := s.docs.Load(); d != nil && d.from == c {
		return d
	}
	d := s.encode(c, s.clock.Now())
	s.docs.Store(d)
	return d
}

func (s *Server) encode(c *creds.Credentials, now time.Time) *documents {
	arn := parseRoleARN(c.RoleARN)
	account := c.AccountID
	if account == "" {
		account = arn.account
	}
	updated := now.UTC().Format(timeFormat)
	d := &documents{from: c, role: arn.role}
	d.credentials = mustJSON(credentialsDocument{
		Code:            "Success",
		LastUpdated:     updated,
		Type:            "AWS-HMAC",
		AccessKeyID:     c.AccessKeyID,
		SecretAccessKey: c.SecretAccessKey,
		Token:           c.SessionToken,
		// Truncated, never rounded up: a client must not believe in a second that is not there.
		Expiration: c.Expiration.UTC().Format(timeFormat),
		AccountID:  account,
	})
	profileARN := "arn:" + arn.partition + ":iam::" + account + ":instance-profile/" + arn.role
	d.info = mustJSON(infoDocument{
		Code:               "Success",
		LastUpdated:        updated,
		InstanceProfileArn: profileARN,
		InstanceProfileID:  instanceProfileID(profileARN),
	})
	d.identity = mustJSON(identityDocument{
		AccountID:        account,
		Architecture:     architecture(),
		AvailabilityZone: s.zone,
		ImageID:          placeholderImageID,
		InstanceID:       placeholderInstanceID,
		InstanceType:     placeholderInstanceType,
		PendingTime:      s.booted.Format(timeFormat),
		PrivateIP:        placeholderPrivateIP,
		Region:           s.region,
		Version:          identityVersion,
	})
	return d
}

type roleARN struct{ partition, account, role string }

// parseRoleARN takes "arn:aws:iam::123456789012:role/path/name" apart with awsarn. The role is
// the last path segment, as IAM names the instance profile's role.
func parseRoleARN(s string) roleARN {
	out := roleARN{partition: "aws", role: fallbackRole}
	a, err := awsarn.Parse(s)
	if err != nil {
		return out
	}
	if a.Partition != "" {
		out.partition = a.Partition
	}
	out.account = a.Account
	if name := a.Role(); name != "" && a.Service == "iam" {
		out.role = name
	}
	return out
}

// instanceProfileID makes a stable id in IAM's shape ("AIPA" and 17 characters) from the
// profile's ARN. No such instance profile exists; the id only has to look like one.
func instanceProfileID(profileARN string) string {
	sum := sha256.Sum256([]byte(profileARN))
	return "AIPA" + base32.StdEncoding.EncodeToString(sum[:])[:17]
}

// architecture names the machine as EC2 does.
func architecture() string {
	switch runtime.GOARCH {
	case "amd64":
		return "x86_64"
	case "386":
		return "i386"
	default:
		return runtime.GOARCH
	}
}

// mustJSON encodes documents made only of strings, which cannot fail.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("imds: encode document: " + err.Error()) // unreachable: strings and nil slices only
	}
	return b
}
