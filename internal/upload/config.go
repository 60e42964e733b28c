package upload

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	// Embedded zone data: the distroless image has no /usr/share/zoneinfo, and the default key
	// is stamped in Asia/Seoul.
	_ "time/tzdata"
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

// envFallbacks lists, per flag, the environment variables consulted (in order) when the
// flag is not given. It is a function so the table cannot be changed at run time.
func envFallbacks() map[string][]string {
	return map[string][]string{
		"bucket":            {"S3_BUCKET_NAME"},
		"region":            {"AWS_REGION"},
		"key":               {"S3_OBJECT_KEY"},
		"timezone":          {"UPLOAD_TIMEZONE"},
		"file":              {"UPLOAD_FILE"},
		"endpoint-url":      {"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"},
		"sts-endpoint-url":  {"AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL"},
		"path-style":        {"S3_USE_PATH_STYLE"},
		"part-size":         {"UPLOAD_PART_SIZE"},
		"concurrency":       {"UPLOAD_CONCURRENCY"},
		"progress-interval": {"UPLOAD_PROGRESS_INTERVAL"},
		"log-format":        {"LOG_FORMAT"},
	}
}

// newFlagSet binds every flag to c; usage strings name the environment fallbacks.
func newFlagSet(c *Config, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("uploader", flag.ContinueOnError)
	fs.SetOutput(out)
	env := envFallbacks()
	help := func(name, text string) string {
		if vars := env[name]; len(vars) > 0 {
			return text + " (env " + strings.Join(vars, ", then ") + ")"
		}
		return text
	}
	fs.StringVar(&c.Bucket, "bucket", "", help("bucket", "S3 bucket to upload to; required"))
	fs.StringVar(&c.Region, "region", DefaultRegion, help("region", "AWS region of the bucket and of STS"))
	fs.StringVar(&c.Key, "key", "", help("key", "object key; default uploads/aks-oidc-test-<YYYYmmdd_HHMMSS>.txt in --timezone, or uploads/<file name> with --file"))
	fs.StringVar(&c.Timezone, "timezone", DefaultTimezone, help("timezone", "IANA time zone of the timestamp in the default key and the test file"))
	fs.StringVar(&c.File, "file", "", help("file", "upload this file (streamed, multipart when larger than --part-size) instead of a generated test file"))
	fs.StringVar(&c.Endpoint, "endpoint-url", "", help("endpoint-url", "S3 endpoint URL for S3-compatible stores; empty uses AWS"))
	fs.StringVar(&c.STSEndpoint, "sts-endpoint-url", "", help("sts-endpoint-url", "STS endpoint URL; empty uses the regional AWS endpoint"))
	fs.BoolVar(&c.PathStyle, "path-style", false, help("path-style", "address the bucket in the URL path instead of the host name"))
	c.PartSize = DefaultPartSize
	fs.Var(sizeValue{&c.PartSize}, "part-size", help("part-size", "multipart part size, at least 5MiB; memory use is about (concurrency+2) x part size"))
	fs.IntVar(&c.Concurrency, "concurrency", DefaultConcurrency, help("concurrency", "parts uploaded in parallel"))
	fs.DurationVar(&c.ProgressInterval, "progress-interval", DefaultProgressInterval, help("progress-interval", "how often a progress line is logged during the upload"))
	fs.StringVar(&c.LogFormat, "log-format", "json", help("log-format", "log format: json or text"))
	fs.BoolVar(&c.ShowVersion, "version", false, "print the version and exit")
	return fs
}

// Parse reads flags from args, falling back to the environment through getenv for every flag
// not given (a flag always wins), then validates and fills defaults that depend on the clock.
// It returns flag.ErrHelp for -h/--help; other errors are *ConfigError.
func Parse(args []string, getenv func(string) string, now time.Time, usage io.Writer) (Config, error) {
	var c Config
	fs := newFlagSet(&c, usage)
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
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for name, vars := range envFallbacks() {
		if given[name] {
			continue
		}
		for _, v := range vars {
			val := getenv(v)
			if val == "" {
				continue
			}
			if err := fs.Set(name, val); err != nil {
				return c, &ConfigError{Err: fmt.Errorf("invalid value %q for %s (--%s): %w", val, v, name, err)}
			}
			break
		}
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

// validRegion accepts names shaped like "ap-northeast-2" or "us-gov-west-1".
func validRegion(r string) bool {
	parts := strings.Split(r, "-")
	if len(parts) < 2 {
		return false
	}
	for _, p := range parts {
		if p == "" || strings.Trim(p, "abcdefghijklmnopqrstuvwxyz0123456789") != "" {
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
	if !validRegion(c.Region) {
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
