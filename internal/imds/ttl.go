package imds

import (
	"errors"
	"time"
)

// TTLHeader is the header a token request names its lifetime in, in seconds; the reply echoes
// it because the Go SDKs and the Rust SDK read the token's lifetime from the reply.
const TTLHeader = "X-Aws-Ec2-Metadata-Token-Ttl-Seconds"

// TokenHeader carries the session token on metadata requests.
const TokenHeader = "X-Aws-Ec2-Metadata-Token"

// MaxTokenTTL is the longest token lifetime IMDS grants: 6 hours.
const MaxTokenTTL = 21600 * time.Second

// maxTTLDigits bounds the work done on a header an attacker controls; "021600" is still fine.
const maxTTLDigits = 8

// ParseTTL reads the value of the X-aws-ec2-metadata-token-ttl-seconds header: a whole number
// of seconds from 1 to 21600, in ASCII digits only (no sign, no spaces, no fraction), as IMDS
// accepts it. The errors never quote the value, which comes from outside.
func ParseTTL(v string) (time.Duration, error) {
	if v == "" {
		return 0, errors.New("parse token ttl: empty")
	}
	if len(v) > maxTTLDigits {
		return 0, errors.New("parse token ttl: longer than 8 digits")
	}
	n := 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, errors.New("parse token ttl: not a whole number of seconds")
		}
		n = n*10 + int(c-'0')
	}
	if n < 1 || time.Duration(n)*time.Second > MaxTokenTTL {
		return 0, errors.New("parse token ttl: outside 1 to 21600 seconds")
	}
	return time.Duration(n) * time.Second, nil
}
