package diagnose

import (
	"fmt"
	"github.com/credsidecar/credsidecar/internal/findings"
	"io"
	"strings"
	"time"

	"github.com/credsidecar/credsidecar/internal/policy"
)

// WriteJSON writes the report as the stable --output json document.
func (r *Report) WriteJSON(w io.Writer) error {
	b, err := policy.MarshalIndent(r)
	if err != nil {
		return fmt.Errorf("encode check report: %w", err)
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("write check report: %w", err)
	}
	return nil
}

// WriteText writes the report for a person: the token's claims, the role, STS's and S3's
// answers, then one line per finding and the verdict, on one screen.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	now := r.CheckedAt
	// Every value is printed through printable: token claims and STS messages come from outside.
	row := func(indent int, label, format string, args ...any) {
		fmt.Fprintf(&b, "%s%-*s %s\n", strings.Repeat(" ", indent), 18-indent, label, findings.Printable(fmt.Sprintf(format, args...)))
	}
	row(0, "token", "%s (%s)", r.TokenFile, r.TokenFileSource)
	if t := r.Token; t != nil {
		row(2, "iss", "%s", t.Issuer)
		row(2, "sub", "%s", t.Subject)
		if len(t.Audience) == 0 {
			row(2, "aud", "(none)")
		}
		for i, a := range t.Audience {
			label := "aud"
			if i > 0 {
				label = ""
			}
			row(2, label, "%s", a)
		}
		if t.IssuedAt != nil {
			row(2, "iat", "%s (%s ago)", t.IssuedAt.Format(time.RFC3339), findings.RoundDuration(now.Sub(*t.IssuedAt)))
		}
		if t.ExpiresAt != nil {
			rel := "in " + findings.RoundDuration(t.ExpiresAt.Sub(now)).String()
			if !now.Before(*t.ExpiresAt) {
				rel = "EXPIRED " + findings.RoundDuration(now.Sub(*t.ExpiresAt)).String() + " ago"
			}
			if t.LifetimeSeconds > 0 {
				rel += fmt.Sprintf("; lifetime %s", time.Duration(t.LifetimeSeconds)*time.Second)
			}
			row(2, "exp", "%s (%s)", t.ExpiresAt.Format(time.RFC3339), rel)
		}
		if t.Namespace != "" || t.ServiceAccount != "" {
			row(2, "sa", "namespace %s, service account %s", valueOr(t.Namespace, "?"), valueOr(t.ServiceAccount, "?"))
		}
		if t.Pod != "" {
			row(2, "pod", "%s", t.Pod)
		}
	}
	row(0, "role", "%s", r.RoleARN)
	where := r.STSEndpoint
	if r.Region != "" {
		where += " (region " + r.Region + ")"
	}
	row(0, "sts", "%s, session %s, %s", where, valueOr(r.SessionName, "-"), time.Duration(r.DurationSeconds)*time.Second)
	s := r.STS
	switch {
	case !s.Called:
		row(2, "assume", "not called: no usable token")
	case s.OK:
		exp := ""
		if s.Expiration != nil {
			exp = fmt.Sprintf(", expires %s (in %s)", s.Expiration.Format(time.RFC3339), findings.RoundDuration(s.Expiration.Sub(now)))
		}
		row(2, "assume", "ok: %s%s", joinNonEmpty(", ", s.AssumedRoleARN, "key "+s.AccessKeyID), exp)
		if s.CallerError != "" {
			row(2, "whoami", "failed: %s", s.CallerError)
		} else {
			row(2, "whoami", "ok: %s, account %s", s.CallerARN, s.CallerAccount)
		}
	default:
		row(2, "assume", "failed: %s", joinNonEmpty(": ", s.Code, s.Message))
	}
	if p := r.S3; p != nil && p.Skipped != "" {
		row(0, "s3", "bucket %s not probed: %s", p.Bucket, p.Skipped)
	} else if p != nil {
		style := "virtual-hosted style"
		if p.PathStyle {
			style = "path style"
		}
		row(0, "s3", "bucket %s at %s (%s), probe object %s", p.Bucket, p.Endpoint, style, p.Key)
		for _, a := range p.Actions {
			if a.OK {
				row(2, a.Action, "ok")
			} else {
				row(2, a.Action, "failed: %s", joinNonEmpty(": ", a.Code, a.Message))
			}
		}
	}
	b.WriteByte('\n')
	for _, f := range r.Findings {
		b.WriteString(f.String())
		b.WriteByte('\n')
	}
	verdict := "OK"
	if !r.OK {
		verdict = "FAIL"
	}
	fmt.Fprintf(&b, "%s: %d error(s), %d warning(s)\n", verdict, r.Errors, r.Warnings)
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write check report: %w", err)
	}
	return nil
}

func joinNonEmpty(sep string, parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, sep)
}
