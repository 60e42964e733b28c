package upload

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	// Embedded zone data: the distroless image has no /usr/share/zoneinfo, and the default key
	// is stamped in Asia/Seoul.
	_ "time/tzdata"

	"github.com/credsidecar/credsidecar/internal/config"
	"github.com/credsidecar/credsidecar/internal/creds"
)

// Defaults; they show in --help.
const (
	DefaultRegion           = "ap-northeast-2"
	DefaultTimezone         = "Asia/Seoul"
	DefaultPartSize         = 8 * MiB
	DefaultConcurrency      = 4
	DefaultProgressInterval = 5 * time.Second

	// MinPartSize is S3's smallest allowed multipart part (except the last).
	MinPartSize = 5 * MiB
	// MaxPartSize is S3's largest allowed part.
	MaxPartSize = 5 * GiB
	// MaxConcurrency bounds memory: each in-flight part holds one part-sized buffer.
	MaxConcurrency = 64

	keyTimeLayout = "20060102_150405"
)

// Config is everything the uploader needs to know; Parse fills it from flags and environment.
type Config struct {
	Bucket           string
	Region           string
	Key              string // empty until Parse fills the default
	Timezone         string
	Location         *time.Location
	File             string // empty: upload a generated test file
	Endpoint         string // S3 endpoint override, empty for AWS
	STSEndpoint      string // STS endpoint override, empty for AWS
	PathStyle        bool
	PartSize         int64
	Concurrency      int
	ProgressInterval time.Duration
	LogFormat        string
	ShowVersion      bool
}

// ConfigError is a configuration mistake; Main exits 2 on it.
type ConfigError struct{ Err error }

// Error reports the mistake, prefixed so it reads as a configuration problem.
func (e *ConfigError) Error() string { return "configuration: " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *ConfigError) Unwrap() error { return e.Err }

// settings are the uploader's flags with their variable fallbacks, bound to c: the sidecar's
// one flag/variable mechanism (config.Binder), so the help and the errors read alike.
func settings(c *Config) []config.Setting {
	str := config.SetString
	return []config.Setting{
		{Flag: "bucket", Envs: []string{"S3_BUCKET_NAME"}, Kind: "name", DefaultHelp: "required",
			Usage: "S3 bucket to upload to", Set: str(&c.Bucket)},
		{Flag: "region", Envs: []string{"AWS_REGION"}, Kind: "region", Default: DefaultRegion,
			Usage: "AWS region of the bucket and of STS", Set: str(&c.Region)},
		{Flag: "key", Envs: []string{"S3_OBJECT_KEY"}, Kind: "key",
			DefaultHelp: "uploads/aks-oidc-test-<YYYYmmdd_HHMMSS>.txt in --timezone, or uploads/<file name> with --file",
			Usage:       "object key", Set: str(&c.Key)},
		{Flag: "timezone", Envs: []string{"UPLOAD_TIMEZONE"}, Kind: "zone", Default: DefaultTimezone,
			Usage: "IANA time zone of the timestamp in the default key and the test file", Set: str(&c.Timezone)},
		{Flag: "file", Envs: []string{"UPLOAD_FILE"}, Kind: "path", DefaultHelp: "a generated test file",
			Usage: "upload this file (streamed, multipart when larger than --part-size)", Set: str(&c.File)},
		{Flag: "endpoint-url", Envs: []string{"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"}, Kind: "url", DefaultHelp: "AWS",
			Usage: "S3 endpoint URL for S3-compatible stores", Set: str(&c.Endpoint)},
		{Flag: "sts-endpoint-url", Envs: []string{"AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL"}, Kind: "url",
			DefaultHelp: "the regional AWS endpoint", Usage: "STS endpoint URL", Set: str(&c.STSEndpoint)},
		{Flag: "path-style", Envs: []string{"S3_USE_PATH_STYLE"}, Default: "false", Bool: true,
			Usage: "address the bucket in the URL path instead of the host name",
			Set:   config.SetBool(&c.PathStyle)},
		{Flag: "part-size", Envs: []string{"UPLOAD_PART_SIZE"}, Kind: "size", Default: FormatSize(DefaultPartSize),
			Usage: "multipart part size, at least 5MiB; memory use is about (concurrency+2) x part size",
			Set:   sizeValue{&c.PartSize}.Set},
		{Flag: "concurrency", Envs: []string{"UPLOAD_CONCURRENCY"}, Kind: "n", Default: strconv.Itoa(DefaultConcurrency),
			Usage: "parts uploaded in parallel",
			Set: func(v string) error {
				n, err := strconv.Atoi(v)
				if err != nil {
					return errors.New("must be a whole number")
				}
				c.Concurrency = n
				return nil
			}},
		{Flag: "progress-interval", Envs: []string{"UPLOAD_PROGRESS_INTERVAL"}, Kind: "duration",
			Default: DefaultProgressInterval.String(), Usage: "how often a progress line is logged during the upload",
			Set: func(v string) error {
				d, err := time.ParseDuration(v)
				if err != nil {
					return errors.New("must be a duration such as 5s")
				}
				c.ProgressInterval = d
				return nil
			}},
		{Flag: "log-format", Envs: []string{"LOG_FORMAT"}, Kind: "json|text", Default: "json",
			Usage: "log format", Set: str(&c.LogFormat)},
	}
}

// Parse reads flags from args, falling back to the environment through getenv for every flag
// not given (a flag always wins), then validates and fills defaults that depend on the clock.
// It returns flag.ErrHelp for -h/--help, after writing the help to usage; other errors are
// *ConfigError.
func Parse(args []string, getenv func(string) string, now time.Time, usage io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("uploader", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	b := config.NewBinder(fs)
	b.Add(settings(&c)...)
	fs.BoolVar(&c.ShowVersion, "version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(usage, "Usage: uploader [flags]\n\nUploads a file (or a generated test file) to S3 with the credentials of the SDK's default chain.\n"+
			"Each flag falls back to the environment variables shown; a flag given on the command line wins.\n\n")
		b.WriteUsage(usage, nil)
		fmt.Fprintf(usage, "  --version  print the version and exit\n")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, err
		}
		return c, &ConfigError{Err: err}
	}
	if fs.NArg() > 0 {
		return c, &ConfigError{Err: fmt.Errorf("unexpected argument %q: all settings are flags", fs.Arg(0))}
	}
	if c.ShowVersion {
		return c, nil
	}
	if problems := b.Resolve(getenv); len(problems) > 0 {
		errs := make([]error, len(problems))
		for i, p := range problems {
			errs[i] = p
		}
		return c, &ConfigError{Err: errors.Join(errs...)}
	}
	if err := c.Validate(); err != nil {
		return c, &ConfigError{Err: err}
	}
	loc, err := time.LoadLocation(c.Timezone)
	if err != nil {
		return c, &ConfigError{Err: fmt.Errorf("--timezone / UPLOAD_TIMEZONE %q: %w", c.Timezone, err)}
	}
	c.Location = loc
	if c.Key == "" {
		c.Key = DefaultKey(c.File, now.In(loc))
	}
	return c, nil
}

// DefaultKey is the object key used when none is given: the timestamped test-file name,
// or the uploaded file's base name.
func DefaultKey(file string, now time.Time) string {
	if file != "" {
		name := file[strings.LastIndexAny(file, `/\`)+1:]
		return "uploads/" + name
	}
	return "uploads/aks-oidc-test-" + now.Format(keyTimeLayout) + ".txt"
}

// validBucket applies S3's naming rules for general purpose buckets: 3-63 characters of
// a-z, 0-9, '.' and '-', starting and ending with a letter or digit, no "..".
func validBucket(b string) bool {
	if len(b) < 3 || len(b) > 63 || strings.Contains(b, "..") {
		return false
	}
	for i := 0; i < len(b); i++ {
		ch := b[i]
		alnum := ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9'
		if !alnum && (i == 0 || i == len(b)-1 || (ch != '.' && ch != '-')) {
			return false
		}
	}
	return true
}

// Validate checks every setting; each error names the flag, the variable and the value.
func (c *Config) Validate() error {
	var errs []error
	bad := func(flagName, env, format string, args ...any) {
		where := "--" + flagName
		if env != "" {
			where += " / " + env
		}
		errs = append(errs, fmt.Errorf("%s: %s", where, fmt.Sprintf(format, args...)))
	}
	switch {
	case c.Bucket == "":
		bad("bucket", "S3_BUCKET_NAME", "required: name the bucket to upload to")
	case !validBucket(c.Bucket):
		bad("bucket", "S3_BUCKET_NAME", "%q is not a valid bucket name (3-63 characters: a-z, 0-9, '.', '-'); give the name, not an ARN or URL", c.Bucket)
	}
	if !creds.ValidRegion(c.Region) {
		bad("region", "AWS_REGION", "%q is not a region name like %s", c.Region, DefaultRegion)
	}
	if strings.HasPrefix(c.Key, "/") {
		bad("key", "S3_OBJECT_KEY", "%q starts with '/': S3 keys have no leading slash", c.Key)
	}
	if len(c.Key) > 1024 {
		bad("key", "S3_OBJECT_KEY", "%d bytes long, S3 allows 1024", len(c.Key))
	}
	for _, e := range []struct{ flag, env, val string }{
		{"endpoint-url", "AWS_ENDPOINT_URL_S3", c.Endpoint},
		{"sts-endpoint-url", "AWS_ENDPOINT_URL_STS", c.STSEndpoint},
	} {
		if e.val == "" {
			continue
		}
		u, err := url.Parse(e.val)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad(e.flag, e.env, "%q is not an http(s) URL with a host", e.val)
		}
	}
	if c.PartSize < MinPartSize || c.PartSize > MaxPartSize {
		bad("part-size", "UPLOAD_PART_SIZE", "%s is outside S3's part size limits %s..%s", FormatSize(c.PartSize), FormatSize(MinPartSize), FormatSize(MaxPartSize))
	}
	if c.Concurrency < 1 || c.Concurrency > MaxConcurrency {
		bad("concurrency", "UPLOAD_CONCURRENCY", "%d is outside 1..%d", c.Concurrency, MaxConcurrency)
	}
	if c.ProgressInterval <= 0 {
		bad("progress-interval", "UPLOAD_PROGRESS_INTERVAL", "%s must be positive", c.ProgressInterval)
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		bad("log-format", "LOG_FORMAT", "%q is neither json nor text", c.LogFormat)
	}
	return errors.Join(errs...)
}
