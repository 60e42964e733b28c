package diagnose

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/credsidecar/credsidecar/internal/findings"
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
	t := &textWriter{now: r.CheckedAt}
	t.row(0, "token", "%s (%s)", r.TokenFile, r.TokenFileSource)
	if r.Token != nil {
		t.token(r.Token)
	}
	if r.Role != "" {
		t.row(0, "role", "%s (%s)", r.RoleARN, r.Role)
	} else {
		t.row(0, "role", "%s", r.RoleARN)
	}
	t.sts(r)
	if r.S3 != nil {
		t.s3(r.S3)
	}
	t.b.WriteByte('\n')
	for _, f := range r.Findings {
		t.b.WriteString(f.String())
		t.b.WriteByte('\n')
	}
	verdict := "OK"
	if !r.OK {
		verdict = "FAIL"
	}
	fmt.Fprintf(&t.b, "%s: %d error(s), %d warning(s)\n", verdict, r.Errors, r.Warnings)
	if _, err := io.WriteString(w, t.b.String()); err != nil {
		return fmt.Errorf("write check report: %w", err)
	}
	return nil
}

// textWriter builds the text report as aligned label/value rows; times are relative to now,
// the moment of the check, so the report reads the same whenever it is printed.
type textWriter struct {
	b   strings.Builder
	now time.Time
}

// row writes one aligned row; every value goes through findings.Printable, since token claims
// and STS messages come from outside.
func (t *textWriter) row(indent int, label, format string, args ...any) {
	fmt.Fprintf(&t.b, "%s%-*s %s\n", strings.Repeat(" ", indent), 18-indent, label, findings.Printable(fmt.Sprintf(format, args...)))
}

// token writes the token's claims, one audience per row.
func (t *textWriter) token(tok *TokenSummary) {
	t.row(2, "iss", "%s", tok.Issuer)
	t.row(2, "sub", "%s", tok.Subject)
	if len(tok.Audience) == 0 {
		t.row(2, "aud", "(none)")
	}
	for i, a := range tok.Audience {
		label := "aud"
		if i > 0 {
			label = ""
		}
		t.row(2, label, "%s", a)
	}
	if tok.IssuedAt != nil {
		t.row(2, "iat", "%s (%s ago)", tok.IssuedAt.Format(time.RFC3339), findings.RoundDuration(t.now.Sub(*tok.IssuedAt)))
	}
	if tok.ExpiresAt != nil {
		rel := "in " + findings.RoundDuration(tok.ExpiresAt.Sub(t.now)).String()
		if !t.now.Before(*tok.ExpiresAt) {
			rel = "EXPIRED " + findings.RoundDuration(t.now.Sub(*tok.ExpiresAt)).String() + " ago"
		}
		if tok.LifetimeSeconds > 0 {
			rel += fmt.Sprintf("; lifetime %s", time.Duration(tok.LifetimeSeconds)*time.Second)
		}
		t.row(2, "exp", "%s (%s)", tok.ExpiresAt.Format(time.RFC3339), rel)
	}
	if tok.Namespace != "" || tok.ServiceAccount != "" {
		t.row(2, "sa", "namespace %s, service account %s", valueOr(tok.Namespace, "?"), valueOr(tok.ServiceAccount, "?"))
	}
	if tok.Pod != "" {
		t.row(2, "pod", "%s", tok.Pod)
	}
}

// sts writes where STS is and what it answered to both calls.
func (t *textWriter) sts(r *Report) {
	where := r.STSEndpoint
	if r.Region != "" {
		where += " (region " + r.Region + ")"
	}
	t.row(0, "sts", "%s, session %s, %s", where, valueOr(r.SessionName, "-"), time.Duration(r.DurationSeconds)*time.Second)
	s := r.STS
	switch {
	case !s.Called:
		t.row(2, "assume", "not called: no usable token")
	case s.OK:
		exp := ""
		if s.Expiration != nil {
			exp = fmt.Sprintf(", expires %s (in %s)", s.Expiration.Format(time.RFC3339), findings.RoundDuration(s.Expiration.Sub(t.now)))
		}
		t.row(2, "assume", "ok: %s%s", joinNonEmpty(", ", s.AssumedRoleARN, "key "+s.AccessKeyID), exp)
		if s.CallerError != "" {
			t.row(2, "whoami", "failed: %s", s.CallerError)
		} else {
			t.row(2, "whoami", "ok: %s, account %s", s.CallerARN, s.CallerAccount)
		}
	default:
		t.row(2, "assume", "failed: %s", joinNonEmpty(": ", s.Code, s.Message))
	}
}

// s3 writes the probed bucket and each action's answer, or why it was not probed.
func (t *textWriter) s3(p *S3Result) {
	if p.Skipped != "" {
		t.row(0, "s3", "bucket %s not probed: %s", p.Bucket, p.Skipped)
		return
	}
	style := "virtual-hosted style"
	if p.PathStyle {
		style = "path style"
	}
	t.row(0, "s3", "bucket %s at %s (%s), probe object %s", p.Bucket, p.Endpoint, style, p.Key)
	for _, a := range p.Actions {
		if a.OK {
			t.row(2, a.Action, "ok")
		} else {
			t.row(2, a.Action, "failed: %s", joinNonEmpty(": ", a.Code, a.Message))
		}
	}
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
