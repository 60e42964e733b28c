package diagnose

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/credsidecar/credsidecar/internal/creds"
	"github.com/credsidecar/credsidecar/internal/findings"
)

// DefaultKnownTokenPaths are where the usual webhooks and manifests project web-identity
// tokens; when the configured file is missing, a token found at one of them is suggested.
func DefaultKnownTokenPaths() []string {
	return []string{
		"/var/run/secrets/azure/tokens/azure-identity-token",      // AKS workload identity webhook
		"/var/run/secrets/eks.amazonaws.com/serviceaccount/token", // EKS pod identity webhook
		"/var/run/secrets/tokens/token",
		"/var/run/secrets/credsidecar/token",
	}
}

// defaultSATokenPath is the API server's default token, whose audience STS will not accept.
const defaultSATokenPath = "/var/run/secrets/kubernetes.io/serviceaccount/token"

// tokenInput says where the token is expected and how the user named it.
type tokenInput struct {
	path string
	// source is how the path was given, e.g. "AWS_WEB_IDENTITY_TOKEN_FILE" or "--token-file".
	source string
	// known are the paths searched for a token when path is missing.
	known []string
	// defaultSA is the default service-account token path, mentioned when it is all there is.
	defaultSA string
}

// readTokenFile reads and decodes the token, or explains why it cannot. raw is trimmed.
func readTokenFile(in tokenInput) (raw []byte, claims *creds.TokenClaims, problem *findings.Finding) {
	f, err := os.Open(in.path)
	if err != nil {
		return nil, nil, openProblem(in, err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		return nil, nil, dirProblem(in)
	}
	const limit = creds.MaxTokenSize + 64 // room for surrounding whitespace
	raw, err = io.ReadAll(io.LimitReader(f, limit))
	if err != nil {
		return nil, nil, &findings.Finding{
			ID:       findings.IDTokenUnreadable,
			Severity: findings.SeverityError,
			What:     fmt.Sprintf("cannot read the token file %s (%s): %s", in.path, in.source, pathErrText(err)),
			Why:      "without the token nothing can be exchanged for credentials",
			Fix:      "check the projected volume of the pod and that the node's kubelet is healthy",
		}
	}
	if len(raw) == limit {
		return nil, nil, malformed(in, fmt.Sprintf("it is larger than the %d bytes STS accepts", creds.MaxTokenSize))
	}
	raw = bytes.TrimSpace(raw)
	claims, err = creds.DecodeToken(raw)
	if err != nil {
		return nil, nil, malformed(in, err.Error())
	}
	return raw, claims, nil
}

func malformed(in tokenInput, problem string) *findings.Finding {
	return &findings.Finding{
		ID:       findings.IDTokenMalformed,
		Severity: findings.SeverityError,
		What:     fmt.Sprintf("the token file %s (%s) is not a usable token: %s", in.path, in.source, problem),
		Why:      "STS accepts only a signed JWT from the cluster's service-account issuer",
		Fix: fmt.Sprintf("point %s at the kubelet-projected serviceAccountToken file (<mountPath>/<path> of the "+
			"projected volume), not at a copy, a Secret or a directory", in.source),
	}
}

func openProblem(in tokenInput, err error) *findings.Finding {
	switch {
	case errors.Is(err, fs.ErrPermission):
		return &findings.Finding{
			ID:       findings.IDTokenUnreadable,
			Severity: findings.SeverityError,
			What:     fmt.Sprintf("the token file %s (%s) is not readable by uid %d: permission denied", in.path, in.source, os.Getuid()),
			Why:      "without the token nothing can be exchanged for credentials",
			Fix: "set the pod's securityContext.fsGroup to the sidecar's group, or `defaultMode: 0444` on the " +
				"projected volume, so the sidecar's user can read the token",
		}
	case errors.Is(err, fs.ErrNotExist):
		return missingProblem(in)
	default:
		return &findings.Finding{
			ID:       findings.IDTokenUnreadable,
			Severity: findings.SeverityError,
			What:     fmt.Sprintf("cannot open the token file %s (%s): %s", in.path, in.source, pathErrText(err)),
			Why:      "without the token nothing can be exchanged for credentials",
			Fix:      "check the projected volume's volumeMount and the node's kubelet",
		}
	}
}

// missingProblem says what does exist near the configured path, so the mismatch between the
// variable and the volumeMount shows: the deepest existing directory, what it holds, and any
// token at a well-known path.
func missingProblem(in tokenInput) *findings.Finding {
	dir, base := filepath.Dir(in.path), filepath.Base(in.path)
	var what strings.Builder
	if strings.HasPrefix(in.source, "-") {
		fmt.Fprintf(&what, "%s %s does not exist", in.source, in.path)
	} else {
		fmt.Fprintf(&what, "%s=%s does not exist", in.source, in.path)
	}
	if dest, err := os.Readlink(in.path); err == nil {
		fmt.Fprintf(&what, " (it is a symlink to %s, which points nowhere: a half-mounted or torn-down projected volume)", dest)
	}

	var candidate string
	existing := deepestDir(dir)
	switch {
	case existing == dir:
		names := listDir(dir)
		fmt.Fprintf(&what, "; the directory %s exists", dir)
		if len(names) == 0 {
			what.WriteString(" but is empty")
		} else {
			fmt.Fprintf(&what, " and holds %s", strings.Join(names, ", "))
			for _, n := range names {
				if p := filepath.Join(dir, n); isFile(p) {
					candidate = p
					break
				}
			}
		}
	case existing != "":
		fmt.Fprintf(&what, "; its deepest existing parent directory is %s", existing)
	}
	for _, k := range in.known {
		if candidate == "" && k != in.path && isFile(k) {
			candidate = k
		}
	}
	if candidate != "" {
		fmt.Fprintf(&what, "; a token file exists at %s", candidate)
	} else if in.defaultSA != "" && isFile(in.defaultSA) {
		fmt.Fprintf(&what, "; only the API server's default token %s exists, whose audience STS does not accept", in.defaultSA)
	}

	fix := fmt.Sprintf("make the projected volume's volumeMount `mountPath: %s` and its serviceAccountToken `path: %s`, "+
		"or point %s at <mountPath>/<path> of the projected volume", dir, base, in.source)
	if candidate != "" {
		fix = fmt.Sprintf("set %s to %s if that is the projected token, or %s", in.source, candidate, fix)
	}
	return &findings.Finding{
		ID:       findings.IDTokenMissing,
		Severity: findings.SeverityError,
		What:     what.String(),
		Why: "the sidecar reads the token the kubelet projects, at the volumeMount's mountPath joined with the " +
			"projected serviceAccountToken's path, and the configured path does not match them",
		Fix: fix,
	}
}

func dirProblem(in tokenInput) *findings.Finding {
	names := listDir(in.path)
	fix := fmt.Sprintf("point %s at the token file inside the volume, <mountPath>/<path>", in.source)
	for _, n := range names {
		if p := filepath.Join(in.path, n); isFile(p) {
			fix = fmt.Sprintf("point %s at the token file inside it, e.g. %s", in.source, p)
			break
		}
	}
	return &findings.Finding{
		ID:       findings.IDTokenUnreadable,
		Severity: findings.SeverityError,
		What:     fmt.Sprintf("the token file %s (%s) is a directory holding %s", in.path, in.source, strings.Join(names, ", ")),
		Why:      "the variable must name the token file, the volumeMount's mountPath joined with the serviceAccountToken's path",
		Fix:      fix,
	}
}

// deepestDir returns the longest existing directory prefix of dir ("" if none).
func deepestDir(dir string) string {
	for d := dir; ; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			return d
		}
		if filepath.Dir(d) == d {
			return ""
		}
	}
}

// listDir returns up to 8 visible entry names of dir, sorted; the kubelet's ..data entries are
// implementation details of the volume and left out.
func listDir(dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "..") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	if len(names) > 8 {
		names = append(names[:8], "...")
	}
	return names
}

// isFile reports whether p resolves to a regular file.
func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// pathErrText drops the path an *fs.PathError repeats, since the message names it already.
func pathErrText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
