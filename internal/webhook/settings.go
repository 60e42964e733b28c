package webhook

import (
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/credsidecar/credsidecar/internal/awsarn"
	"github.com/credsidecar/credsidecar/internal/config"
	"github.com/credsidecar/credsidecar/internal/creds"
)

// The label and annotations users write. The label selects pods (the chart's objectSelector);
// the ServiceAccount's annotations say what to inject; the pod's annotations tune it per pod.
const (
	// LabelInject on a pod, "true", asks for the sidecar.
	LabelInject = "credsidecar.io/inject"

	AnnotationRoleARN = "credsidecar.io/role-arn"
	// AnnotationRoles names further roles, "reader=arn:...,writer=arn:...", each served at
	// /v1/credentials/NAME (the sidecar's --role).
	AnnotationRoles           = "credsidecar.io/roles"
	AnnotationAudience        = "credsidecar.io/audience"
	AnnotationRegion          = "credsidecar.io/region"
	AnnotationSTSEndpoint     = "credsidecar.io/sts-endpoint"
	AnnotationTokenExpiration = "credsidecar.io/token-expiration"
	AnnotationSessionDuration = "credsidecar.io/session-duration"

	// The IRSA annotations honoured when the credsidecar ones are absent, for users moving from
	// EKS's pod identity webhook.
	IRSARoleARN             = "eks.amazonaws.com/role-arn"
	IRSAAudience            = "eks.amazonaws.com/audience"
	IRSATokenExpiration     = "eks.amazonaws.com/token-expiration"
	IRSASTSRegionalEndpoint = "eks.amazonaws.com/sts-regional-endpoints"

	AnnotationSkipContainers    = "credsidecar.io/skip-containers"
	AnnotationIncludeContainers = "credsidecar.io/include-containers"
	AnnotationCPURequest        = "credsidecar.io/sidecar-cpu-request"
	AnnotationMemoryRequest     = "credsidecar.io/sidecar-memory-request"
	AnnotationMemoryLimit       = "credsidecar.io/sidecar-memory-limit"
	AnnotationIMDS              = "credsidecar.io/imds"
	// AnnotationContainerRoles, on a pod, points containers at named roles: "app=reader,loader=writer".
	AnnotationContainerRoles = "credsidecar.io/container-roles"
)

// Limits the kubelet and STS put on what the annotations may ask for.
const (
	// MinTokenExpiration is the shortest projected token the API server issues.
	MinTokenExpiration = 10 * time.Minute
	// MaxTokenExpiration is the longest the API server issues by default
	// (--service-account-max-token-expiration is usually 24 h or more).
	MaxTokenExpiration = 48 * time.Hour
	// MinSessionDuration and MaxSessionDuration bound the STS session the sidecar asks for: the
	// SDKs' refresh windows need an hour (PROTOCOL.md §2), and STS refuses more than 12 h.
	MinSessionDuration = time.Hour
	MaxSessionDuration = 12 * time.Hour
)

// Defaults are the webhook's flags: what a ServiceAccount or pod that says nothing gets.
type Defaults struct {
	// Image is the sidecar's image.
	Image string
	// Audience is the projected token's audience when the ServiceAccount names none: the
	// cluster's issuer URL as registered on the IAM OIDC provider, trailing slash included.
	Audience string
	// Region is the STS region when the ServiceAccount names none.
	Region string
	// TokenExpiration is the projected token's lifetime.
	TokenExpiration time.Duration
	// CPURequest, MemoryRequest and MemoryLimit size the sidecar, for ResourceQuotas.
	CPURequest, MemoryRequest, MemoryLimit resource.Quantity
}

// Settings are what one pod's sidecar is configured with, from its ServiceAccount's annotations
// and the Defaults.
type Settings struct {
	// RoleARN is the unnamed role; empty when the ServiceAccount names only Roles.
	RoleARN string
	// Roles are the named roles, sorted by name.
	Roles           []config.Role
	Audience        string
	Region          string
	STSEndpoint     string
	TokenExpiration time.Duration
	// SessionDuration is the sidecar's --duration; zero keeps the sidecar's default.
	SessionDuration time.Duration
}

// AnnotationError is a ServiceAccount annotation that cannot be used, or a missing one.
type AnnotationError struct {
	// ServiceAccount is namespace/name.
	ServiceAccount string
	// Annotation is the key at fault.
	Annotation string
	// Value is the value given, "" when missing.
	Value string
	// Problem says what is wrong and what to write instead.
	Problem string
}

func (e *AnnotationError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("serviceaccount %s: annotation %s: %s", e.ServiceAccount, e.Annotation, e.Problem)
	}
	return fmt.Sprintf("serviceaccount %s: annotation %s=%q: %s", e.ServiceAccount, e.Annotation, e.Value, e.Problem)
}

// SettingsFor reads sa's annotations, the credsidecar ones first and then the IRSA ones, over d.
// A missing role, or any malformed value, is an *AnnotationError naming the ServiceAccount, the
// annotation and the value.
func SettingsFor(sa *corev1.ServiceAccount, d Defaults) (Settings, error) {
	name := sa.Namespace + "/" + sa.Name
	bad := func(key, value, problem string) error {
		return &AnnotationError{ServiceAccount: name, Annotation: key, Value: value, Problem: problem}
	}
	s := Settings{Audience: d.Audience, Region: d.Region, TokenExpiration: d.TokenExpiration}

	if v := sa.Annotations[AnnotationRoles]; v != "" {
		roles, err := config.ParseRoles(strings.Split(v, ","))
		if err != nil {
			return Settings{}, bad(AnnotationRoles, v, err.Error()+" (want NAME=ARN,NAME=ARN; NAME is 1 to 32 of a-z, 0-9 and -)")
		}
		slices.SortFunc(roles, func(a, b config.Role) int { return strings.Compare(a.Name, b.Name) })
		s.Roles = roles
	}
	key, arn := first(sa.Annotations, AnnotationRoleARN, IRSARoleARN)
	switch {
	case arn == "" && len(s.Roles) == 0:
		return Settings{}, bad(AnnotationRoleARN, "", "required: the IAM role the pod's sidecar assumes, "+
			"arn:aws:iam::<account-id>:role/<name> (or "+IRSARoleARN+"), unless "+AnnotationRoles+" names roles")
	case arn == "":
	case awsarn.CheckRole(arn) != nil:
		return Settings{}, bad(key, arn, awsarn.CheckRole(arn).Error())
	}
	s.RoleARN = arn

	if key, aud := first(sa.Annotations, AnnotationAudience, IRSAAudience); aud != "" {
		if strings.ContainsAny(aud, " \t\r\n,") {
			return Settings{}, bad(key, aud, "one audience, without spaces or commas: the issuer URL registered "+
				"as the IAM OIDC provider's client ID")
		}
		s.Audience = aud
	}
	if s.Audience == "" {
		return Settings{}, bad(AnnotationAudience, "", "required: no default audience is configured; set it to "+
			"the cluster's OIDC issuer URL as registered on the IAM OIDC provider, trailing slash included")
	}

	if r := sa.Annotations[AnnotationRegion]; r != "" {
		if !creds.ValidRegion(r) {
			return Settings{}, bad(AnnotationRegion, r, "not a region name such as eu-west-1")
		}
		s.Region = r
	}
	if e := sa.Annotations[AnnotationSTSEndpoint]; e != "" {
		u, err := url.Parse(e)
		secure := err == nil && (u.Scheme == "https" || u.Scheme == "http" && loopbackHost(u.Hostname()))
		if !secure || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return Settings{}, bad(AnnotationSTSEndpoint, e, "must be an https URL (plain http only to a loopback "+
				"address) without credentials, query or fragment, such as https://sts.eu-west-1.amazonaws.com: the "+
				"sidecar sends the service-account token there")
		}
		s.STSEndpoint = e
	}
	if v := sa.Annotations[IRSASTSRegionalEndpoint]; v != "" && v != "true" && v != "false" {
		return Settings{}, bad(IRSASTSRegionalEndpoint, v, "must be true or false (the sidecar always calls the regional endpoint)")
	}
	if s.Region == "" && s.STSEndpoint == "" {
		return Settings{}, bad(AnnotationRegion, "", "required: no default region is configured, and the sidecar "+
			"calls the regional STS endpoint")
	}

	if key, v := first(sa.Annotations, AnnotationTokenExpiration, IRSATokenExpiration); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		d := time.Duration(n) * time.Second
		if err != nil || d < MinTokenExpiration || d > MaxTokenExpiration {
			return Settings{}, bad(key, v, fmt.Sprintf("must be whole seconds from %d to %d: the projected token's lifetime",
				int64(MinTokenExpiration/time.Second), int64(MaxTokenExpiration/time.Second)))
		}
		s.TokenExpiration = d
	}
	if v := sa.Annotations[AnnotationSessionDuration]; v != "" {
		d, err := parseSeconds(v)
		if err != nil || d < MinSessionDuration || d > MaxSessionDuration || d%time.Second != 0 {
			return Settings{}, bad(AnnotationSessionDuration, v, "must be whole seconds or a duration from 1h to 12h: "+
				"the SDKs' refresh windows need an hour, STS allows twelve")
		}
		s.SessionDuration = d
	}
	return s, nil
}

// first returns the first of keys with a non-empty value in m, and the value.
func first(m map[string]string, keys ...string) (key, value string) {
	for _, k := range keys {
		if v := m[k]; v != "" {
			return k, v
		}
	}
	return keys[0], ""
}

// parseSeconds accepts a number of seconds or a Go duration.
func parseSeconds(v string) (time.Duration, error) {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 || n > int64(MaxSessionDuration/time.Second)*10 {
			return 0, fmt.Errorf("out of range")
		}
		return time.Duration(n) * time.Second, nil
	}
	return time.ParseDuration(v)
}

// loopbackHost reports whether host is localhost or a loopback IP address.
func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
