package creds

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

// rawJWT assembles a token from literal JSON parts, for shapes makeJWT cannot produce.
func rawJWT(header, payload string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(header)) + "." + enc([]byte(payload)) + "." + enc([]byte("signature-bytes"))
}

const hdr = `{"alg":"RS256","kid":"k1"}`

func TestDecodeToken(t *testing.T) {
	iat := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	k8s := k8sClaims(iat, time.Hour)
	tests := []struct {
		name    string
		raw     string
		want    *TokenClaims
		wantErr string
	}{
		{name: "projected service-account token", raw: makeJWT(t, k8s), want: &TokenClaims{
			Issuer: "https://oidc.example.test/cluster", Subject: "system:serviceaccount:shop:uploader",
			Audience: []string{"sts.amazonaws.com"}, Expiry: iat.Add(time.Hour), IssuedAt: iat, NotBefore: iat,
			Namespace: "shop", ServiceAccount: "uploader", PodName: "uploader-7d9f8-abcde",
		}},
		{name: "aud as a string", raw: rawJWT(hdr, `{"iss":"i","aud":"sts.amazonaws.com","exp":1700000000}`),
			want: &TokenClaims{Issuer: "i", Audience: []string{"sts.amazonaws.com"}, Expiry: time.Unix(1700000000, 0).UTC()}},
		{name: "aud with three values", raw: rawJWT(hdr, `{"aud":["a","b","c"]}`),
			want: &TokenClaims{Audience: []string{"a", "b", "c"}}},
		{name: "fractional exp", raw: rawJWT(hdr, `{"exp":1700000000.5}`),
			want: &TokenClaims{Expiry: time.Unix(1700000000, 5e8).UTC()}},
		{name: "no kubernetes.io claim", raw: rawJWT(hdr, `{"sub":"s"}`), want: &TokenClaims{Subject: "s"}},
		{name: "surrounding whitespace", raw: "\n " + rawJWT(hdr, `{"sub":"s"}`) + "\n", want: &TokenClaims{Subject: "s"}},
		{name: "padded base64", raw: base64.URLEncoding.EncodeToString([]byte(hdr)) + "." +
			base64.URLEncoding.EncodeToString([]byte(`{"sub":"pad"}`)) + ".c2ln", want: &TokenClaims{Subject: "pad"}},
		{name: "unsigned structure with empty signature", raw: strings.TrimSuffix(rawJWT(hdr, `{"sub":"s"}`), "c2lnbmF0dXJlLWJ5dGVz"), want: &TokenClaims{Subject: "s"}},

		{name: "empty", raw: "", wantErr: "token is empty"},
		{name: "whitespace only", raw: " \n", wantErr: "token is empty"},
		{name: "too short", raw: "a.b", wantErr: "less than the 4"},
		{name: "too long", raw: strings.Repeat("a", MaxTokenSize+1), wantErr: "20001 bytes is more than the 20000"},
		{name: "not a jwt", raw: "hello world", wantErr: "not a JWT"},
		{name: "two parts", raw: "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzIn0", wantErr: "found 2 parts"},
		{name: "jwe", raw: "a.b.c.d.e", wantErr: "encrypted JWT"},
		{name: "jwe header", raw: rawJWT(`{"alg":"RSA-OAEP","enc":"A256GCM"}`, `{}`), wantErr: "encrypted JWT"},
		{name: "header not base64", raw: "***.eyJ9.c2ln", wantErr: "decode token header: not base64url (bad byte at offset 0)"},
		{name: "payload not base64", raw: "eyJhbGciOiJSUzI1NiJ9.!!!.c2ln", wantErr: "decode token payload: not base64url"},
		{name: "signature not base64", raw: rawJWT(hdr, `{}`) + "~", wantErr: "decode token signature: not base64url"},
		{name: "header not json", raw: rawJWT(`not json`, `{}`), wantErr: "decode token header: not valid JSON"},
		{name: "no alg", raw: rawJWT(`{"typ":"JWT"}`, `{}`), wantErr: "no alg"},
		{name: "payload array", raw: rawJWT(hdr, `["secret-looking-value"]`), wantErr: "not a JSON object"},
		{name: "payload null", raw: rawJWT(hdr, `null`), wantErr: "not a JSON object"},
		{name: "payload truncated", raw: rawJWT(hdr, `{"sub":"s"`), wantErr: "not valid JSON"},
		{name: "sub of wrong type", raw: rawJWT(hdr, `{"sub":{"value":"secret-looking-value"}}`), wantErr: "wrong JSON type"},
		{name: "aud of wrong type", raw: rawJWT(hdr, `{"aud":42}`), wantErr: "aud: want a string or an array"},
		{name: "aud array of numbers", raw: rawJWT(hdr, `{"aud":[1,2]}`), wantErr: "aud: want a string or an array"},
		{name: "exp as a word", raw: rawJWT(hdr, `{"exp":"soon"}`), wantErr: "claim exp: want a number"},
		{name: "exp as a numeric string", raw: rawJWT(hdr, `{"exp":"1700000000"}`), wantErr: "claim exp: want a number"},
		{name: "exp negative", raw: rawJWT(hdr, `{"exp":-1}`), wantErr: "claim exp: want seconds since 1970"},
		{name: "exp huge", raw: rawJWT(hdr, `{"exp":1e300}`), wantErr: "claim exp: want seconds since 1970"},
		{name: "iat huge", raw: rawJWT(hdr, `{"iat":1e12}`), wantErr: "claim iat"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeToken([]byte(tt.raw))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("DecodeToken() error = %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "secret-looking-value") {
					t.Errorf("error %q quotes the token", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodeToken() error = %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("DecodeToken() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestReadToken(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	dir := newProjectedDir(t)
	valid := makeJWT(t, k8sClaims(now, time.Hour))
	tests := []struct {
		name    string
		setup   func(t *testing.T) string // returns the path to read
		wantErr string
	}{
		{name: "kubelet layout", setup: func(t *testing.T) string { dir.write(valid + "\n"); return dir.path() }},
		{name: "missing", setup: func(t *testing.T) string { return filepath.Join(t.TempDir(), "token") },
			wantErr: "file does not exist (is the projected volume mounted and AWS_WEB_IDENTITY_TOKEN_FILE/--token-file pointing at it?)"},
		{name: "too large", setup: func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "token")
			if err := os.WriteFile(p, []byte(strings.Repeat("x", 1<<20)), 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}, wantErr: "larger than the 20000 bytes"},
		{name: "fifo", setup: func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "token")
			if err := syscall.Mkfifo(p, 0o600); err != nil {
				t.Skipf("mkfifo: %v", err)
			}
			return p
		}, wantErr: "is not a regular file"},
		{name: "no exp", setup: func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "token")
			if err := os.WriteFile(p, []byte(rawJWT(hdr, `{"iss":"i"}`)), 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}, wantErr: "no exp claim"},
		{name: "expires exactly now", setup: func(t *testing.T) string {
			dir.write(makeJWT(t, k8sClaims(now.Add(-time.Hour), time.Hour)))
			return dir.path()
		}, wantErr: "token expired at 2026-03-01T12:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.setup(t)
			tok, err := readToken(path, now)
			if tt.wantErr != "" {
				var te *TokenError
				if !errors.As(err, &te) || te.Path != path || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("readToken() error = %v, want a TokenError for %s containing %q", err, path, tt.wantErr)
				}
				if Classify(err) != Terminal || ErrorCode(err) != CodeToken {
					t.Errorf("token error classified %v/%s, want terminal/%s", Classify(err), ErrorCode(err), CodeToken)
				}
				return
			}
			if err != nil {
				t.Fatalf("readToken() error = %v", err)
			}
			if string(tok.raw) != valid {
				t.Errorf("readToken() raw differs from the token (trailing newline kept?)")
			}
			if !strings.HasPrefix(filepath.Base(filepath.Dir(tok.target)), "..2026_") {
				t.Errorf("target = %s, want the timestamped directory behind ..data", tok.target)
			}
		})
	}
}

// A rotation between resolving <dir>/token and opening what it led to removes the target (the
// kubelet deletes the old timestamped directory right after the ..data swap); one immediate
// re-read finds the new token instead of reporting it missing.
func TestReadTokenDuringRotation(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	old := makeJWT(t, k8sClaims(now, time.Hour))
	rotated := makeJWT(t, k8sClaims(now.Add(time.Minute), time.Hour))
	tests := []struct {
		name    string
		read    func(path string, rotate func()) (*tokenFile, error)
		want    string // token read; "" when the read must fail
		wantErr string
	}{
		{
			name:    "one read alone finds the old target gone",
			read:    func(path string, rotate func()) (*tokenFile, error) { return readTokenOnce(path, now, rotate) },
			wantErr: "points nowhere",
		},
		{
			name: "retry reads the rotated token",
			read: func(path string, rotate func()) (*tokenFile, error) { return readTokenRetrying(path, now, rotate) },
			want: rotated,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := newProjectedDir(t)
			dir.write(old)
			rotations := 0
			tok, err := tt.read(dir.path(), func() { rotations++; dir.write(rotated) })
			if rotations != 1 {
				t.Fatalf("rotations during the read = %d, want 1", rotations)
			}
			if tt.want == "" {
				if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("read error = %v, want ENOENT containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("read error = %v, want the rotated token", err)
			}
			if string(tok.raw) != tt.want {
				t.Error("read returned the old token, want the rotated one")
			}
		})
	}
}

func TestSessionName(t *testing.T) {
	tests := []struct {
		name, namespace, pod, want string
	}{
		{name: "namespace and pod", namespace: "shop", pod: "uploader-7d9f8-abcde", want: "shop.uploader-7d9f8-abcde"},
		{name: "allowed punctuation kept", namespace: "a_b", pod: "c+d=e,f@g", want: "a_b.c+d=e,f@g"},
		{name: "disallowed replaced", namespace: "ns/x", pod: "pod:1 2", want: "ns-x.pod-1-2"},
		{name: "non-ascii replaced per character", namespace: "ns", pod: "pöd", want: "ns.p-d"},
		{name: "cut to 64", namespace: strings.Repeat("n", 40), pod: strings.Repeat("p", 40), want: strings.Repeat("n", 40) + "." + strings.Repeat("p", 23)},
		{name: "only pod", pod: "uploader", want: "uploader"},
		{name: "only namespace", namespace: "shop", want: "shop"},
		{name: "empty", want: "credsidecar"},
		{name: "one character", pod: "x", want: "credsidecar"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := SessionName(tt.namespace, tt.pod)
			if got != tt.want {
				t.Errorf("SessionName(%q, %q) = %q, want %q", tt.namespace, tt.pod, got, tt.want)
			}
			if !validSessionName(got) {
				t.Errorf("SessionName(%q, %q) = %q, which STS refuses", tt.namespace, tt.pod, got)
			}
		})
	}
}

// FuzzDecodeToken feeds the parser of the one piece of outside input the sidecar decodes.
// Seeds live in testdata/fuzz/FuzzDecodeToken.
func FuzzDecodeToken(f *testing.F) {
	f.Add([]byte(rawJWT(hdr, `{"iss":"i","aud":["a"],"exp":1700000000,"kubernetes.io":{"namespace":"n","pod":{"name":"p"}}}`)))
	f.Fuzz(func(t *testing.T, raw []byte) {
		claims, err := DecodeToken(raw)
		if err != nil {
			if claims != nil {
				t.Errorf("DecodeToken returned claims with error %v", err)
			}
			msg := err.Error()
			for _, part := range append(strings.Split(string(raw), "."), string(raw)) {
				if len(part) >= 16 && strings.Contains(msg, part) {
					t.Errorf("error %q contains input text", msg)
				}
			}
			return
		}
		if claims == nil {
			t.Fatal("DecodeToken returned neither claims nor error")
		}
		if len(raw) > MaxTokenSize+len(raw)-len(strings.TrimSpace(string(raw))) {
			t.Errorf("accepted %d bytes, more than %d", len(raw), MaxTokenSize)
		}
		if _, err := json.Marshal(claims); err != nil {
			t.Errorf("claims do not round-trip to JSON: %v", err)
		}
	})
}

func ExampleSessionName() {
	fmt.Println(SessionName("shop", "uploader-7d9f8-abcde"))
	fmt.Println(SessionName("team/a", "pod name"))
	fmt.Println(SessionName("", ""))
	// Output:
	// shop.uploader-7d9f8-abcde
	// team-a.pod-name
	// credsidecar
}

func ExampleDecodeToken() {
	payload := `{"iss":"https://oidc.example.test","sub":"system:serviceaccount:shop:uploader","aud":"sts.amazonaws.com",` +
		`"exp":1772370000,"kubernetes.io":{"namespace":"shop","serviceaccount":{"name":"uploader"},"pod":{"name":"uploader-0"}}}`
	enc := base64.RawURLEncoding.EncodeToString
	token := enc([]byte(`{"alg":"RS256"}`)) + "." + enc([]byte(payload)) + ".c2ln"

	claims, err := DecodeToken([]byte(token))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(claims.Subject, claims.Audience, claims.Expiry.Format(time.RFC3339))
	fmt.Println(claims.Namespace, claims.ServiceAccount, claims.PodName)
	// Output:
	// system:serviceaccount:shop:uploader [sts.amazonaws.com] 2026-03-01T13:00:00Z
	// shop uploader uploader-0
}
