package credprocess

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

const fuzzToken = "fuzz-token-Zq8pW3vR"

var fuzzNow = time.Date(2026, 8, 22, 12, 0, 0, 0, time.UTC)

// FuzzInterpret feeds arbitrary endpoint answers to interpret: it never panics, an error never
// carries the token (even when the endpoint echoes it), and a success is a version-1 document
// with an expiry after now.
func FuzzInterpret(f *testing.F) {
	f.Add(200, []byte(`{"AccessKeyId":"ASIAX","SecretAccessKey":"s","Token":"t","Expiration":"2026-08-22T13:00:00Z","AccountId":"123456789012"}`))
	f.Add(200, []byte(`{"AccessKeyId":"ASIAX","SecretAccessKey":"s","Token":"t","Expiration":"2026-08-22T11:00:00Z"}`))
	f.Add(200, []byte(`{"AccessKeyId":"ASIAX","SecretAccessKey":"s","Expiration":"2026-08-22T13:00:00+02:00"}`))
	f.Add(503, []byte(`{"code":"CredentialsUnavailable","message":"not yet","Code":"CredentialsUnavailable","Message":"not yet"}`))
	f.Add(401, []byte(`{"Code":"Unauthorized","Message":"token `+fuzzToken+` is wrong"}`))
	f.Add(500, []byte(`{"Message":"\u0066uzz-token-Zq8pW3vR"}`))
	f.Add(200, []byte(`<html>`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		out, err := interpret(status, body, fuzzToken, "AWS_CONTAINER_AUTHORIZATION_TOKEN", fuzzNow)
		if err != nil {
			if out != nil {
				t.Fatal("output and error together")
			}
			if strings.Contains(err.Error(), fuzzToken) {
				t.Fatalf("error carries the token: %q", err)
			}
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("error is not one line: %q", err)
			}
			return
		}
		if status != 200 {
			t.Fatalf("status %d accepted", status)
		}
		var doc struct {
			Version                                                int
			AccessKeyId, SecretAccessKey, SessionToken, Expiration string
		}
		if err := json.Unmarshal(out, &doc); err != nil {
			t.Fatalf("output is not JSON: %v", err)
		}
		exp, err := time.Parse("2006-01-02T15:04:05Z", doc.Expiration)
		if doc.Version != 1 || doc.AccessKeyId == "" || doc.SecretAccessKey == "" || doc.SessionToken == "" ||
			err != nil || !exp.After(fuzzNow.Add(-time.Second)) {
			t.Fatalf("bad output %s", out)
		}
	})
}
