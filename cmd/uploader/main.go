// Command uploader is the sample workload for credsidecar: it checks its AWS identity, uploads
// one object to S3 and confirms it, using only the SDK's default credential chain. See
// internal/upload for the flags and exit codes.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/credsidecar/credsidecar/internal/upload"
)

// version is set at link time: -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	return upload.Main(ctx, upload.Options{
		Version: version,
		Args:    args,
		Getenv:  getenv,
		Stdout:  stdout,
		Stderr:  stderr,
	})
}
