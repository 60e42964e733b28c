package diagnose

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/credsidecar/credsidecar/internal/config"
	"github.com/credsidecar/credsidecar/internal/policy"
)

// checkSetting is a flag only check has; serve's flags are parsed by package config.
type checkSetting struct {
	flag   string
	envs   []string
	def    string
	kind   string
	usage  string
	isBool bool
}

func checkSettings() []checkSetting {
	return []checkSetting{
		{flag: "probe-s3", envs: []string{"CREDSIDECAR_CHECK_PROBE_S3"}, kind: "bucket",
			usage: "also probe this bucket with the role's credentials: ListObjectsV2, PutObject and DeleteObject of a small object"},
		{flag: "s3-endpoint", envs: []string{"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"}, kind: "url",
			usage: "S3 URL for the probe, for S3-compatible stores (default the region's S3 endpoint)"},
		{flag: "s3-path-style", envs: []string{"S3_USE_PATH_STYLE"}, def: "false", isBool: true,
			usage: "address the probed bucket in the URL path, as S3-compatible stores need"},
		{flag: "output", envs: []string{"CREDSIDECAR_CHECK_OUTPUT"}, def: "text", kind: "text|json",
			usage: "report format; json is a stable document for scripts"},
		{flag: "timeout", envs: []string{"CREDSIDECAR_CHECK_TIMEOUT"}, def: "10s", kind: "duration",
			usage: "time allowed for each STS and S3 call"},
	}
}

// isServeBool reports whether serve's flag name takes no value, so the argument after it is not
// its value. It must list config's boolean flags.
func isServeBool(name string) bool {
	switch name {
	case "allow-non-loopback", "version", "h", "help":
		return true
	}
	return false
}

// Main runs `sidecar check` with args (without the command name) and returns the exit code:
// 0 when no finding is an error, 1 otherwise, 2 on bad flags. It reads the same flags and
// variables as serve (through package config) plus its own.
func Main(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	opts, output, err := parseArgs(args, getenv)
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
	r := Check(ctx, opts)
	if output == "json" {
		err = r.WriteJSON(stdout)
	} else {
		err = r.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "sidecar check: %v\n", err)
		return 1
	}
	if !r.OK {
		return 1
	}
	return 0
}

// parseArgs splits check's own flags from serve's, lets package config parse and validate
// serve's, and applies the environment fallbacks to check's.
func parseArgs(args []string, getenv func(string) string) (Options, string, error) {
	own, rest := splitArgs(args)
	settings := checkSettings()
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	raws := make([]rawValue, len(settings))
	for i, s := range settings {
		raws[i].isBool = s.isBool
		fs.Var(&raws[i], s.flag, s.usage)
	}
	if err := fs.Parse(own); err != nil {
		return Options{}, "", fmt.Errorf("parse arguments: %w", err)
	}

	cfg, err := config.Parse(rest, getenv)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return Options{}, "", err
	case errors.Is(err, config.ErrVersion):
		return Options{}, "", errors.New("parse arguments: --version is not a check flag; run sidecar --version")
	case err != nil:
		return Options{}, "", err
	}

	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	values := map[string]string{}
	var problems []*config.FieldError
	for i, s := range settings {
		v, env := raws[i].s, ""
		if !given[s.flag] {
			v = s.def
			for _, e := range s.envs {
				if ev := getenv(e); ev != "" {
					v, env = ev, e
					break
				}
			}
		}
		if env == "" {
			env = strings.Join(s.envs, " or ")
		}
		if p := checkValue(s.flag, v); p != "" {
			problems = append(problems, &config.FieldError{Flag: s.flag, Env: env, Value: v, Problem: p})
		}
		values[s.flag] = v
	}
	if len(problems) > 0 {
		return Options{}, "", &config.Error{Problems: problems}
	}
	pathStyle, _ := strconv.ParseBool(values["s3-path-style"])
	timeout, _ := time.ParseDuration(values["timeout"])

	source := "AWS_WEB_IDENTITY_TOKEN_FILE"
	if flagGiven(rest, "token-file") {
		source = "--token-file"
	}
	return Options{
		RoleARN:         cfg.RoleARN,
		TokenFile:       cfg.TokenFile,
		TokenFileSource: source,
		Region:          cfg.Region,
		STSEndpoint:     cfg.STSEndpoint,
		SessionName:     cfg.SessionName,
		Duration:        cfg.Duration,
		ProbeBucket:     values["probe-s3"],
		S3Endpoint:      values["s3-endpoint"],
		S3PathStyle:     pathStyle,
		Timeout:         timeout,
	}, values["output"], nil
}

// checkValue says what is wrong with a check flag's value, or "".
func checkValue(name, v string) string {
	switch name {
	case "probe-s3":
		if v != "" {
			return policy.BucketProblem(v)
		}
	case "s3-endpoint":
		if v == "" {
			return ""
		}
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return "must be an http or https URL, such as https://s3.eu-west-1.amazonaws.com"
		}
	case "s3-path-style":
		if _, err := strconv.ParseBool(v); err != nil {
			return "must be true or false"
		}
	case "output":
		if v != "text" && v != "json" {
			return "must be text or json"
		}
	case "timeout":
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > 5*time.Minute {
			return "must be a duration between 1ms and 5m, such as 10s"
		}
	}
	return ""
}

// splitArgs separates check's own flags (and their values) from the rest, which are serve's
// and go to config.Parse unchanged. A value that follows a flag stays with that flag.
func splitArgs(args []string) (own, rest []string) {
	ownBool := map[string]bool{}
	for _, s := range checkSettings() {
		ownBool[s.flag] = s.isBool
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			rest = append(rest, a)
			continue
		}
		name, hasValue := strings.TrimLeft(a, "-"), false
		if j := strings.IndexByte(name, '='); j >= 0 {
			name, hasValue = name[:j], true
		}
		takesNext := !hasValue && i+1 < len(args)
		if isBool, ok := ownBool[name]; ok {
			own = append(own, a)
			if takesNext && !isBool {
				own = append(own, args[i+1])
				i++
			}
			continue
		}
		rest = append(rest, a)
		if takesNext && !isServeBool(name) {
			rest = append(rest, args[i+1])
			i++
		}
	}
	return own, rest
}

// flagGiven reports whether serve's args set the flag name.
func flagGiven(args []string, name string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		n := strings.TrimLeft(a, "-")
		if len(a) > 1 && a[0] == '-' && (n == name || strings.HasPrefix(n, name+"=")) {
			return true
		}
	}
	return false
}

// rawValue keeps the text given, so the environment fallback and errors see what was written.
type rawValue struct {
	s      string
	isBool bool
}

func (v *rawValue) String() string     { return v.s }
func (v *rawValue) Set(s string) error { v.s = s; return nil }
func (v *rawValue) IsBoolFlag() bool   { return v.isBool }

// usage writes check's help: its own flags, then the serve flags it reads.
func usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: sidecar check [flags]\n\n")
	fmt.Fprintf(w, "Reads the projected token, shows its claims (never the token), calls AssumeRoleWithWebIdentity\n")
	fmt.Fprintf(w, "and GetCallerIdentity once, optionally probes an S3 bucket, and prints each problem with its fix.\n")
	fmt.Fprintf(w, "Exit status: 0 no errors, 1 errors found, 2 bad flags. Each flag falls back to the variables shown.\n\n")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, s := range checkSettings() {
		arg := " " + s.kind
		if s.isBool {
			arg = ""
		}
		def := ""
		if s.def != "" {
			def = " (default " + s.def + ")"
		}
		fmt.Fprintf(tw, "  --%s%s\t%s [$%s]%s\n", s.flag, arg, s.usage, strings.Join(s.envs, ", $"), def)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\nThe serve settings check uses, read exactly as serve reads them (serve's other flags are\n")
	fmt.Fprintf(w, "accepted and validated, so the same arguments and environment work for both):\n")
	var b bytes.Buffer
	config.Usage(&b, "sidecar")
	for _, line := range strings.Split(b.String(), "\n") {
		for _, f := range []string{"role-arn", "token-file", "region", "sts-endpoint", "session-name", "duration"} {
			if strings.HasPrefix(line, "  --"+f+" ") {
				fmt.Fprintln(w, line)
			}
		}
	}
}
