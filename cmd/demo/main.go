// Command demo is `make demo`: the whole credsidecar flow on this machine, on real parts.
// See internal/demo.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/credsidecar/credsidecar/internal/demo"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bin := fs.String("bin-dir", "", "directory for the built sidecar and uploader; a temporary one when empty")
	fail := fs.Bool("fail", false, "show the classic trust-setup mistakes, each diagnosed by `sidecar check`")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *fail {
		if err := demo.RunFail(ctx, demo.Options{Out: stdout, BinDir: *bin, Build: true}); err != nil {
			fmt.Fprintf(stderr, "\ndemo-fail failed: %v\n", err)
			return 1
		}
		return 0
	}
	res, err := demo.Run(ctx, demo.Options{Out: stdout, BinDir: *bin, Build: true})
	if err != nil {
		fmt.Fprintf(stderr, "\ndemo failed: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "\ndemo passed: the uploader wrote s3://%s/%s with credentials it got only from the sidecar\n", res.Bucket, res.Key)
	return 0
}
