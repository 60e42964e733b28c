package issuer

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/credsidecar/credsidecar/internal/clock"
	"github.com/credsidecar/credsidecar/internal/config"
	"github.com/credsidecar/credsidecar/internal/creds"
)

// values are publish's settings once resolved.
type values struct {
	bucket, prefix, region, endpoint, publicURL, audience, kubeconfig string
	pathStyle, setPolicy, watch                                       bool
	interval                                                          time.Duration
}

func settings(v *values) []config.Setting {
	str, boolSetter := config.SetString, config.SetBool
	return []config.Setting{
		{Flag: "bucket", Envs: []string{"CREDSIDECAR_ISSUER_BUCKET"}, Kind: "name", DefaultHelp: "required",
			Usage: "S3 bucket the issuer's documents are published to", Set: str(&v.bucket)},
		{Flag: "prefix", Envs: []string{"CREDSIDECAR_ISSUER_PREFIX"}, Kind: "path", DefaultHelp: "none",
			Usage: "key prefix in the bucket, one per cluster (e.g. prod-cluster)", Set: str(&v.prefix)},
		{Flag: "region", Envs: []string{"AWS_REGION", "AWS_DEFAULT_REGION"}, Kind: "string",
			DefaultHelp: "required unless --endpoint-url", Usage: "the bucket's region", Set: str(&v.region)},
		{Flag: "endpoint-url", Envs: []string{"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"}, Kind: "url", DefaultHelp: "AWS",
			Usage: "S3 endpoint, for an S3-compatible store", Set: str(&v.endpoint)},
		{Flag: "path-style", Envs: []string{"S3_USE_PATH_STYLE"}, Default: "false", Bool: true,
			Usage: "address the bucket in the path, not the host name", Set: boolSetter(&v.pathStyle)},
		{Flag: "public-url", Envs: []string{"CREDSIDECAR_ISSUER_PUBLIC_URL"}, Kind: "url",
			DefaultHelp: "https://<bucket>.s3.<region>.amazonaws.com/<prefix>",
			Usage:       "the issuer URL STS fetches from (https): the bucket's URL plus the prefix, or a CDN in front", Set: str(&v.publicURL)},
		{Flag: "audience", Envs: []string{"CREDSIDECAR_ISSUER_AUDIENCE"}, Kind: "string", DefaultHelp: "the public URL with a trailing slash",
			Usage: "the audience the projected tokens carry, for the IAM command printed", Set: str(&v.audience)},
		{Flag: "kubeconfig", Envs: []string{"CREDSIDECAR_ISSUER_KUBECONFIG"}, Kind: "path",
			DefaultHelp: "in-cluster, else $KUBECONFIG, else ~/.kube/config", Usage: "how to reach the API server",
			Set: str(&v.kubeconfig)},
		{Flag: "set-bucket-policy", Envs: []string{"CREDSIDECAR_ISSUER_SET_BUCKET_POLICY"}, Default: "false", Bool: true,
			Usage: "add the one public-read statement for the two documents to the bucket policy, keeping the others",
			Set:   boolSetter(&v.setPolicy)},
		{Flag: "watch", Envs: []string{"CREDSIDECAR_ISSUER_WATCH"}, Default: "false", Bool: true,
			Usage: "keep running and republish when the documents change (a key added)", Set: boolSetter(&v.watch)},
		{Flag: "interval", Envs: []string{"CREDSIDECAR_ISSUER_INTERVAL"}, Kind: "duration", Default: "1m",
			Usage: "with --watch: how often the API server is read", Set: func(s string) error {
				d, err := time.ParseDuration(s)
				if err != nil || d < time.Second {
					return errors.New("must be a duration of at least 1s, such as 1m")
				}
				v.interval = d
				return nil
			}},
	}
}

// Main runs `sidecar issuer <args>` and returns the exit status: 0 published, 1 failed, 2 a
// bad command line.
func Main(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "publish" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			usage(stdout)
			return 0
		}
		fmt.Fprintf(stderr, "sidecar issuer: want the subcommand publish\n\n")
		usage(stderr)
		return 2
	}
	v, err := parse(args[1:], getenv)
	if errors.Is(err, flag.ErrHelp) {
		usage(stdout)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "sidecar issuer publish: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	p, err := newPublisher(ctx, v, getenv, log)
	if err != nil {
		fmt.Fprintf(stderr, "sidecar issuer publish: %v\n", err)
		return 1
	}
	if v.watch {
		first := true
		_ = p.Watch(ctx, clock.Real(), v.interval, func(res *Result, err error) {
			if err == nil && first {
				first = false
				NextSteps(stdout, res.Docs, p.PublicURL, v.audience)
			}
		})
		return 0
	}
	res, err := p.Publish(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "sidecar issuer publish: %v\n", err)
		return 1
	}
	if len(res.Uploaded) == 0 {
		fmt.Fprintf(stdout, "The bucket already held the current documents; nothing uploaded.\n")
	} else {
		for _, k := range res.Uploaded {
			fmt.Fprintf(stdout, "Uploaded s3://%s/%s\n", p.Bucket, k)
		}
	}
	if res.PolicyUpdated {
		fmt.Fprintf(stdout, "Added statement %s to the policy of bucket %s.\n", PolicySid, p.Bucket)
	}
	NextSteps(stdout, res.Docs, p.PublicURL, v.audience)
	return 0
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "usage: sidecar issuer publish [flags]\n\n"+
		"Publishes the cluster's service-account issuer (discovery document and JWKS) to an S3 bucket for AWS STS,\n"+
		"checks them there anonymously, and prints the API server flags and the IAM command left to run.\n"+
		"S3 credentials come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a web-identity token (AWS_ROLE_ARN,\n"+
		"AWS_WEB_IDENTITY_TOKEN_FILE) or the credsidecar endpoint (AWS_CONTAINER_CREDENTIALS_FULL_URI), in that order:\n"+
		"the SDK's default chain without profiles and SSO (from those: eval \"$(aws configure export-credentials --format env)\").\n\n")
	b := config.NewBinder(flag.NewFlagSet("issuer publish", flag.ContinueOnError))
	b.Add(settings(&values{})...)
	b.WriteUsage(w, nil)
}

func parse(args []string, getenv func(string) string) (values, error) {
	fs := flag.NewFlagSet("issuer publish", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	b := config.NewBinder(fs)
	var v values
	b.Add(settings(&v)...)
	if err := b.Parse(args); err != nil {
		return v, err
	}
	problems := b.Resolve(getenv)
	add := func(flagName, value, problem string) {
		problems = append(problems, b.Problem(flagName, value, problem))
	}
	if v.bucket == "" {
		add("bucket", "", "required: the S3 bucket to publish the issuer's documents to")
	}
	if v.region == "" && v.endpoint == "" {
		add("region", "", "required unless --endpoint-url: the bucket's region")
	} else if v.region != "" && !creds.ValidRegion(v.region) {
		add("region", v.region, "not a region name such as eu-west-1")
	}
	if v.publicURL == "" && v.bucket != "" {
		v.publicURL = DefaultPublicURL(v.bucket, v.region, v.prefix)
	}
	if u, err := url.Parse(v.publicURL); v.publicURL != "" && (err != nil || u.Scheme != "https" || u.Host == "" ||
		u.RawQuery != "" || u.Fragment != "" || u.User != nil) {
		add("public-url", v.publicURL, "must be an https URL without query, fragment or credentials: STS fetches the "+
			"issuer's documents over https only")
	}
	if len(problems) > 0 {
		return v, &config.Error{Problems: problems}
	}
	return v, nil
}

func newPublisher(ctx context.Context, v values, getenv func(string) string, log *slog.Logger) (*Publisher, error) {
	kube, err := LoadKube(v.kubeconfig, getenv)
	if err != nil {
		return nil, err
	}
	region := v.region
	if region == "" {
		region = "us-east-1" // an S3-compatible store at --endpoint-url: any region signs
	}
	provider, from, err := credentialsFrom(getenv, region)
	if err != nil {
		return nil, err
	}
	provider = aws.NewCredentialsCache(provider)
	if err := retrieve(ctx, provider, from); err != nil {
		return nil, err
	}
	client := s3.NewFromConfig(aws.Config{Region: region, Credentials: provider}, func(o *s3.Options) {
		if v.endpoint != "" {
			o.BaseEndpoint = aws.String(v.endpoint)
		}
		o.UsePathStyle = v.pathStyle
	})
	return &Publisher{Kube: kube, S3: client, Bucket: v.bucket, Prefix: v.prefix, PublicURL: v.publicURL,
		SetBucketPolicy: v.setPolicy, Public: &http.Client{Timeout: 30 * time.Second}, Log: log}, nil
}
