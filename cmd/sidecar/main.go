// Command sidecar serves temporary AWS credentials for a Kubernetes pod's service account on a
// container-credentials endpoint, so that every container's AWS SDK finds them through
// AWS_CONTAINER_CREDENTIALS_FULL_URI, and optionally as EC2 instance metadata and in a shared
// credentials file. `sidecar credential-process` is the same binary acting as a profile's
// credential_process. Run `sidecar --help` for its settings.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"

	"github.com/credsidecar/credsidecar/internal/app"
	"github.com/credsidecar/credsidecar/internal/config"
	"github.com/credsidecar/credsidecar/internal/credprocess"
	"github.com/credsidecar/credsidecar/internal/diagnose"
	"github.com/credsidecar/credsidecar/internal/issuer"
	"github.com/credsidecar/credsidecar/internal/policy"
)

// version is set at build time with -ldflags "-X main.version=...". It is the one package-level
// variable: the linker can set nothing else.
var version = "dev"

const program = "sidecar"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole command: it returns 0 after a clean shutdown (or for --help and --version),
// 2 for a bad command line or configuration (one line on stderr), 1 when the sidecar fails.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	command, rest := "serve", args
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		command, rest = args[0], args[1:]
	}
	switch command {
	case "serve":
	case "check":
		return diagnose.Main(ctx, rest, getenv, stdout, stderr)
	case "policy":
		return policy.Main(rest, stdout, stderr)
	case "credential-process":
		// Run by an SDK or the AWS CLI: it starts nothing and writes only the JSON to stdout.
		return credprocess.Main(ctx, rest, getenv, stdout, stderr)
	case "install":
		return install(rest, stdout, stderr)
	case "issuer":
		return issuer.Main(ctx, rest, getenv, stdout, stderr)
	case "help":
		usage(stdout)
		return 0
	case "version":
		printVersion(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "%s: unknown command %q\n\n", program, command)
		usage(stderr)
		return 2
	}

	cfg, err := config.Parse(rest, getenv)
	switch {
	case errors.Is(err, flag.ErrHelp):
		usage(stdout)
		return 0
	case errors.Is(err, config.ErrVersion):
		printVersion(stdout)
		return 0
	case err != nil:
		fmt.Fprintf(stderr, "%s: %v (see %s --help)\n", program, err, program)
		return 2
	}

	log := app.NewLogger(stderr, cfg.LogFormat, cfg.LogLevel)
	if err := app.Run(ctx, cfg, app.Options{Logger: log, Version: version}); err != nil {
		log.Error("sidecar failed", "error", err.Error())
		return 1
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "Commands:\n"+
		"  serve    serve credentials (the default)\n"+
		"  check    diagnose the token, the trust setup and S3 access, with fixes (same flags as serve)\n"+
		"  policy   print the IAM trust and permission policies and the aws iam commands\n"+
		"  credential-process\n"+
		"           print the running sidecar's credentials for a credential_process profile line\n"+
		"           (see sidecar credential-process --help)\n"+
		"  install  copy this binary to a directory, for credential-process in another container\n"+
		"  issuer publish\n"+
		"           publish the cluster's service-account issuer to an S3 bucket for STS (kind, kubeadm, on-prem)\n"+
		"  version  print the version\n\n")
	config.Usage(w, program)
}

func printVersion(w io.Writer) {
	fmt.Fprintf(w, "%s %s %s\n", program, version, runtime.Version())
}
