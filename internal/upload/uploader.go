package upload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/endpointcreds"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	tmtypes "github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/credsidecar/credsidecar/internal/clock"
	"github.com/credsidecar/credsidecar/internal/creds"
)

// STSAPI is the one STS call the uploader makes.
type STSAPI interface {
	GetCallerIdentity(ctx context.Context, in *sts.GetCallerIdentityInput, optFns ...func(*sts.Options)) (*sts.GetCallerIdentityOutput, error)
}

var (
	_ STSAPI                      = (*sts.Client)(nil)
	_ transfermanager.S3APIClient = (*s3.Client)(nil)
)

// checksumCRC64NVME is the algorithm name S3 uses; the transfer manager's enum lacks it.
const checksumCRC64NVME = tmtypes.ChecksumAlgorithm(s3types.ChecksumAlgorithmCrc64nvme)

// failTimeout bounds the AbortMultipartUpload sent after a failure, on a fresh context so an
// interrupted run still cleans up its parts.
const failTimeout = 10 * time.Second

// Uploader runs the steps: credentials, identity, upload, verify.
type Uploader struct {
	Credentials      aws.CredentialsProvider
	STS              STSAPI
	S3               transfermanager.S3APIClient
	Clock            clock.Clock
	Log              *slog.Logger
	PartSize         int64
	Concurrency      int
	ProgressInterval time.Duration

	target target
}

// Source is the object's content.
type Source struct {
	Body        io.Reader
	Size        int64
	Name        string // a file path, or "generated"
	ContentType string
}

// Result describes a verified upload.
type Result struct {
	URL       string // s3://bucket/key
	Bucket    string
	Key       string
	Size      int64
	Checksum  string // base64 CRC64NVME of the whole object
	ETag      string
	Multipart bool
	Account   string
	CallerARN string
	RoleARN   string // the IAM role behind an assumed-role caller; empty otherwise
}

// Run uploads src to bucket/key and confirms it landed intact. Errors are *Failure.
func (u *Uploader) Run(ctx context.Context, bucket, key string, src Source) (*Result, error) {
	t := u.target
	t.Bucket, t.Key = bucket, key
	res := &Result{Bucket: bucket, Key: key, URL: "s3://" + bucket + "/" + key}

	// Credentials first, on their own: the default chain fails lazily inside the first call
	// otherwise, and then nobody can tell a sidecar problem from an STS one.
	c, err := u.Credentials.Retrieve(ctx)
	if err != nil {
		return nil, explain(StepCredentials, err, t)
	}
	attrs := []any{
		slog.String("source", c.Source),
		slog.String("access_key_id", creds.MaskKeyID(c.AccessKeyID)),
	}
	if c.CanExpire {
		attrs = append(attrs, slog.Time("expires", c.Expires), slog.Duration("remaining", c.Expires.Sub(u.Clock.Now()).Round(time.Second)))
	}
	u.Log.Info("credentials resolved", attrs...)
	if t.FullURI != "" && c.Source != endpointcreds.ProviderName {
		u.Log.Warn("credentials did not come from AWS_CONTAINER_CREDENTIALS_FULL_URI: an earlier source in the SDK chain shadows the sidecar (AWS_ACCESS_KEY_ID, AWS_ROLE_ARN with AWS_WEB_IDENTITY_TOKEN_FILE, or AWS_PROFILE)",
			slog.String("source", c.Source))
	}

	id, err := u.STS.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return nil, explain(StepIdentity, err, t)
	}
	res.Account, res.CallerARN = aws.ToString(id.Account), aws.ToString(id.Arn)
	res.RoleARN = roleARN(res.CallerARN, res.Account)
	u.Log.Info("identity verified", slog.String("account", res.Account), slog.String("arn", res.CallerARN), slog.String("role_arn", res.RoleARN))
	u.Log.Info("target", slog.String("bucket", bucket), slog.String("region", t.Region), slog.String("endpoint", endpointOrAWS(t.Endpoint)))

	// The transfer manager switches to multipart once a whole part's worth has been read.
	res.Multipart = src.Size >= u.PartSize
	u.Log.Info("upload started",
		slog.String("key", key), slog.String("source", src.Name), slog.Int64("bytes", src.Size),
		slog.Bool("multipart", res.Multipart), slog.Int64("part_size", u.PartSize), slog.Int("concurrency", u.Concurrency))
	start := u.Clock.Now()
	hr := &hashingReader{r: src.Body, h: newCRC64NVME()}
	out, err := u.upload(ctx, bucket, key, src, hr)
	if err != nil {
		return nil, explain(StepUpload, err, t)
	}
	if hr.n != src.Size {
		return nil, &Failure{Step: StepUpload, Cause: fmt.Sprintf("read %d bytes but the source had %d when the upload started: the file changed while it was uploaded", hr.n, src.Size)}
	}
	res.Size, res.Checksum, res.ETag = hr.n, encodeChecksum(hr.h), strings.Trim(aws.ToString(out.ETag), `"`)
	if got := aws.ToString(out.ChecksumCRC64NVME); got != "" && got != res.Checksum {
		op := "PutObject"
		if res.Multipart {
			op = "CompleteMultipartUpload"
		}
		return nil, &Failure{Step: StepUpload, Operation: op, Cause: fmt.Sprintf("the store reports CRC64NVME %s for the object, the bytes sent have %s", got, res.Checksum)}
	}

	if err := u.verify(ctx, res, t); err != nil {
		return nil, err
	}
	took := u.Clock.Now().Sub(start)
	done := []any{
		slog.String("url", res.URL), slog.Int64("bytes", res.Size), slog.String("etag", res.ETag),
		slog.Bool("multipart", res.Multipart), slog.Duration("took", took.Round(time.Millisecond)),
	}
	if took > 0 {
		done = append(done, slog.Int64("bytes_per_second", int64(float64(res.Size)/took.Seconds())))
	}
	u.Log.Info("upload succeeded", done...)
	return res, nil
}

// upload streams the body through the transfer manager while a progress line is logged on a
// timer. Memory stays near (concurrency+2) part buffers whatever the object size.
func (u *Uploader) upload(ctx context.Context, bucket, key string, src Source, body io.Reader) (*transfermanager.UploadObjectOutput, error) {
	p := newProgress(u.Clock, u.ProgressInterval, u.Log, src.Size)
	pctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { p.run(pctx) })
	defer wg.Wait()
	defer stop()

	tm := transfermanager.New(u.S3, func(o *transfermanager.Options) {
		o.PartSizeBytes = u.PartSize
		o.MultipartUploadThreshold = u.PartSize
		o.Concurrency = u.Concurrency
		o.ChecksumAlgorithm = checksumCRC64NVME
		o.FailTimeout = failTimeout
		o.ObjectProgressListeners.Register(p)
	})
	return tm.UploadObject(ctx, &transfermanager.UploadObjectInput{
		Bucket:            aws.String(bucket),
		Key:               aws.String(key),
		Body:              body,
		ContentLength:     aws.Int64(src.Size),
		ContentType:       aws.String(src.ContentType),
		ChecksumAlgorithm: checksumCRC64NVME,
		// CRC64NVME is only defined as a full-object checksum; say so for multipart uploads.
		ChecksumType: tmtypes.ChecksumTypeFullObject,
	})
}

// verify asks the store what it holds and compares it with what was sent.
func (u *Uploader) verify(ctx context.Context, res *Result, t target) error {
	head, err := u.S3.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket:       aws.String(res.Bucket),
		Key:          aws.String(res.Key),
		ChecksumMode: s3types.ChecksumModeEnabled,
	})
	if err != nil {
		return explain(StepVerify, err, t)
	}
	var problems []string
	if size := aws.ToInt64(head.ContentLength); size != res.Size {
		problems = append(problems, fmt.Sprintf("size %d, sent %d", size, res.Size))
	}
	switch got := aws.ToString(head.ChecksumCRC64NVME); got {
	case res.Checksum:
	case "":
		problems = append(problems, "no CRC64NVME checksum stored (the store ignored x-amz-checksum-algorithm)")
	default:
		problems = append(problems, fmt.Sprintf("CRC64NVME %s, sent %s", got, res.Checksum))
	}
	if len(problems) > 0 {
		return &Failure{Step: StepVerify, Operation: "HeadObject",
			Cause: "the stored object differs from what was sent: " + strings.Join(problems, "; "),
			Err:   errors.New("verify " + res.URL)}
	}
	u.Log.Info("upload verified",
		slog.Int64("bytes", res.Size), slog.String("checksum_crc64nvme", res.Checksum),
		slog.String("checksum_type", string(head.ChecksumType)))
	return nil
}

// roleARN turns arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION into arn:aws:iam::ACCOUNT:role/ROLE.
// Role paths are not in assumed-role ARNs, so a role under a path is shown without it. Some
// S3-compatible stores leave the account out of the ARN; account fills it in then.
func roleARN(caller, account string) string {
	parts := strings.Split(caller, ":")
	if len(parts) < 5 || len(parts) > 6 || parts[0] != "arn" || parts[2] != "sts" {
		return ""
	}
	if len(parts) == 6 {
		account = parts[4]
	}
	rest, ok := strings.CutPrefix(parts[len(parts)-1], "assumed-role/")
	if !ok || account == "" {
		return ""
	}
	name, _, _ := strings.Cut(rest, "/")
	if name == "" {
		return ""
	}
	return "arn:" + parts[1] + ":iam::" + account + ":role/" + name
}

func endpointOrAWS(e string) string {
	if e == "" {
		return "aws"
	}
	return e
}
