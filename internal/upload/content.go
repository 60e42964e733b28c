package upload

import (
	"fmt"
	"strings"
	"time"
)

// testFileContent is the generated object: a few lines saying when and from which pod it was
// written, so whoever finds it in the bucket can trace it back. It lives only in memory.
func testFileContent(now time.Time, getenv func(string) string, bucket, key string) []byte {
	or := func(v, fallback string) string {
		if v == "" {
			return fallback
		}
		return v
	}
	var b strings.Builder
	b.WriteString("credsidecar upload test: AWS credentials from a Kubernetes service account token\n")
	fmt.Fprintf(&b, "time: %s (%s)\n", now.Format("2006-01-02 15:04:05 MST"), now.Location())
	fmt.Fprintf(&b, "pod: %s\n", or(getenv("POD_NAME"), or(getenv("HOSTNAME"), "unknown")))
	fmt.Fprintf(&b, "namespace: %s\n", or(getenv("POD_NAMESPACE"), "unknown"))
	fmt.Fprintf(&b, "node: %s\n", or(getenv("NODE_NAME"), "unknown"))
	fmt.Fprintf(&b, "object: s3://%s/%s\n", bucket, key)
	return []byte(b.String())
}
