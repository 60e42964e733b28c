package creds

import (
	"context"
	"errors"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/aws-sdk-go-v2/service/sts/types"
)

// stsFaultServer answers every AssumeRoleWithWebIdentity with an STS error document. It is a
// fake only to inject faults (5xx, throttling, rejections) that SeaweedFS cannot produce on
// demand; success paths are tested against SeaweedFS in the integration tests.
type stsFaultServer struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []recordedRequest
}

type recordedRequest struct {
	auth   string
	action string
	form   map[string]string
}

func newSTSFaultServer(t *testing.T, status int, code, message func(form map[string]string) string) *stsFaultServer {
	t.Helper()
	s := &stsFaultServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			t.Errorf("parse STS request: %v", err)
		}
		form := map[string]string{}
		for k := range r.PostForm {
			form[k] = r.PostForm.Get(k)
		}
		s.mu.Lock()
		s.reqs = append(s.reqs, recordedRequest{auth: r.Header.Get("Authorization"), action: form["Action"], form: form})
		s.mu.Unlock()
		kind := "Sender"
		if status >= 500 {
			kind = "Receiver"
		}
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(status)
		fmt.Fprintf(w, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error><Type>%s</Type><Code>%s</Code><Message>%s</Message></Error>
  <RequestId>4b2c1a2e-0000-0000-0000-000000000000</RequestId>
</ErrorResponse>`, kind, html.EscapeString(code(form)), html.EscapeString(message(form)))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *stsFaultServer) requests() []recordedRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]recordedRequest(nil), s.reqs...)
}

func fixed(s string) func(map[string]string) string {
	return func(map[string]string) string { return s }
}

func assumeInput(token string) *sts.AssumeRoleWithWebIdentityInput {
	return &sts.AssumeRoleWithWebIdentityInput{
		RoleArn:          aws.String(testRole),
		RoleSessionName:  aws.String("shop.uploader"),
		WebIdentityToken: aws.String(token),
		DurationSeconds:  aws.Int32(3600),
	}
}

// The real SDK client against real HTTP answers: one attempt per call (our backoff counts
// them), unsigned, the given endpoint, and the error shapes Classify expects.
func TestNewSTSClientFaults(t *testing.T) {
	// Whatever the sidecar's own environment says must not reach the client.
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAENVIRONMENTKEY00")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "environment-secret")
	t.Setenv("AWS_ROLE_ARN", "arn:aws:iam::999999999999:role/other")
	t.Setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
	t.Setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:1")
	t.Setenv("AWS_MAX_ATTEMPTS", "5")

	tests := []struct {
		name      string
		status    int
		code      string
		wantClass Class
		wantCode  string
		wantType  any
	}{
		{name: "500 InternalFailure", status: 500, code: "InternalFailure", wantClass: Retry, wantCode: "InternalFailure"},
		{name: "503 ServiceUnavailable", status: 503, code: "ServiceUnavailable", wantClass: Retry, wantCode: "ServiceUnavailable"},
		{name: "400 Throttling", status: 400, code: "Throttling", wantClass: Retry, wantCode: "Throttling"},
		{name: "400 IDPCommunicationError", status: 400, code: "IDPCommunicationError", wantClass: Retry, wantCode: "IDPCommunicationError",
			wantType: new(*types.IDPCommunicationErrorException)},
		{name: "400 InvalidIdentityToken", status: 400, code: "InvalidIdentityToken", wantClass: Terminal, wantCode: "InvalidIdentityToken",
			wantType: new(*types.InvalidIdentityTokenException)},
		{name: "403 AccessDenied", status: 403, code: "AccessDenied", wantClass: Terminal, wantCode: "AccessDenied"},
		{name: "400 ExpiredTokenException", status: 400, code: "ExpiredTokenException", wantClass: Terminal, wantCode: "ExpiredTokenException",
			wantType: new(*types.ExpiredTokenException)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newSTSFaultServer(t, tt.status, fixed(tt.code), fixed("injected"))
			client := NewSTSClient("eu-west-1", srv.URL)
			tok := validToken(t)
			_, err := client.AssumeRoleWithWebIdentity(context.Background(), assumeInput(tok))
			if err == nil {
				t.Fatal("AssumeRoleWithWebIdentity succeeded against a fault")
			}
			if got := Classify(err); got != tt.wantClass {
				t.Errorf("Classify(%v) = %v, want %v", err, got, tt.wantClass)
			}
			if got := ErrorCode(err); got != tt.wantCode {
				t.Errorf("ErrorCode(%v) = %q, want %q", err, got, tt.wantCode)
			}
			if tt.wantType != nil && !errors.As(err, tt.wantType) {
				t.Errorf("error %v is not a %T", err, tt.wantType)
			}
			reqs := srv.requests()
			if len(reqs) != 1 {
				t.Fatalf("server saw %d requests for one call, want 1 (SDK retries must be off)", len(reqs))
			}
			r := reqs[0]
			if r.auth != "" {
				t.Errorf("request signed (Authorization %q), want unsigned", r.auth)
			}
			want := map[string]string{"Action": "AssumeRoleWithWebIdentity", "RoleArn": testRole, "RoleSessionName": "shop.uploader",
				"DurationSeconds": "3600", "WebIdentityToken": tok}
			for k, v := range want {
				if r.form[k] != v {
					t.Errorf("form %s = %q, want %q", k, r.form[k], v)
				}
			}
		})
	}
}

func TestNewSTSClientNetworkFaults(t *testing.T) {
	t.Run("connection refused", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		_, err = NewSTSClient("eu-west-1", "http://"+addr).AssumeRoleWithWebIdentity(context.Background(), assumeInput(validToken(t)))
		if Classify(err) != Retry || ErrorCode(err) != CodeNetwork {
			t.Errorf("connection refused: %v classified %v/%s, want retry/%s", err, Classify(err), ErrorCode(err), CodeNetwork)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}))
		defer srv.Close()
		defer close(release)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := NewSTSClient("eu-west-1", srv.URL).AssumeRoleWithWebIdentity(ctx, assumeInput(validToken(t)))
		if Classify(err) != Retry || ErrorCode(err) != CodeTimeout {
			t.Errorf("timeout: %v classified %v/%s, want retry/%s", err, Classify(err), ErrorCode(err), CodeTimeout)
		}
	})
}

// End to end through the real SDK: a server that echoes the token in its error message must
// not get it into a log line or LastError, and the log names the cause with the token's claims.
func TestManagerWithRealClientRedactsEchoedToken(t *testing.T) {
	srv := newSTSFaultServer(t, 400, fixed("InvalidIdentityToken"), func(form map[string]string) string {
		return "Token " + form["WebIdentityToken"] + " is not from a registered provider"
	})
	h := newHarness(t)
	tok := validToken(t)
	h.dir.write(tok)
	h.start(func(m *Manager) { m.api = NewSTSClient("eu-west-1", srv.URL) })

	rec := h.logs.waitFor(t, "fetch credentials failed", `"code":"InvalidIdentityToken"`, "[token]", "cause of InvalidIdentityToken")
	if rec["token_sub"] != "system:serviceaccount:shop:uploader" {
		t.Errorf("log token_sub = %v, want the token's subject", rec["token_sub"])
	}
	err := h.m.LastError()
	var iit *types.InvalidIdentityTokenException
	if !errors.As(err, &iit) {
		t.Errorf("LastError() = %v, want it to unwrap to the SDK's InvalidIdentityTokenException", err)
	}
	parts := strings.Split(tok, ".")
	for _, s := range []string{tok, parts[1], parts[2]} {
		if strings.Contains(h.logs.String(), s) || strings.Contains(err.Error(), s) {
			t.Fatal("token text reached the logs or LastError")
		}
	}
	if n := len(srv.requests()); n != 1 {
		t.Errorf("server saw %d requests, want 1", n)
	}
}
