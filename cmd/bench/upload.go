package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/credsidecar/credsidecar/internal/testkit/testbed"
	"github.com/credsidecar/credsidecar/internal/upload"
)

// buildUploader compiles cmd/uploader into dir.
func buildUploader(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "uploader")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/uploader")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build cmd/uploader: %w: %s", err, bytes.TrimSpace(out))
	}
	return bin, nil
}

// awsCLI finds the AWS CLI, skipping pyenv's shim (a shell script in front of python) when it
// can, so that the timing is the CLI's own.
func awsCLI(ctx context.Context) (string, error) {
	path, err := exec.LookPath("aws")
	if err != nil {
		return "", fmt.Errorf("the AWS CLI is not installed: %w", err)
	}
	if strings.Contains(path, "/shims/") {
		if out, err := exec.CommandContext(ctx, "pyenv", "which", "aws").Output(); err == nil {
			if real := strings.TrimSpace(string(out)); real != "" {
				return real, nil
			}
		}
	}
	return path, nil
}

// writeRandomFile writes size bytes that do not compress, quickly.
func writeRandomFile(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	if _, err := io.CopyN(w, rand.NewChaCha8([32]byte{'c', 'r', 'e', 'd', 's'}), size); err != nil {
		f.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// childEnv is this process's environment without AWS settings, plus extra: the tools must find
// their credentials through the sidecar and nothing else.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// uploadRun is one timed upload.
type uploadRun struct {
	took   time.Duration
	maxRSS int64 // bytes
}

func timedRun(ctx context.Context, env []string, name string, args ...string) (uploadRun, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	began := time.Now()
	err := cmd.Run()
	took := time.Since(began)
	if err != nil {
		return uploadRun{}, fmt.Errorf("%s: %w: %s", filepath.Base(name), err, lastLines(out.String(), 5))
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return uploadRun{}, fmt.Errorf("%s: no rusage", name)
	}
	// Linux reports ru_maxrss in KiB, the largest of the process and its waited-for descendants.
	return uploadRun{took: took, maxRSS: ru.Maxrss << 10}, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// benchUpload uploads one large file to SeaweedFS with cmd/uploader and with the AWS CLI, both
// getting their credentials from the sidecar, alternating.
func benchUpload(ctx context.Context, e *env, r *report) error {
	r.h2("7. Uploader against the AWS CLI")
	if e.uploaderErr != nil {
		r.p("**Not measured**: %s", oneLine(e.uploaderErr.Error()))
		r.summary = append(r.summary, []string{"7. Uploader", "not measured: " + oneLine(e.uploaderErr.Error()), "**not measured**"})
		return nil
	}
	cli, err := awsCLI(ctx)
	if err != nil {
		r.p("**Not measured**: %s", oneLine(err.Error()))
		r.summary = append(r.summary, []string{"7. Uploader", "not measured: " + oneLine(err.Error()), "**not measured**"})
		return nil
	}
	sc, err := e.startSidecar(ctx, "")
	if err != nil {
		return err
	}
	defer func() { _ = sc.Stop(10 * time.Second) }()
	file := filepath.Join(e.tmp, "upload.bin")
	if err := writeRandomFile(file, e.s.uploadSize); err != nil {
		return err
	}
	defer os.Remove(file)
	admin := e.weed.S3Client(e.weed.AdminCredentials())
	bucket := e.weed.Bucket()
	env := childEnv(
		"AWS_CONTAINER_CREDENTIALS_FULL_URI="+sc.URL,
		"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE="+sc.AuthFile,
		"AWS_REGION="+testbed.Region,
		"AWS_DEFAULT_REGION="+testbed.Region,
		// No profile of this machine's user may supply credentials or settings.
		"AWS_CONFIG_FILE="+filepath.Join(e.tmp, "no-aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(e.tmp, "no-aws-credentials"),
	)
	tools := map[string]func(key string) (uploadRun, error){
		"uploader": func(key string) (uploadRun, error) {
			return timedRun(ctx, env, e.uploaderBin, "--bucket", bucket, "--key", key, "--file", file,
				"--region", testbed.Region, "--endpoint-url", e.weed.Endpoint(), "--sts-endpoint-url", e.weed.Endpoint(),
				"--path-style", "--progress-interval", "1h")
		},
		"aws s3 cp": func(key string) (uploadRun, error) {
			return timedRun(ctx, env, cli, "s3", "cp", file, "s3://"+bucket+"/"+key,
				"--endpoint-url", e.weed.Endpoint(), "--only-show-errors")
		},
	}
	results := map[string][]uploadRun{}
	var ratios []float64
	for i := range e.s.uploadRuns {
		order := []string{"uploader", "aws s3 cp"}
		if i%2 == 1 {
			order = []string{"aws s3 cp", "uploader"}
		}
		mbps := map[string]float64{}
		for _, tool := range order {
			key := fmt.Sprintf("bench/upload-%d-%s", i, strings.ReplaceAll(tool, " ", "-"))
			res, err := tools[tool](key)
			if err != nil {
				return err
			}
			if err := checkAndDelete(ctx, admin, bucket, key, e.s.uploadSize); err != nil {
				return fmt.Errorf("%s: %w", tool, err)
			}
			results[tool] = append(results[tool], res)
			mbps[tool] = float64(e.s.uploadSize) / (1 << 20) / res.took.Seconds()
			e.log.Info("upload", "tool", tool, "run", i+1, "took", res.took.Round(time.Millisecond).String(),
				"MiB_per_s", fmt.Sprintf("%.1f", mbps[tool]), "max_rss_mib", fmt.Sprintf("%.1f", float64(res.maxRSS)/(1<<20)))
		}
		ratios = append(ratios, mbps["uploader"]/mbps["aws s3 cp"])
	}
	var rows [][]string
	rss := map[string]float64{}
	for _, tool := range []string{"uploader", "aws s3 cp"} {
		var tput, mem []float64
		for _, res := range results[tool] {
			tput = append(tput, float64(e.s.uploadSize)/(1<<20)/res.took.Seconds())
			mem = append(mem, float64(res.maxRSS))
		}
		rss[tool] = median(mem)
		rows = append(rows, []string{tool, fmt.Sprintf("%.1f MiB/s", median(tput)), mibList(mem)})
	}
	ratio := median(ratios)
	lo, hi := minMax(ratios)
	var each []string
	for _, x := range ratios {
		each = append(each, fmt.Sprintf("%.2f", x))
	}
	r.p("A %s file of random bytes uploaded to SeaweedFS by the built `cmd/uploader` (flags: --file, --path-style, "+
		"defaults otherwise: %s parts, %d in parallel, GetCallerIdentity before and HeadObject with a full CRC64NVME "+
		"check after) and by `%s s3 cp` (its defaults: 8 MiB parts, 10 in parallel), both finding their credentials "+
		"through the sidecar (AWS_CONTAINER_CREDENTIALS_FULL_URI and AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE, no other "+
		"AWS settings). Throughput is the size over the whole command's wall time; peak RSS is ru_maxrss from wait4. "+
		"%s each, alternating which goes first; each object is checked (size) and deleted after.",
		formatSize(e.s.uploadSize), formatSize(int64(upload.DefaultPartSize)), upload.DefaultConcurrency, filepath.Base(cli), count(e.s.uploadRuns, "upload", "uploads"))
	r.table([]string{"tool", "throughput (median)", "peak RSS per run (MiB)"}, rows)
	r.p("Throughput ratio uploader / CLI per side-by-side pair: %s. SeaweedFS writes to this machine's disk, "+
		"whose speed varies from one upload to the next by tens of percent, hence the pairs.", strings.Join(each, ", "))
	r.checks("7. Uploader", [][]string{
		{fmt.Sprintf("throughput >= 1.0x the AWS CLI: %.2fx (%.2f–%.2f)", ratio, lo, hi), verdict(ratio >= 1.0)},
		{fmt.Sprintf("uploader peak RSS <= 100 MiB: %.1f MiB", rss["uploader"]/(1<<20)), verdict(rss["uploader"] <= 100<<20)},
	})
	return nil
}

func checkAndDelete(ctx context.Context, c *s3.Client, bucket, key string, size int64) error {
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return fmt.Errorf("head uploaded object: %w", err)
	}
	if got := aws.ToInt64(head.ContentLength); got != size {
		return fmt.Errorf("uploaded object has %d bytes, want %d", got, size)
	}
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}); err != nil {
		return fmt.Errorf("delete uploaded object: %w", err)
	}
	return nil
}

func formatSize(n int64) string {
	switch {
	case n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	default:
		return fmt.Sprintf("%d bytes", n)
	}
}
