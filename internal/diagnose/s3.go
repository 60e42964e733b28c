package diagnose

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/credsidecar/credsidecar/internal/findings"
	"github.com/credsidecar/credsidecar/internal/policy"
)

// S3Result is what the S3 probe did with the assumed role's credentials.
type S3Result struct {
	Bucket    string     `json:"bucket"`
	Endpoint  string     `json:"endpoint"`
	PathStyle bool       `json:"path_style"`
	Key       string     `json:"key,omitempty"`
	Actions   []S3Action `json:"actions"`
	// Skipped says why the bucket was not probed.
	Skipped string `json:"skipped,omitempty"`
}

// S3Action is one probed permission and S3's answer.
type S3Action struct {
	Action  string `json:"action"`
	OK      bool   `json:"ok"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

// s3Flags names where the S3 endpoint comes from, for fixes.
const s3EndpointFlags = "--s3-endpoint / AWS_ENDPOINT_URL_S3"

// probeBody is the probe object's content: small, and self-explaining if it is ever left behind.
const probeBody = "credsidecar check probe object; safe to delete\n"

// s3Probe runs the three probes against bucket and returns S3's answers and the errors, in
// action order (nil for success). Each call has its own timeout so one stuck call does not eat
// the others' time.
func s3Probe(ctx context.Context, client *s3.Client, bucket, key string, timeout time.Duration) ([]S3Action, []error) {
	calls := []struct {
		action string
		call   func(ctx context.Context) error
	}{
		{policy.ActionListBucket, func(ctx context.Context) error {
			_, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), MaxKeys: aws.Int32(1)})
			return err
		}},
		{policy.ActionPutObject, func(ctx context.Context) error {
			_, err := client.PutObject(ctx, &s3.PutObjectInput{
				Bucket:      aws.String(bucket),
				Key:         aws.String(key),
				Body:        strings.NewReader(probeBody),
				ContentType: aws.String("text/plain"),
			})
			return err
		}},
		// Deleting a key that does not exist succeeds when allowed, so this probes the
		// permission even when PutObject was refused.
		{policy.ActionDeleteObject, func(ctx context.Context) error {
			_, err := client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
			return err
		}},
	}
	actions := make([]S3Action, len(calls))
	errs := make([]error, len(calls))
	for i, c := range calls {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		err := c.call(cctx)
		cancel()
		actions[i] = S3Action{Action: c.action, OK: err == nil}
		if err != nil {
			errs[i] = err
			var apiErr smithy.APIError
			if errors.As(err, &apiErr) {
				actions[i].Code = apiErr.ErrorCode()
				actions[i].Message = scrub(apiErr.ErrorMessage(), nil)
			} else {
				actions[i].Code = "NoAnswer"
			}
		}
	}
	return actions, errs
}

// s3Findings explains the failed probes: one finding for all refused actions, with the
// permission policy statements that would allow them, and one for each other kind of failure.
func s3Findings(res *S3Result, errs []error, roleARN, region string, timeout time.Duration) []findings.Finding {
	var denied []string
	var out []findings.Finding
	seen := map[string]bool{}
	putOK := false
	for _, a := range res.Actions {
		putOK = putOK || (a.Action == policy.ActionPutObject && a.OK)
	}
	leftBehind := false
	for i, a := range res.Actions {
		if a.OK {
			continue
		}
		leftBehind = leftBehind || (a.Action == policy.ActionDeleteObject && putOK)
		var apiErr smithy.APIError
		if !errors.As(errs[i], &apiErr) {
			if !seen[findings.IDS3Unreachable] {
				seen[findings.IDS3Unreachable] = true
				out = append(out, unreachableFinding(errs[i], findings.IDS3Unreachable, "S3", res.Endpoint, region, s3EndpointFlags, timeout))
			}
			continue
		}
		switch a.Code {
		case "AccessDenied", "AllAccessDisabled", "Forbidden":
			denied = append(denied, a.Action)
		case "NoSuchBucket":
			if !seen[findings.IDS3NoSuchBucket] {
				seen[findings.IDS3NoSuchBucket] = true
				out = append(out, findings.Finding{
					ID:       findings.IDS3NoSuchBucket,
					Severity: findings.SeverityError,
					What:     fmt.Sprintf("bucket %s does not exist at %s", res.Bucket, res.Endpoint),
					Why:      "the workload's uploads would fail the same way",
					Fix:      fmt.Sprintf("check the bucket name given to --probe-s3 and the workload, and the region (%s) or %s", valueOr(region, "unset"), s3EndpointFlags),
				})
			}
		default:
			out = append(out, findings.Finding{
				ID:       findings.IDS3Error,
				Severity: findings.SeverityError,
				What:     fmt.Sprintf("%s on bucket %s failed: %s: %s", a.Action, res.Bucket, a.Code, a.Message),
				Why:      "the workload's calls would fail the same way",
				Fix:      fmt.Sprintf("look up %s in the S3 API reference for %s", a.Code, a.Action),
			})
		}
	}
	if len(denied) > 0 {
		partition, _, name := parseRoleARN(roleARN)
		stmts, err := json.Marshal(policy.S3Statements(partition, res.Bucket, denied...))
		line := string(stmts)
		if err != nil {
			line = "(cannot render: " + err.Error() + ")"
		}
		what := fmt.Sprintf("role %s may not %s on bucket %s", roleARN, strings.Join(denied, ", "), res.Bucket)
		if leftBehind {
			what += fmt.Sprintf(" (the probe object %s was left in the bucket)", res.Key)
		}
		out = append([]findings.Finding{{
			ID:       findings.IDS3AccessDenied,
			Severity: findings.SeverityError,
			What:     what,
			Why: "STS accepted the token, so the trust setup works, but the role's permission policy (or the " +
				"bucket's policy) does not grant these actions",
			Fix: fmt.Sprintf("add to the permission policy of role %s: %s; `sidecar policy ... --bucket %s` prints the "+
				"whole policy and `aws iam put-role-policy --role-name %s --policy-name %s --policy-document "+
				"file://permission-policy.json` applies it; a bucket policy must not deny the role",
				valueOr(name, "<role>"), line, res.Bucket, policy.ShellQuote(valueOr(name, "<role>")), policy.DefaultPolicyName),
		}}, out...)
	}
	return out
}

// probeKey names the probe object uniquely, so concurrent checks never delete each other's.
func probeKey(now time.Time) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "credsidecar-check/" + now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:]) + ".txt"
}
