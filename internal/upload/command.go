package upload

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"os"
	"path/filepath"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/credsidecar/credsidecar/internal/clock"
)

// Exit codes of the uploader.
const (
	ExitOK     = 0
	ExitFailed = 1 // credentials, identity, upload or verification failed
	ExitConfig = 2 // bad flags or environment
)

// Options are the process's inputs, injected so tests run Main in-process.
type Options struct {
	Version string
	Args    []string            // without the program name
	Getenv  func(string) string // configuration and diagnostics; the AWS SDK itself reads the process environment
	Stdout  io.Writer           // receives the s3:// URL of the uploaded object, nothing else
	Stderr  io.Writer           // logs
	Clock   clock.Clock         // nil means the wall clock
	// AWSConfig adds options to config.LoadDefaultConfig; credentials still come from the
	// default chain. Tests use it to shorten retries.
	AWSConfig []func(*config.LoadOptions) error
}

// Main runs the uploader and returns its exit code.
func Main(ctx context.Context, o Options) int {
	clk := o.Clock
	if clk == nil {
		clk = clock.Real()
	}
	cfg, err := Parse(o.Args, o.Getenv, clk.Now(), o.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return ExitOK
	case err != nil:
		fmt.Fprintf(o.Stderr, "uploader: %v\n", err)
		return ExitConfig
	case cfg.ShowVersion:
		fmt.Fprintln(o.Stdout, o.Version)
		return ExitOK
	}
	log := newLogger(cfg.LogFormat, o.Stderr)
	start := clk.Now()
	code := run(ctx, o, cfg, clk, log)
	log.Info("end", slog.Int("exit_code", code), slog.Duration("took", clk.Now().Sub(start)))
	return code
}

func run(ctx context.Context, o Options, cfg Config, clk clock.Clock, log *slog.Logger) int {
	source := cfg.File
	if source == "" {
		source = "generated"
	}
	log.Info("start", slog.String("version", o.Version), slog.String("bucket", cfg.Bucket), slog.String("region", cfg.Region),
		slog.String("key", cfg.Key), slog.String("source", source), slog.String("endpoint", endpointOrAWS(cfg.Endpoint)))

	src, closeSrc, err := openSource(cfg, clk, o.Getenv)
	if err != nil {
		log.Error("bad configuration", slog.String("error", err.Error()))
		return ExitConfig
	}
	defer closeSrc()

	awsCfg, err := config.LoadDefaultConfig(ctx, append([]func(*config.LoadOptions) error{config.WithRegion(cfg.Region)}, o.AWSConfig...)...)
	if err != nil {
		// Only the shared config files and AWS_* variables are read here, so this is a
		// configuration problem such as AWS_PROFILE naming a missing profile.
		log.Error("bad configuration", slog.String("error", fmt.Errorf("load aws config: %w", err).Error()))
		return ExitConfig
	}
	u := &Uploader{
		Credentials: awsCfg.Credentials,
		STS: sts.NewFromConfig(awsCfg, func(so *sts.Options) {
			if cfg.STSEndpoint != "" {
				so.BaseEndpoint = aws.String(cfg.STSEndpoint)
			}
		}),
		S3: s3.NewFromConfig(awsCfg, func(so *s3.Options) {
			if cfg.Endpoint != "" {
				so.BaseEndpoint = aws.String(cfg.Endpoint)
			}
			so.UsePathStyle = cfg.PathStyle
		}),
		Clock:            clk,
		Log:              log,
		PartSize:         cfg.PartSize,
		Concurrency:      cfg.Concurrency,
		ProgressInterval: cfg.ProgressInterval,
		target:           targetFromEnv(cfg, o.Getenv),
	}
	if u.Credentials == nil {
		u.Credentials = aws.AnonymousCredentials{}
	}
	res, err := u.Run(ctx, cfg.Bucket, cfg.Key, src)
	if err != nil {
		logFailure(ctx, log, err)
		return ExitFailed
	}
	fmt.Fprintln(o.Stdout, res.URL)
	return ExitOK
}

// openSource opens --file for streaming, or builds the generated test file in memory.
func openSource(cfg Config, clk clock.Clock, getenv func(string) string) (Source, func(), error) {
	if cfg.File == "" {
		body := testFileContent(clk.Now().In(cfg.Location), getenv, cfg.Bucket, cfg.Key)
		return Source{Body: bytes.NewReader(body), Size: int64(len(body)), Name: "generated", ContentType: "text/plain; charset=utf-8"}, func() {}, nil
	}
	f, err := os.Open(cfg.File)
	if err != nil {
		return Source{}, nil, fmt.Errorf("--file / UPLOAD_FILE: open %s: %w", cfg.File, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return Source{}, nil, fmt.Errorf("--file / UPLOAD_FILE: stat %s: %w", cfg.File, err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return Source{}, nil, fmt.Errorf("--file / UPLOAD_FILE: %s is not a regular file", cfg.File)
	}
	ct := mime.TypeByExtension(filepath.Ext(cfg.File))
	if ct == "" {
		ct = "application/octet-stream"
	}
	return Source{Body: f, Size: st.Size(), Name: cfg.File, ContentType: ct}, func() { f.Close() }, nil
}

// logFailure writes the one line a person needs: step, AWS code and likely cause.
func logFailure(ctx context.Context, log *slog.Logger, err error) {
	var f *Failure
	if !errors.As(err, &f) {
		log.Error("upload failed", slog.String("error", err.Error()))
		return
	}
	attrs := []slog.Attr{slog.String("step", f.Step)}
	if f.Operation != "" {
		attrs = append(attrs, slog.String("operation", f.Operation))
	}
	if f.Code != "" {
		attrs = append(attrs, slog.String("code", f.Code))
	}
	if f.Status != 0 {
		attrs = append(attrs, slog.Int("http_status", f.Status))
	}
	if f.Cause != "" {
		attrs = append(attrs, slog.String("cause", f.Cause))
	}
	attrs = append(attrs, slog.String("error", f.Error()))
	log.LogAttrs(ctx, slog.LevelError, "upload failed", attrs...)
}

func newLogger(format string, w io.Writer) *slog.Logger {
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, nil))
	}
	return slog.New(slog.NewJSONHandler(w, nil))
}
