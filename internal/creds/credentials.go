package creds

import (
	"log/slog"
	"time"
)

// Credentials is one set of temporary AWS credentials as STS issued them. A value is never
// changed after it is published, so readers may keep the pointer.
type Credentials struct {
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
	Expiration      time.Time
	AccountID       string
	RoleARN         string
}

// LogValue keeps secrets out of logs: only the key id's last 4 characters, the role and expiry.
func (c *Credentials) LogValue() slog.Value {
	if c == nil {
		return slog.StringValue("none")
	}
	return slog.GroupValue(
		slog.String("access_key_id", MaskKeyID(c.AccessKeyID)),
		slog.String("role_arn", c.RoleARN),
		slog.Time("expiration", c.Expiration),
	)
}

// MaskKeyID shows only the last 4 characters of an access key id.
func MaskKeyID(id string) string {
	const keep = 4
	if len(id) <= keep {
		return "****"
	}
	return "****" + id[len(id)-keep:]
}

// Observer receives the events that metrics count. Implementations must be cheap and
// safe for concurrent use.
type Observer interface {
	// STSCall is one AssumeRoleWithWebIdentity call: result is "success" or "error",
	// code is ErrorCode(err) ("" on success).
	STSCall(result, code string, took time.Duration)
	// CredentialsUpdated is called when new credentials are published.
	CredentialsUpdated(expiry time.Time)
	// TokenReloaded is called when a new projected token is noticed (rotation or recovery).
	TokenReloaded(expiry time.Time)
}
