package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/endpointcreds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	endpointcredsv1 "github.com/aws/aws-sdk-go/aws/credentials/endpointcreds"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/credsidecar/credsidecar/internal/creds"
	"github.com/credsidecar/credsidecar/internal/testkit/await"
	"github.com/credsidecar/credsidecar/internal/testkit/testbed"
)

// TestE2E is issue 3's acceptance, in one environment. The steps run in order: each builds on
// the state the previous one left, and the leak check at the end reads everything the others
// made the sidecar log and count.
func TestE2E(t *testing.T) {
	e := newEnv(t)
	steps := []struct {
		name string
		run  func(*testing.T, *env)
	}{
		{name: "sdk default chains", run: testSDKDefaultChains},
		{name: "rotation mid-run", run: testRotationMidRun},
		{name: "metrics", run: testMetrics},
		{name: "no secrets in logs or metrics", run: testNoSecrets},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) { s.run(t, e) })
	}
}

// Real SDKs find the endpoint through their default chains alone, and the credentials they
// get there work against STS and S3.
func testSDKDefaultChains(t *testing.T, e *env) {
	tests := []struct {
		name         string
		mode         authMode
		run          func(*testing.T, *env, authMode, string) clientResult
		wantProvider string
	}{
		{name: "aws-sdk-go-v2 token file", mode: tokenFile, run: runGoV2, wantProvider: endpointcreds.ProviderName},
		{name: "aws-sdk-go-v2 token value", mode: tokenValue, run: runGoV2, wantProvider: endpointcreds.ProviderName},
		{name: "aws-sdk-go token file", mode: tokenFile, run: runGoV1, wantProvider: endpointcredsv1.ProviderName},
		{name: "aws-sdk-go token value", mode: tokenValue, run: runGoV1, wantProvider: endpointcredsv1.ProviderName},
		{name: "boto3 token file", mode: tokenFile, run: runBoto3, wantProvider: "container-role"},
		{name: "boto3 token value", mode: tokenValue, run: runBoto3, wantProvider: "container-role"},
		// The JavaScript SDK tags credentials with the feature that produced them; "CREDENTIALS_HTTP"
		// is its container-endpoint provider (fromHttp).
		{name: "javascript v3 token file", mode: tokenFile, run: runJS, wantProvider: "CREDENTIALS_HTTP"},
		{name: "javascript v3 token value", mode: tokenValue, run: runJS, wantProvider: "CREDENTIALS_HTTP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := objectKey(tt.name)
			before := e.served(t)
			got := tt.run(t, e, tt.mode, key)
			now := e.served(t)
			if now.AccessKeyID != before.AccessKeyID {
				t.Fatalf("served key changed from %s to %s during the run; no refresh was due",
					creds.MaskKeyID(before.AccessKeyID), creds.MaskKeyID(now.AccessKeyID))
			}
			t.Logf("%s with %s: provider %q, arn %q", tt.name, tt.mode, got.Provider, got.ARN)
			checkClient(t, e, got, tt.wantProvider, now.AccessKeyID, key)
		})
	}
}

// checkClient asserts a client used the credentials the endpoint serves and wrote its object.
func checkClient(t *testing.T, e *env, got clientResult, wantProvider, servedKeyID, key string) {
	t.Helper()
	if got.Provider != wantProvider {
		t.Errorf("credential provider = %q, want %q (the SDK's container-endpoint provider)", got.Provider, wantProvider)
	}
	if !strings.Contains(got.ARN, testbed.DefaultRoleName) {
		t.Errorf("GetCallerIdentity ARN = %q, want it to name the role %s", got.ARN, testbed.DefaultRoleName)
	}
	if got.KeyIDLast4 != last4(servedKeyID) {
		t.Errorf("client's key id ends in %q, the endpoint serves %s", got.KeyIDLast4, creds.MaskKeyID(servedKeyID))
	}
	if got.keyID != "" && got.keyID != servedKeyID {
		t.Errorf("client's key id %s, the endpoint serves %s", creds.MaskKeyID(got.keyID), creds.MaskKeyID(servedKeyID))
	}
	ctx, cancel := context.WithTimeout(t.Context(), guard)
	defer cancel()
	head, err := e.admin.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(e.weed.Bucket()), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("HeadObject %s after the client's PutObject: %v", key, err)
	}
	if aws.ToString(head.ETag) != got.ETag {
		t.Errorf("object ETag = %s, the client's PutObject returned %s", aws.ToString(head.ETag), got.ETag)
	}
}

// A token rotation and a signing-key rotation in the middle of a run fail no request, and the
// next STS call exchanges the new token.
func testRotationMidRun(t *testing.T, e *env) {
	old := e.served(t)
	h := startHammer(t, e)
	await.Receive(t, guard, h.warm, "hammer warm-up")

	oldKid := e.iss.KeyID()
	newKid, err := e.iss.RotateKey()
	if err != nil {
		t.Fatalf("rotate the issuer's signing key: %v", err)
	}
	if newKid == oldKid {
		t.Fatalf("RotateKey kept kid %s", oldKid)
	}
	if err := e.proj.Rotate(); err != nil {
		t.Fatalf("rotate the projected token: %v", err)
	}
	tok := e.recordToken(t)
	hdr, claims, err := testbed.ParseUnverified(tok)
	if err != nil {
		t.Fatalf("parse the rotated token: %v", err)
	}
	if hdr.Kid != newKid {
		t.Fatalf("rotated token signed by kid %s, want the new key %s", hdr.Kid, newKid)
	}
	// The rotated token's expiry tells its TokenReloaded from any other.
	want := time.Unix(claims.Expiry, 0)
	e.events.WaitReload(t, guard, "TokenReloaded for the rotated token", want.Equal)

	// Credentials are issued for an hour and refreshed with 36-40 min left: 25 min on is past
	// the refresh point, and the old credentials still have 35 min to serve meanwhile.
	await.Drain(e.proxy.records)
	e.clk.Advance(25 * time.Minute)
	rec := await.Receive(t, guard, e.proxy.records, "the refresh's AssumeRoleWithWebIdentity call")
	if rec.tokenSHA256 != sha256.Sum256([]byte(tok)) {
		t.Errorf("the refresh exchanged a token other than the rotated one")
	}
	if rec.status != http.StatusOK {
		t.Errorf("the refresh's STS call answered %d, want 200 (a token signed by the new key)", rec.status)
	}
	e.events.WaitUpdate(t, guard, "CredentialsUpdated after the refresh", func(exp time.Time) bool { return exp.After(old.Expiration) })
	cur := e.served(t)
	if cur.AccessKeyID == old.AccessKeyID {
		t.Fatalf("still serving %s after the refresh", creds.MaskKeyID(old.AccessKeyID))
	}

	h.stopAt <- cur.AccessKeyID
	res := await.Receive(t, guard, h.done, "hammer result")
	t.Logf("hammer: %d requests, statuses %v, keys %d", res.requests, res.statuses, len(res.keys))
	if res.failures > 0 {
		t.Errorf("%d of %d credential fetches failed during the rotation; first: %v", res.failures, res.requests, res.firstErr)
	}
	for code, n := range res.statuses {
		if code != http.StatusOK {
			t.Errorf("%d answers with status %d during the rotation, want only 200", n, code)
		}
	}
	if want := []string{old.AccessKeyID, cur.AccessKeyID}; !slices.Equal(res.keys, want) {
		t.Errorf("hammer saw keys %v, want the old then the new one (%v)", maskAll(res.keys), maskAll(want))
	}
	if !res.sawStop {
		t.Errorf("hammer ran out of its %d requests before the rotation was over", hammerMax)
	}

	key := objectKey("aws-sdk-go-v2 after rotation")
	got := runGoV2(t, e, tokenFile, key)
	checkClient(t, e, got, endpointcreds.ProviderName, cur.AccessKeyID, key)
}

const (
	// hammerWarmup requests are made before the rotation starts.
	hammerWarmup = 50
	// hammerMax bounds the hammer; it normally stops long before, once it sees the new key.
	hammerMax = 20000
)

// hammer is an app that fetches credentials over and over while the test rotates everything
// underneath: aws-sdk-go-v2's own endpoint client, without retries, so that one failed answer
// shows, and with every status counted.
type hammer struct {
	warm   chan struct{} // closed after hammerWarmup requests
	stopAt chan string   // the key id after which to stop
	done   chan hammerResult
}

type hammerResult struct {
	requests, failures int
	firstErr           error
	statuses           map[int]int
	keys               []string // distinct key ids, in the order first seen
	sawStop            bool     // stopped on the key asked for, not on hammerMax
}

func startHammer(t *testing.T, e *env) *hammer {
	t.Helper()
	h := &hammer{warm: make(chan struct{}), stopAt: make(chan string, 1), done: make(chan hammerResult, 1)}
	counter := &statusCounter{next: http.DefaultTransport, counts: map[int]int{}}
	p := endpointcreds.New(e.addrs.CredentialsURL(), func(o *endpointcreds.Options) {
		o.HTTPClient = &http.Client{Transport: counter, Timeout: 5 * time.Second}
		o.Retryer = aws.NopRetryer{}
		o.AuthorizationTokenProvider = endpointcreds.TokenProviderFunc(func() (string, error) {
			b, err := os.ReadFile(e.authTokenFile)
			return string(b), err
		})
	})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		var res hammerResult
		stop := ""
		for res.requests < hammerMax && ctx.Err() == nil {
			c, err := p.Retrieve(ctx)
			res.requests++
			if res.requests == hammerWarmup {
				close(h.warm)
			}
			if err != nil {
				if res.failures == 0 {
					res.firstErr = err
				}
				res.failures++
				continue
			}
			e.secrets.addServed(c.AccessKeyID, c.SecretAccessKey, c.SessionToken)
			if !slices.Contains(res.keys, c.AccessKeyID) {
				res.keys = append(res.keys, c.AccessKeyID)
			}
			select {
			case stop = <-h.stopAt:
			default:
			}
			if stop != "" && c.AccessKeyID == stop {
				res.sawStop = true
				break
			}
		}
		res.statuses = counter.snapshot()
		h.done <- res
	}()
	return h
}

// statusCounter counts the status of every answer the hammer gets.
type statusCounter struct {
	next   http.RoundTripper
	mu     sync.Mutex
	counts map[int]int
}

func (c *statusCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(r)
	if err == nil {
		c.mu.Lock()
		c.counts[resp.StatusCode]++
		c.mu.Unlock()
	}
	return resp, err
}

func (c *statusCounter) snapshot() map[int]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[int]int, len(c.counts))
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}

func maskAll(ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = creds.MaskKeyID(id)
	}
	return out
}

// The metrics agree with what really happened: STS calls as the proxy saw them, the token
// rotation, readiness, and no failed answer on the credentials endpoint.
func testMetrics(t *testing.T, e *env) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(e.metricsText(t)))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	var ok, failed int
	for _, r := range e.proxy.list() {
		if r.status == http.StatusOK {
			ok++
		} else {
			failed++
		}
	}
	if ok < 2 {
		t.Errorf("the proxy saw %d successful STS calls, want at least 2 (start-up and the refresh)", ok)
	}
	tests := []struct {
		name   string
		metric string
		labels map[string]string
		check  func(float64) bool
		want   string
	}{
		{name: "successful STS calls", metric: "credsidecar_sts_requests_total", labels: map[string]string{"result": "success"},
			check: func(v float64) bool { return v == float64(ok) }, want: fmt.Sprintf("%d, the proxy's 200 answers", ok)},
		{name: "failed STS calls", metric: "credsidecar_sts_requests_total", labels: map[string]string{"result": "error"},
			check: func(v float64) bool { return v == float64(failed) }, want: fmt.Sprintf("%d, the proxy's other answers", failed)},
		{name: "token reloads", metric: "credsidecar_token_reloads_total",
			check: func(v float64) bool { return v >= 1 }, want: ">= 1"},
		{name: "ready", metric: "credsidecar_ready",
			check: func(v float64) bool { return v == 1 }, want: "1"},
		{name: "credentials answered 200", metric: "credsidecar_http_requests_total",
			labels: map[string]string{"endpoint": "credentials", "code": "200"},
			check:  func(v float64) bool { return v > hammerWarmup }, want: fmt.Sprintf("> %d (the hammer's warm-up alone)", hammerWarmup)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, found := sumMetric(fams, tt.metric, func(l map[string]string) bool {
				for k, want := range tt.labels {
					if l[k] != want {
						return false
					}
				}
				return true
			})
			if !found {
				t.Fatalf("%s%v not exported", tt.metric, tt.labels)
			}
			if !tt.check(v) {
				t.Errorf("%s%v = %v, want %s", tt.metric, tt.labels, v, tt.want)
			}
		})
	}
	t.Run("credentials never answered other than 200", func(t *testing.T) {
		n, _ := sumMetric(fams, "credsidecar_http_requests_total", func(l map[string]string) bool {
			return l["endpoint"] == "credentials" && l["code"] != "200"
		})
		if n != 0 {
			t.Errorf("%v credentials requests answered other than 200, want 0", n)
		}
	})
	// The manager's events are all kept (podenv.Recorder); the proxy's go through a channel.
	if n := e.proxy.dropped.Load(); n != 0 {
		t.Errorf("%d proxy records found their channel full", n)
	}
}

// sumMetric adds up the samples of a counter or gauge whose labels match; found is false
// when the metric is not exported at all.
func sumMetric(fams map[string]*dto.MetricFamily, name string, match func(map[string]string) bool) (sum float64, found bool) {
	fam, ok := fams[name]
	if !ok {
		return 0, false
	}
	for _, m := range fam.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if !match(labels) {
			continue
		}
		switch {
		case m.GetCounter() != nil:
			sum += m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			sum += m.GetGauge().GetValue()
		case m.GetUntyped() != nil:
			sum += m.GetUntyped().GetValue()
		}
	}
	return sum, true
}

// Nothing secret that passed through the sidecar during the whole run reaches a log line (at
// debug level) or a metric. It runs last, so that it sees everything the other steps caused.
func testNoSecrets(t *testing.T, e *env) {
	logs := e.logs.String()
	lines, err := e.logs.Records()
	if err != nil {
		t.Fatalf("captured logs: %v", err)
	}
	metrics := e.metricsText(t)
	served, tokens := e.secrets.snapshot()

	// The check is only as good as what it looks for and where: every credentials set STS
	// issued, every token written, and logs that are really the sidecar's at debug level.
	issued := 0
	for _, r := range e.proxy.list() {
		if r.status == http.StatusOK {
			issued++
		}
	}
	if len(served) != issued {
		t.Errorf("collected %d served credential sets, STS issued %d: the check would miss some", len(served), issued)
	}
	if len(tokens) != e.proj.Rotations() {
		t.Errorf("collected %d projected tokens, the projector wrote %d", len(tokens), e.proj.Rotations())
	}
	levels := map[string]int{}
	for _, l := range lines {
		if lv, ok := l["level"].(string); ok {
			levels[lv]++
		}
	}
	if levels["DEBUG"] == 0 || levels["INFO"] == 0 {
		t.Errorf("log levels captured %v, want DEBUG and INFO lines", levels)
	}
	for _, c := range served {
		if !strings.Contains(logs, creds.MaskKeyID(c.accessKeyID)) {
			t.Errorf("logs never name %s, the masked form of a served key id", creds.MaskKeyID(c.accessKeyID))
		}
	}

	needles := map[string]string{"auth token": e.authToken(t)}
	for i, c := range served {
		needles[fmt.Sprintf("access key id %d", i)] = c.accessKeyID
		needles[fmt.Sprintf("secret access key %d", i)] = c.secretAccessKey
		addToken(needles, fmt.Sprintf("session token %d", i), c.sessionToken)
	}
	for i, tok := range tokens {
		addToken(needles, fmt.Sprintf("projected token %d", i), tok)
	}
	haystacks := map[string]string{"logs": logs, "decoded log values": logValues(lines), "metrics": metrics}
	for hay, text := range haystacks {
		for name, needle := range needles {
			if needle == "" {
				t.Errorf("%s is empty: nothing to look for", name)
				continue
			}
			if strings.Contains(text, needle) {
				t.Errorf("%s contain the %s", hay, name)
			}
		}
	}
	t.Logf("looked for %d secrets in %d log lines (%v) and %d bytes of metrics", len(needles), len(lines), levels, len(metrics))
}

// addToken adds a token, and for a JWT its payload and signature, each of which would leak
// the token's identity or prove possession.
func addToken(needles map[string]string, name, tok string) {
	needles[name] = tok
	if parts := strings.Split(tok, "."); len(parts) == 3 {
		needles[name+" payload"] = parts[1]
		needles[name+" signature"] = parts[2]
	}
}

// logValues is every string value in the log records, JSON escapes undone, one per line.
func logValues(lines []map[string]any) string {
	var b strings.Builder
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			b.WriteString(v)
			b.WriteByte('\n')
		case map[string]any:
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		default:
			j, _ := json.Marshal(v)
			b.Write(j)
			b.WriteByte('\n')
		}
	}
	for _, l := range lines {
		walk(l)
	}
	return b.String()
}
