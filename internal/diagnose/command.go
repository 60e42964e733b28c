package diagnose

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"slices"
	"time"

	"github.com/credsidecar/credsidecar/internal/config"
	"github.com/credsidecar/credsidecar/internal/policy"
)

// checkValues are check's own settings, once resolved.
type checkValues struct {
	probe, s3Endpoint, output string
	pathStyle                 bool
	timeout                   time.Duration
}

// checkSettings are the flags only check has, bound to v; serve's are registered beside them
// by config.RegisterServe, on the same FlagSet.
func checkSettings(v *checkValues) []config.Setting {
	str := func(p *string, problem func(string) string) func(string) error {
		return func(s string) error {
			if msg := problem(s); msg != "" {
				return errors.New(msg)
			}
			*p = s
			return nil
		}
	}
	return []config.Setting{
		{Flag: "probe-s3", Envs: []string{"CREDSIDECAR_CHECK_PROBE_S3"}, Kind: "bucket", DefaultHelp: "off",
			Usage: "also probe this bucket with the role's credentials: ListObjectsV2, PutObject and DeleteObject of a small object",
			Set:   str(&v.probe, policy.BucketProblem)},
		{Flag: "s3-endpoint", Envs: []string{"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"}, Kind: "url",
			DefaultHelp: "the region's S3 endpoint", Usage: "S3 URL for the probe, for S3-compatible stores",
			Set: str(&v.s3Endpoint, func(s string) string {
				u, err := url.Parse(s)
				if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					return "must be an http or https URL, such as https://s3.eu-west-1.amazonaws.com"
				}
				return ""
			})},
		{Flag: "s3-path-style", Envs: []string{"S3_USE_PATH_STYLE"}, Default: "false", Bool: true,
			Usage: "address the probed bucket in the URL path, as S3-compatible stores need",
			Set:   config.SetBool(&v.pathStyle)},
		{Flag: "output", Envs: []string{"CREDSIDECAR_CHECK_OUTPUT"}, Default: "text", Kind: "text|json",
			Usage: "report format; json is a stable document for scripts",
			Set: str(&v.output, func(s string) string {
				if s != "text" && s != "json" {
					return "must be text or json"
				}
				return ""
			})},
		{Flag: "timeout", Envs: []string{"CREDSIDECAR_CHECK_TIMEOUT"}, Default: "10s", Kind: "duration",
			Usage: "time allowed for each STS and S3 call",
			Set: func(s string) error {
				d, err := time.ParseDuration(s)
				if err != nil || d <= 0 || d > 5*time.Minute {
					return errors.New("must be a duration between 1ms and 5m, such as 10s")
				}
				v.timeout = d
				return nil
			}},
	}
}

// Main runs `sidecar check` with args (without the command name) and returns the exit code:
// 0 when no finding is an error, 1 otherwise, 2 on bad flags. It reads the same flags and
// variables as serve (through package config) plus its own.
func Main(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	all, output, err := parseArgs(args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		usage(stdout)
		return 0
	}
	if err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			for _, p := range ce.Problems {
				fmt.Fprintf(stderr, "sidecar check: %v\n", p)
			}
		} else {
			fmt.Fprintf(stderr, "sidecar check: %v\n", err)
		}
		return 2
	}
	// One report per role: a role whose trust setup is off fails the check, and its report says
	// which; JSON is one object per role, one per line-delimited document.
	code := 0
	for i, opts := range all {
		r := Check(ctx, opts)
		if output == "json" {
			err = r.WriteJSON(stdout)
		} else {
			if len(all) > 1 {
				if i > 0 {
					fmt.Fprintln(stdout)
				}
				fmt.Fprintf(stdout, "== %s ==\n", roleTitle(opts.Role))
			}
			err = r.WriteText(stdout)
		}
		if err != nil {
			fmt.Fprintf(stderr, "sidecar check: %v\n", err)
			return 1
		}
		if !r.OK {
			code = 1
		}
	}
	return code
}

// roleTitle heads a role's report.
func roleTitle(name string) string {
	if name == "" {
		return "the unnamed role (--role-arn)"
	}
	return "role " + name + " (--role " + name + "=...)"
}

// parseArgs splits check's own flags from serve's, lets package config parse and validate
// serve's, and applies the environment fallbacks to check's.
func parseArgs(args []string, getenv func(string) string) ([]Options, string, error) {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	b := config.NewBinder(fs)
	serve := config.RegisterServe(b)
	var v checkValues
	b.Add(checkSettings(&v)...)
	version := fs.Bool("version", false, "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, "", err
		}
		return nil, "", fmt.Errorf("parse arguments: %w", err)
	}
	if *version {
		return nil, "", errors.New("parse arguments: --version is not a check flag; run sidecar --version")
	}
	if fs.NArg() > 0 {
		return nil, "", fmt.Errorf("parse arguments: unexpected argument %q: check takes flags only", fs.Arg(0))
	}
	if problems := b.Resolve(getenv); len(problems) > 0 {
		return nil, "", &config.Error{Problems: problems}
	}
	cfg, err := serve.Config()
	if err != nil {
		return nil, "", err
	}
	source := "AWS_WEB_IDENTITY_TOKEN_FILE"
	if b.ByFlag("token-file") {
		source = "--token-file"
	}
	base := Options{
		RoleARN:         cfg.RoleARN,
		TokenFile:       cfg.TokenFile,
		TokenFileSource: source,
		Region:          cfg.Region,
		STSEndpoint:     cfg.STSEndpoint,
		SessionName:     cfg.SessionName,
		Duration:        cfg.Duration,
		ProbeBucket:     v.probe,
		S3Endpoint:      v.s3Endpoint,
		S3PathStyle:     v.pathStyle,
		Timeout:         v.timeout,
	}
	var all []Options
	if cfg.RoleARN != "" {
		all = append(all, base)
	}
	for _, r := range cfg.Roles {
		o := base
		o.Role, o.RoleARN = r.Name, r.ARN
		all = append(all, o)
	}
	return all, v.output, nil
}

// usage writes check's help: its own flags, then the serve flags it reads.
func usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: sidecar check [flags]\n\n")
	fmt.Fprintf(w, "Reads the projected token, shows its claims (never the token), calls AssumeRoleWithWebIdentity\n")
	fmt.Fprintf(w, "and GetCallerIdentity once, optionally probes an S3 bucket, and prints each problem with its fix.\n")
	fmt.Fprintf(w, "Exit status: 0 no errors, 1 errors found, 2 bad flags. Each flag falls back to the variables shown.\n\n")
	b := config.NewBinder(flag.NewFlagSet("check", flag.ContinueOnError))
	b.Add(checkSettings(&checkValues{})...)
	b.WriteUsage(w, nil)
	fmt.Fprintf(w, "\nThe serve settings check uses, read exactly as serve reads them (serve's other flags are\n")
	fmt.Fprintf(w, "accepted and validated, so the same arguments and environment work for both):\n")
	used := []string{"role-arn", "token-file", "region", "sts-endpoint", "session-name", "duration"}
	config.UsageOf(w, func(s config.Setting) bool { return slices.Contains(used, s.Flag) })
}
