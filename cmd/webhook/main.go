// Command webhook is credsidecar's mutating admission webhook: pods labelled
// credsidecar.io/inject=true get the sidecar, configured from their ServiceAccount's
// annotations. Run `webhook --help` for its settings; the Helm chart charts/credsidecar runs it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/credsidecar/credsidecar/internal/app"
	"github.com/credsidecar/credsidecar/internal/config"
	"github.com/credsidecar/credsidecar/internal/webhook"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run returns 0 after a clean shutdown (or for --help and --version), 2 for a bad command line
// or configuration (one line on stderr), 1 when the webhook fails.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("webhook", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	b := config.NewBinder(fs)
	cfg := webhook.DefaultConfig()
	logFormat, logLevel := "json", slog.LevelInfo
	b.Add(webhook.Flags(&cfg, &logFormat, &logLevel)...)
	showVersion := fs.Bool("version", false, "print the version and exit")
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprintf(stdout, "Usage: webhook [flags]\n\nInjects the credsidecar sidecar into pods labelled credsidecar.io/inject=true.\n"+
			"Each flag falls back to the environment variable shown; a flag given on the command line wins.\n\n")
		b.WriteUsage(stdout, nil)
		return 0
	case err != nil:
		fmt.Fprintf(stderr, "webhook: parse arguments: %v (see webhook --help)\n", err)
		return 2
	case *showVersion:
		fmt.Fprintf(stdout, "webhook %s\n", version)
		return 0
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "webhook: unexpected argument %q: the webhook takes flags only\n", fs.Arg(0))
		return 2
	}
	if problems := b.Resolve(getenv); len(problems) > 0 {
		fmt.Fprintf(stderr, "webhook: %v\n", &config.Error{Problems: problems})
		return 2
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "webhook: %v\n", err)
		return 2
	}
	log := app.NewLogger(stderr, logFormat, logLevel)
	if err := webhook.Run(ctx, cfg, webhook.Options{Logger: log}); err != nil {
		log.Error("webhook failed", "error", err.Error())
		return 1
	}
	return 0
}
