package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/credsidecar/credsidecar/internal/findings"
	"github.com/credsidecar/credsidecar/internal/testkit/testbed"
)

// failCase is one of the seed walkthrough's troubleshooting rows, set up for real.
type failCase struct {
	title string
	// token is minted into the projected volume; nil keeps the healthy token.
	token *testbed.TokenRequest
	// tokenFile overrides AWS_WEB_IDENTITY_TOKEN_FILE (relative to the work dir).
	tokenFile string
	// probeBucket is passed to --probe-s3.
	probeBucket string
	// want is the finding `sidecar check` must report.
	want string
}

// forbiddenBucket exists but the role's permission policy does not cover it.
const forbiddenBucket = "credsidecar-other-team"

func failCases() []failCase {
	return []failCase{
		{
			title:     "the token path and AWS_WEB_IDENTITY_TOKEN_FILE drifted apart",
			tokenFile: "secrets/azure/tokens/azure-identity-token",
			want:      findings.IDTokenMissing,
		},
		{
			title: "the token's audience is not the one registered on the IAM OIDC provider",
			token: &testbed.TokenRequest{Audiences: []string{"api://AzureADTokenExchange"}},
			want:  findings.IDSTSInvalidToken,
		},
		{
			title: "the trust policy's sub names another service account",
			token: &testbed.TokenRequest{ServiceAccount: "uploader"},
			want:  findings.IDSTSAccessDenied,
		},
		{
			title:       "the role works, but its permission policy does not cover the bucket",
			probeBucket: forbiddenBucket,
			want:        findings.IDS3AccessDenied,
		},
	}
}

// RunFail sets up each of the classic trust-setup mistakes on the bed and shows `sidecar check`
// diagnosing it. It fails unless every case exits 1 with its expected finding.
func RunFail(ctx context.Context, o Options) error {
	out := &lockedWriter{w: o.Out}
	work, err := os.MkdirTemp("", "credsidecar-demo-fail-")
	if err != nil {
		return fmt.Errorf("demo: make work dir: %w", err)
	}
	defer os.RemoveAll(work)
	bin := o.BinDir
	if bin == "" {
		bin = filepath.Join(work, "bin")
	}
	if o.Build {
		fmt.Fprintln(out, "==> building cmd/sidecar and cmd/uploader")
		if err := buildBinaries(ctx, bin); err != nil {
			return err
		}
	}
	iss, err := testbed.NewIssuer(testbed.IssuerOptions{})
	if err != nil {
		return fmt.Errorf("demo: start issuer: %w", err)
	}
	defer iss.Close()
	sw, err := testbed.StartSeaweedFS(ctx, testbed.SeaweedFSOptions{Issuer: iss, ExtraBuckets: []string{forbiddenBucket}})
	if err != nil {
		return fmt.Errorf("demo: start SeaweedFS: %w", err)
	}
	defer sw.Close()
	fmt.Fprintf(out, "==> issuer %s, SeaweedFS %s, role %s\n", iss.URL(), sw.Endpoint(), sw.RoleARN())

	var failed []string
	for i, c := range failCases() {
		fmt.Fprintf(out, "\n==> case %d: %s\n", i+1, c.title)
		got, err := runFailCase(ctx, out, bin, filepath.Join(work, fmt.Sprintf("case%d", i+1)), iss, sw, c)
		if err != nil {
			return err
		}
		if got != "" {
			failed = append(failed, fmt.Sprintf("case %d (%s): want exit 1 with finding %s, got %s", i+1, c.title, c.want, got))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("demo: %s", strings.Join(failed, "; "))
	}
	fmt.Fprintf(out, "\n==> all %d mistakes were diagnosed with their fix\n", len(failCases()))
	return nil
}

// runFailCase projects the case's token into dir and runs `sidecar check` on it. got is empty
// when the check exited 1 with the expected finding, else what it did instead; err is for the
// demo's own failures only.
func runFailCase(ctx context.Context, out io.Writer, bin, dir string, iss *testbed.Issuer, sw *testbed.SeaweedFS, c failCase) (got string, err error) {
	req := testbed.TokenRequest{PodName: "s3-upload-test-demo"}
	if c.token != nil {
		req = *c.token
	}
	proj, err := testbed.NewProjector(testbed.ProjectorOptions{Dir: filepath.Join(dir, "serviceaccount"), Minter: iss.Minter(req)})
	if err != nil {
		return "", fmt.Errorf("demo: project token: %w", err)
	}
	defer proj.Close()
	tokenFile := proj.Path()
	if c.tokenFile != "" {
		tokenFile = filepath.Join(dir, c.tokenFile)
	}
	args := []string{"check", "--s3-path-style"}
	if c.probeBucket != "" {
		args = append(args, "--probe-s3", c.probeBucket)
	}
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "sidecar"), args...)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + dir,
		"AWS_ROLE_ARN=" + sw.RoleARN(),
		"AWS_WEB_IDENTITY_TOKEN_FILE=" + tokenFile,
		"AWS_REGION=" + testbed.Region,
		"AWS_ENDPOINT_URL=" + sw.Endpoint(),
	}
	fmt.Fprintf(out, "    $ AWS_WEB_IDENTITY_TOKEN_FILE=%s sidecar %s\n", tokenFile, strings.Join(args, " "))
	p, err := startStreaming(cmd, out, "    | ")
	if err != nil {
		return "", fmt.Errorf("demo: run sidecar check: %w", err)
	}
	werr := p.Wait()
	var exit *exec.ExitError
	if errors.As(werr, &exit) && exit.ExitCode() == 1 && strings.Contains(p.output(), "error   "+c.want+":") {
		fmt.Fprintf(out, "    => diagnosed as %s, as expected\n", c.want)
		return "", nil
	}
	return fmt.Sprintf("%v", werr), nil
}
