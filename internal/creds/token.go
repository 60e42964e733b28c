package creds

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/credsidecar/credsidecar/internal/filewatch"
)

// MaxTokenSize is the longest web identity token STS accepts; longer input is refused before
// any decoding, which also bounds the work a hostile file can cause.
const MaxTokenSize = 20000

// minTokenSize is the shortest web identity token STS accepts.
const minTokenSize = 4

// TokenClaims are the claims of a projected service-account token that the sidecar uses to
// explain STS answers and to name the session. None of them is secret.
type TokenClaims struct {
	Issuer, Subject string
	Audience        []string
	Expiry          time.Time
	IssuedAt        time.Time
	NotBefore       time.Time
	// Namespace, ServiceAccount and PodName come from the kubernetes.io claim.
	Namespace, ServiceAccount, PodName string
}

// errors of DecodeToken carry only numbers and fixed text, never the token.
var (
	errTokenEmpty   = errors.New("token is empty")
	errTokenShape   = errors.New("token is not a JWT: want three base64url parts separated by dots")
	errTokenJWE     = errors.New("token is an encrypted JWT (JWE); STS needs a signed one")
	errTokenNoAlg   = errors.New("token header has no alg")
	errTokenPayload = errors.New("token payload is not a JSON object")
)

type jwtHeader struct {
	Alg string `json:"alg"`
	Enc string `json:"enc"`
}

type jwtPayload struct {
	Iss string          `json:"iss"`
	Sub string          `json:"sub"`
	Aud json.RawMessage `json:"aud"`
	Exp json.RawMessage `json:"exp"`
	Iat json.RawMessage `json:"iat"`
	Nbf json.RawMessage `json:"nbf"`
	K8s *struct {
		Namespace      string `json:"namespace"`
		ServiceAccount *struct {
			Name string `json:"name"`
		} `json:"serviceaccount"`
		Pod *struct {
			Name string `json:"name"`
		} `json:"pod"`
	} `json:"kubernetes.io"`
}

// DecodeToken reads the header and claims of a JWT without checking its signature: STS checks
// that, the sidecar only needs the claims to validate expiry and to explain failures.
// Errors never contain any part of raw.
func DecodeToken(raw []byte) (*TokenClaims, error) {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0:
		return nil, errTokenEmpty
	case len(raw) > MaxTokenSize:
		return nil, fmt.Errorf("decode token: %d bytes is more than the %d STS accepts", len(raw), MaxTokenSize)
	case len(raw) < minTokenSize:
		return nil, fmt.Errorf("decode token: %d bytes is less than the %d STS accepts", len(raw), minTokenSize)
	}
	parts := bytes.Split(raw, []byte("."))
	if len(parts) == 5 {
		return nil, errTokenJWE
	}
	if len(parts) != 3 {
		return nil, fmt.Errorf("%w (found %d parts)", errTokenShape, len(parts))
	}
	hdrJSON, err := decodeSegment(parts[0])
	if err != nil {
		return nil, fmt.Errorf("decode token header: %w", err)
	}
	payJSON, err := decodeSegment(parts[1])
	if err != nil {
		return nil, fmt.Errorf("decode token payload: %w", err)
	}
	if _, err := decodeSegment(parts[2]); err != nil {
		return nil, fmt.Errorf("decode token signature: %w", err)
	}

	var hdr jwtHeader
	if err := json.Unmarshal(hdrJSON, &hdr); err != nil {
		return nil, fmt.Errorf("decode token header: %s", jsonProblem(err))
	}
	if hdr.Enc != "" {
		return nil, errTokenJWE
	}
	if hdr.Alg == "" {
		return nil, errTokenNoAlg
	}

	if t := bytes.TrimSpace(payJSON); len(t) == 0 || t[0] != '{' {
		return nil, errTokenPayload
	}
	var p jwtPayload
	if err := json.Unmarshal(payJSON, &p); err != nil {
		return nil, fmt.Errorf("decode token payload: %s", jsonProblem(err))
	}

	c := &TokenClaims{Issuer: p.Iss, Subject: p.Sub}
	if c.Audience, err = decodeAudience(p.Aud); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name string
		in   json.RawMessage
		out  *time.Time
	}{{"exp", p.Exp, &c.Expiry}, {"iat", p.Iat, &c.IssuedAt}, {"nbf", p.Nbf, &c.NotBefore}} {
		if *f.out, err = numericDate(f.name, f.in); err != nil {
			return nil, err
		}
	}
	if k := p.K8s; k != nil {
		c.Namespace = k.Namespace
		if k.ServiceAccount != nil {
			c.ServiceAccount = k.ServiceAccount.Name
		}
		if k.Pod != nil {
			c.PodName = k.Pod.Name
		}
	}
	return c, nil
}

// decodeSegment accepts base64url with or without padding, as JWT libraries differ.
func decodeSegment(seg []byte) ([]byte, error) {
	seg = bytes.TrimRight(seg, "=")
	out := make([]byte, base64.RawURLEncoding.DecodedLen(len(seg)))
	n, err := base64.RawURLEncoding.Decode(out, seg)
	if err != nil {
		var ce base64.CorruptInputError
		if errors.As(err, &ce) {
			return nil, fmt.Errorf("not base64url (bad byte at offset %d)", int64(ce))
		}
		return nil, errors.New("not base64url")
	}
	return out[:n], nil
}

// jsonProblem describes a JSON error by position and kind only: encoding/json's messages can
// quote input characters and field values.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("not valid JSON (at byte %d)", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("a claim has the wrong JSON type (at byte %d)", te.Offset)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "not valid JSON (truncated)"
	default:
		return "not valid JSON"
	}
}

// decodeAudience accepts both forms RFC 7519 allows: one string or an array of strings.
func decodeAudience(raw json.RawMessage) ([]string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("decode token claim aud: %s", jsonProblem(err))
		}
		return []string{s}, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, errors.New("decode token claim aud: want a string or an array of strings")
	}
	return list, nil
}

// maxNumericDate keeps dates in a range time.Time represents sensibly (year 5138).
const maxNumericDate = 1e11

// numericDate parses an RFC 7519 NumericDate: a JSON number of seconds, possibly fractional.
func numericDate(name string, raw json.RawMessage) (time.Time, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return time.Time{}, nil
	}
	if c := raw[0]; c != '-' && (c < '0' || c > '9') {
		return time.Time{}, fmt.Errorf("decode token claim %s: want a number", name)
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > maxNumericDate {
		return time.Time{}, fmt.Errorf("decode token claim %s: want seconds since 1970 between 0 and %d", name, int64(maxNumericDate))
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
}

// TokenError says why the token file cannot be used. It names the path and the problem, never
// the token, so it is safe to log and to return to callers.
type TokenError struct {
	// Path is the configured token file.
	Path string
	// Problem says what is wrong and, where it helps, what to check.
	Problem string
	// Err is the underlying error, if any.
	Err error
}

// Error reads like "read token /path: problem".
func (e *TokenError) Error() string { return "read token " + e.Path + ": " + e.Problem }

// Unwrap returns the underlying error.
func (e *TokenError) Unwrap() error { return e.Err }

const mountHint = "(is the projected volume mounted and AWS_WEB_IDENTITY_TOKEN_FILE/--token-file pointing at it?)"

// tokenFile is one read of the token file: the bytes, where the symlinks led, the claims, and
// the file's metadata (which tells the watcher whether a later look finds the same version).
type tokenFile struct {
	raw    []byte
	target string
	claims *TokenClaims
	info   os.FileInfo
}

// readToken reads and validates the token at path. now decides expiry.
func readToken(path string, now time.Time) (*tokenFile, error) {
	return readTokenRetrying(path, now, nil)
}

// readTokenRetrying reads the token once more, at once, when the first read finds nothing:
// the kubelet removes the previous timestamped directory right after swapping ..data, so a
// read that resolved the symlinks just before the swap finds its target gone, and the second
// read follows the new ..data. A token that is really missing fails both. afterResolve, for
// tests, runs in the first read between resolving the symlinks and opening the target.
func readTokenRetrying(path string, now time.Time, afterResolve func()) (*tokenFile, error) {
	tok, err := readTokenOnce(path, now, afterResolve)
	if errors.Is(err, fs.ErrNotExist) {
		tok, err = readTokenOnce(path, now, nil)
	}
	return tok, err
}

func readTokenOnce(path string, now time.Time, afterResolve func()) (*tokenFile, error) {
	// Room for surrounding whitespace.
	f, err := filewatch.Read(path, MaxTokenSize+63, afterResolve)
	var notRegular *filewatch.NotRegularError
	var tooLarge *filewatch.TooLargeError
	switch {
	case errors.As(err, &notRegular) && notRegular.Type.IsDir():
		return nil, &TokenError{Path: path, Problem: "is a directory, not a token file " + mountHint}
	case errors.As(err, &notRegular):
		return nil, &TokenError{Path: path, Problem: fmt.Sprintf("is not a regular file (%s) %s", notRegular.Type, mountHint)}
	case errors.As(err, &tooLarge):
		return nil, &TokenError{Path: path, Problem: fmt.Sprintf("file is larger than the %d bytes STS accepts; is it a token?", MaxTokenSize)}
	case err != nil:
		var pe *fs.PathError
		if errors.As(err, &pe) && pe.Op == "read" {
			return nil, &TokenError{Path: path, Problem: "cannot read: " + errProblem(err), Err: err}
		}
		return nil, statProblem(path, err)
	}
	raw, target, fi := f.Data, f.Target, f.Info
	claims, err := DecodeToken(raw)
	if err != nil {
		if errors.Is(err, errTokenEmpty) {
			return nil, &TokenError{Path: path, Problem: "file is empty (is the kubelet projecting the service-account token?)", Err: err}
		}
		return nil, &TokenError{Path: path, Problem: err.Error(), Err: err}
	}
	if claims.Expiry.IsZero() {
		return nil, &TokenError{Path: path, Problem: "token has no exp claim; STS needs an expiring token"}
	}
	if err := checkExpiry(path, claims, now); err != nil {
		return nil, err
	}
	return &tokenFile{raw: bytes.TrimSpace(raw), target: target, claims: claims, info: fi}, nil
}

// checkExpiry refuses a token whose exp has passed at now.
func checkExpiry(path string, claims *TokenClaims, now time.Time) error {
	if !now.Before(claims.Expiry) {
		return &TokenError{Path: path, Problem: fmt.Sprintf(
			"token expired at %s; the kubelet should have rotated it: is the pod's projected volume set up and the kubelet healthy?",
			claims.Expiry.Format(time.RFC3339))}
	}
	return nil
}

// statProblem turns an open/resolve failure into advice; a dangling symlink is the typical
// state of a half-mounted or torn-down projected volume.
func statProblem(path string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if dest, lerr := os.Readlink(path); lerr == nil {
			return &TokenError{Path: path, Problem: fmt.Sprintf("symlink to %s points nowhere %s", dest, mountHint), Err: err}
		}
		return &TokenError{Path: path, Problem: "file does not exist " + mountHint, Err: err}
	case errors.Is(err, fs.ErrPermission):
		return &TokenError{Path: path, Problem: fmt.Sprintf("permission denied for uid %d (set the pod's fsGroup or the volume's defaultMode so the sidecar can read it)", os.Getuid()), Err: err}
	default:
		return &TokenError{Path: path, Problem: errProblem(err), Err: err}
	}
}

// errProblem drops the path an *fs.PathError repeats, since TokenError names it already.
func errProblem(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// DefaultAudience is the audience a projected token should carry for issuer: the issuer URL
// with one trailing slash, the AKS convention that the IAM OIDC provider registers as its
// client id.
func DefaultAudience(issuer string) string { return strings.TrimRight(issuer, "/") + "/" }

// defaultSessionName is used when namespace and pod give nothing usable.
const defaultSessionName = "credsidecar"

// SessionName builds an STS RoleSessionName "<namespace>.<pod>" so CloudTrail shows which pod
// acted: characters STS refuses become '-', the result is cut to 64 characters, and a name
// shorter than 2 falls back to "credsidecar".
func SessionName(namespace, pod string) string {
	var parts []string
	for _, p := range []string{namespace, pod} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	var b strings.Builder
	for _, r := range strings.Join(parts, ".") {
		if validSessionRune(r) {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
		if b.Len() >= 64 {
			break
		}
	}
	s := b.String()
	if len(s) < 2 {
		return defaultSessionName
	}
	return s
}

func validSessionRune(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return true
	case r < utf8.RuneSelf && strings.ContainsRune("_+=,.@-", r):
		return true
	}
	return false
}

// validSessionName reports whether s is acceptable to STS as it is.
func validSessionName(s string) bool {
	if len(s) < 2 || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !validSessionRune(r) {
			return false
		}
	}
	return true
}
