// Package credprocess is `sidecar credential-process`: a credential_process helper that
// fetches the credentials from the running sidecar's endpoint and prints them in the format
// the AWS CLI and SDKs expect from such a helper, for tools that read credentials only from a
// profile in ~/.aws/config:
//
//	[profile app]
//	credential_process = /credsidecar/sidecar credential-process
//
// It reads the endpoint and its Authorization token the way SDKs do (the flags win):
//
//	endpoint   --endpoint, else $AWS_CONTAINER_CREDENTIALS_FULL_URI, else serve's default --listen
//	token      --auth-token-file, else $AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE,
//	           else $AWS_CONTAINER_AUTHORIZATION_TOKEN, else serve's default --auth-token-file
//
// and prints one JSON object on standard output:
//
//	{"Version":1,"AccessKeyId":"ASIA...","SecretAccessKey":"...","SessionToken":"...","Expiration":"2026-08-22T13:04:05Z","AccountId":"123456789012"}
//
// Callers cache the result until shortly before Expiration and run the helper again, so it
// makes one request and keeps no state. Failures go to standard error as one line naming the
// endpoint and what went wrong (status, error code, message), never the token or a
// credential, and the exit status is 1; a usage error exits 2.
package credprocess

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/credsidecar/credsidecar/internal/config"
	"github.com/credsidecar/credsidecar/internal/server"
)

const (
	// DefaultTimeout bounds the whole fetch: botocore waits for a credential process without
	// a deadline (the Go SDK gives it a minute), so a hung endpoint would hang the caller.
	DefaultTimeout = 5 * time.Second

	maxBody     = 64 << 10
	maxTokenLen = 4096
)

// Main runs the command with args (the words after "credential-process") and returns the
// exit status.
func Main(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	o, err := parse(args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		usage(stdout)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "credential-process: %v\n", err)
		usage(stderr)
		return 2
	}
	out, err := fetch(ctx, o, time.Now)
	if err != nil {
		fmt.Fprintf(stderr, "credential-process: %v\n", err)
		return 1
	}
	if _, err := stdout.Write(out); err != nil {
		fmt.Fprintf(stderr, "credential-process: write output: %v\n", err)
		return 1
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "usage: sidecar credential-process [flags]\n\n")
	fmt.Fprintf(w, "Prints the sidecar's credentials for a credential_process line in an AWS config file.\n\n")
	b := config.NewBinder(flag.NewFlagSet("credential-process", flag.ContinueOnError))
	b.Add(settings(&values{})...)
	b.WriteUsage(w, nil)
}

// defaultEndpoint is the URL of `sidecar serve` at its default --listen.
func defaultEndpoint() string { return "http://" + config.Default("listen") + server.CredentialsPath }

// values are the settings once resolved.
type values struct {
	endpoint, tokenFile, role string
	timeout                   time.Duration
}

// settings are credential-process's flags, read the SDKs' way; the defaults are serve's.
func settings(v *values) []config.Setting {
	return []config.Setting{
		{Flag: "endpoint", Envs: []string{"AWS_CONTAINER_CREDENTIALS_FULL_URI"}, Kind: "url", Default: defaultEndpoint(),
			Usage: "the sidecar's credentials endpoint", Set: func(s string) error { v.endpoint = s; return nil }},
		{Flag: "auth-token-file", Envs: []string{"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"}, Kind: "path",
			DefaultHelp: "$AWS_CONTAINER_AUTHORIZATION_TOKEN's value, else " + config.Default("auth-token-file"),
			Usage:       "the endpoint's Authorization token file",
			// The file variable wins over the plain one, as in the SDKs; the plain one over the default.
			DefaultFrom: func(getenv func(string) string) string {
				if getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN") != "" {
					return ""
				}
				return config.Default("auth-token-file")
			},
			Set: func(s string) error { v.tokenFile = s; return nil }},
		{Flag: "role", Envs: []string{"CREDSIDECAR_CREDENTIAL_PROCESS_ROLE"}, Kind: "name", DefaultHelp: "the unnamed role",
			Usage: "a named role of the sidecar (serve --role NAME=ARN): fetched from " + server.CredentialsPath + "/NAME on the endpoint's host",
			Set: func(s string) error {
				if err := config.CheckRoleName(s); err != nil {
					return err
				}
				v.role = s
				return nil
			}},
		{Flag: "timeout", Envs: []string{"CREDSIDECAR_CREDENTIAL_PROCESS_TIMEOUT"}, Kind: "duration",
			Default: DefaultTimeout.String(), Usage: "give up after this long",
			Set: func(s string) error {
				d, err := time.ParseDuration(s)
				if err != nil || d <= 0 {
					return errors.New("must be a positive duration such as 5s")
				}
				v.timeout = d
				return nil
			}},
	}
}

// options is the parsed command line. The token is in token, or in tokenFile (read by fetch,
// so that a bad token file is a failure to report, not a usage error); tokenFrom says where it
// comes from, for errors.
type options struct {
	endpoint  *url.URL
	token     string
	tokenFile string
	tokenFrom string
	timeout   time.Duration
}

func parse(args []string, getenv func(string) string) (options, error) {
	fs := flag.NewFlagSet("credential-process", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	b := config.NewBinder(fs)
	var v values
	b.Add(settings(&v)...)
	if err := b.Parse(args); err != nil {
		return options{}, err
	}
	if problems := b.Resolve(getenv); len(problems) > 0 {
		return options{}, &config.Error{Problems: problems}
	}
	o := options{timeout: v.timeout}
	from := func(name, value string) string {
		switch {
		case b.ByFlag(name):
			return "--" + name + " " + value
		case b.Env(name) != "":
			return b.Env(name) + "=" + value
		}
		return "the default " + value
	}
	u, err := checkEndpoint(v.endpoint)
	if err != nil {
		where := "the default endpoint"
		switch {
		case b.ByFlag("endpoint"):
			where = "--endpoint"
		case b.Env("endpoint") != "":
			where = b.Env("endpoint")
		}
		return options{}, fmt.Errorf("%s: %w", where, err)
	}
	if v.role != "" {
		// The endpoint names the sidecar (AWS_CONTAINER_CREDENTIALS_FULL_URI is the unnamed role's
		// URL in the pod); the role picks the path there.
		u.Path, u.RawPath = server.CredentialsPath+"/"+v.role, ""
	}
	o.endpoint = u
	if v.tokenFile != "" {
		o.tokenFile, o.tokenFrom = v.tokenFile, from("auth-token-file", v.tokenFile)
	} else {
		o.token, o.tokenFrom = getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN"), "AWS_CONTAINER_AUTHORIZATION_TOKEN"
	}
	return o, nil
}

// checkEndpoint accepts what SDKs accept for a full URI: https anywhere, plain http only to a
// loopback address or to the ECS/EKS agent addresses, since the token travels in clear text.
func checkEndpoint(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("endpoint %q is not an absolute URL", raw)
	}
	switch u.Scheme {
	case "https":
		return u, nil
	case "http":
	default:
		return nil, fmt.Errorf("endpoint %q: scheme must be http or https", u.Redacted())
	}
	host := u.Hostname()
	if host == "localhost" {
		return u, nil
	}
	ip, err := netip.ParseAddr(host)
	if err == nil {
		ip = ip.Unmap()
		if ip.IsLoopback() || ip == netip.MustParseAddr("169.254.170.2") ||
			ip == netip.MustParseAddr("169.254.170.23") || ip == netip.MustParseAddr("fd00:ec2::23") {
			return u, nil
		}
	}
	return nil, fmt.Errorf("endpoint %q: plain http is allowed only to a loopback address such as 127.0.0.1", u.Redacted())
}

// loadToken returns the token, reading it from its file if it has one.
func loadToken(o options) (string, error) {
	tok := o.token
	if o.tokenFile != "" {
		f, err := os.Open(o.tokenFile)
		if err != nil {
			return "", fmt.Errorf("read token from %s: %w", o.tokenFrom, err)
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxTokenLen+3))
		if err != nil {
			return "", fmt.Errorf("read token from %s: %w", o.tokenFrom, err)
		}
		// One trailing line break is tolerated, as the sidecar tolerates it in its own file.
		s := string(b)
		if t, ok := strings.CutSuffix(s, "\r\n"); ok {
			s = t
		} else if t, ok := strings.CutSuffix(s, "\n"); ok {
			s = t
		}
		tok = s
	}
	if tok == "" || len(tok) > maxTokenLen {
		return "", fmt.Errorf("token from %s: empty or longer than %d bytes", o.tokenFrom, maxTokenLen)
	}
	for i := 0; i < len(tok); i++ {
		if tok[i] < 0x21 || tok[i] > 0x7e {
			return "", fmt.Errorf("token from %s: holds spaces, line breaks or other characters HTTP headers cannot carry", o.tokenFrom)
		}
	}
	return tok, nil
}

// endpointResponse is the container-credentials endpoint's body, success or error (both
// casings of the error fields, as the endpoint writes them).
type endpointResponse struct {
	AccessKeyID     string `json:"AccessKeyId"`
	SecretAccessKey string
	Token           string
	Expiration      string
	AccountID       string `json:"AccountId"`

	Code    string `json:"Code"`
	Message string `json:"Message"`
	LCode   string `json:"code"`
	LMsg    string `json:"message"`
}

// processOutput is the credential_process format; Version must be 1.
type processOutput struct {
	Version         int
	AccessKeyID     string `json:"AccessKeyId"`
	SecretAccessKey string
	SessionToken    string
	Expiration      string
	AccountID       string `json:"AccountId,omitempty"`
}

// fetch makes the one request and returns the output line.
func fetch(ctx context.Context, o options, now func() time.Time) ([]byte, error) {
	tok, err := loadToken(o)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	where := "GET " + o.endpoint.Redacted()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.endpoint.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	req.Header.Set("Authorization", tok)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "credsidecar-credential-process")
	client := &http.Client{
		// No proxy: the endpoint is local, and a proxy would see the token.
		Transport: &http.Transport{Proxy: nil, DialContext: (&net.Dialer{Timeout: o.timeout}).DialContext},
		// A redirect would carry the token elsewhere; the endpoint never sends one.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %s", where, describe(err, o.timeout))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %d %s: read body: %s", where, resp.StatusCode, http.StatusText(resp.StatusCode), describe(err, o.timeout))
	}
	if len(body) > maxBody {
		return nil, fmt.Errorf("%s: %d %s: body larger than %d bytes", where, resp.StatusCode, http.StatusText(resp.StatusCode), maxBody)
	}
	out, err := interpret(resp.StatusCode, body, tok, o.tokenFrom, now())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	return out, nil
}

// interpret turns the endpoint's answer into the output line, or into an error that says what
// the endpoint said (never the token, even if the endpoint echoed it) and what was wrong.
func interpret(status int, body []byte, tok, tokenFrom string, now time.Time) ([]byte, error) {
	var r endpointResponse
	jsonErr := json.Unmarshal(body, &r)

	if status != http.StatusOK {
		msg := fmt.Sprintf("%d %s", status, http.StatusText(status))
		if jsonErr == nil {
			code, text := first(r.Code, r.LCode), first(r.Message, r.LMsg)
			if code != "" {
				msg += ": " + clean(code, tok)
			}
			if text != "" {
				msg += ": " + clean(text, tok)
			}
		}
		if status == http.StatusUnauthorized {
			msg += " (the token from " + tokenFrom + " is not the one the sidecar expects)"
		}
		return nil, errors.New(msg)
	}
	if jsonErr != nil {
		return nil, errors.New("200 OK but the body is not a JSON credentials document")
	}
	var missing []string
	for _, f := range []struct{ name, v string }{{"AccessKeyId", r.AccessKeyID},
		{"SecretAccessKey", r.SecretAccessKey}, {"Token", r.Token}, {"Expiration", r.Expiration}} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("200 OK but the document lacks %s", strings.Join(missing, ", "))
	}
	exp, err := time.Parse(time.RFC3339, r.Expiration)
	if err != nil {
		return nil, errors.New("200 OK but Expiration is not an RFC 3339 time")
	}
	if !exp.After(now) {
		return nil, fmt.Errorf("200 OK but the credentials expired at %s", exp.UTC().Format(time.RFC3339))
	}
	out, err := json.Marshal(processOutput{
		Version:         1,
		AccessKeyID:     r.AccessKeyID,
		SecretAccessKey: r.SecretAccessKey,
		SessionToken:    r.Token,
		Expiration:      exp.UTC().Format("2006-01-02T15:04:05Z"),
		AccountID:       r.AccountID,
	})
	if err != nil {
		return nil, fmt.Errorf("encode output: %w", err)
	}
	return append(out, '\n'), nil
}

// describe says what a transport error means, without repeating the URL.
func describe(err error, timeout time.Duration) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded) || os.IsTimeout(err):
		return fmt.Sprintf("no answer within %v", timeout)
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused: is the sidecar running, and listening there?"
	}
	return err.Error()
}

func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// clean makes endpoint-supplied text safe for one stderr line: no control characters, at most
// 200 bytes, and never the token even if the endpoint were to echo it.
func clean(s, tok string) string {
	s = strings.ReplaceAll(s, tok, "<token>")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > 200 {
		s = strings.ToValidUTF8(s[:200], "") + "..."
	}
	return s
}
