package creds

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/smithy-go"

	"github.com/credsidecar/credsidecar/internal/clock"
	"github.com/credsidecar/credsidecar/internal/testkit/await"
	"github.com/credsidecar/credsidecar/internal/testkit/observe"
)

const (
	readerRole = "arn:aws:iam::123456789012:role/reader"
	writerRole = "arn:aws:iam::123456789012:role/writer"
)

// TestGroupSharesOneTokenWatch: two roles on one token. The token file is opened once per
// version for both; a role whose trust policy rejects the token leaves the other served; a
// rotation reaches both refresh loops; each role calls STS once per refresh, on its own
// schedule.
func TestGroupSharesOneTokenWatch(t *testing.T) {
	clk := clock.NewFake(t0)
	dir := newProjectedDir(t)
	opens := newOpenCounter(t)
	v1 := opens.rotate(dir, validToken(t))
	api := newFakeSTS(t, clk)
	api.setFail(func(_ int, c stsCall) error {
		if c.role == writerRole {
			return apiErr(403, "AccessDenied", smithy.FaultClient)
		}
		return nil
	})
	logs := newLogCapture()
	reloads := observe.NewRecorder()
	build := func(role string, opts ...Option) *Manager {
		m, err := NewManager(Config{RoleARN: role, TokenFile: dir.path()}, api,
			append([]Option{WithClock(clk), WithLogger(logs.logger()), WithRand(func() float64 { return 0.5 })}, opts...)...)
		if err != nil {
			t.Fatalf("NewManager(%s): %v", role, err)
		}
		return m
	}
	reader, writer := build(readerRole, WithObserver(reloads)), build(writerRole)
	g, err := NewGroup(Role{Name: "reader", Manager: reader}, Role{Name: "writer", Manager: writer})
	if err != nil {
		t.Fatalf("NewGroup: %v", err)
	}
	if err := writer.Run(context.Background()); err == nil {
		t.Fatal("a grouped manager ran on its own: it would start a second token watch")
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := waitChan(t, done, "Group.Run return"); err != nil {
			t.Errorf("Group.Run returned %v, want nil", err)
		}
	})
	// Two refresh loops and one token poll: one watch for the pod.
	settle := func() { await.Timers(t, guard, clk, 3) }
	settle()

	if reader.Servable() == nil {
		t.Fatalf("reader not served while writer is rejected; reader's last error: %v", reader.LastError())
	}
	if writer.Servable() != nil {
		t.Fatal("writer served although STS rejected its token")
	}
	if code := ErrorCode(writer.LastError()); code != "AccessDenied" {
		t.Fatalf("writer's last error %v, want AccessDenied", writer.LastError())
	}
	if n := opens.opens(v1); n != 1 {
		t.Fatalf("token opened %d times for two roles, want 1", n)
	}
	if got := g.Manager("reader"); got != reader || g.Manager("nobody") != nil {
		t.Fatal("Group.Manager does not find the roles by name")
	}

	// A rotation: read once, handed to both; the failing writer retries with it at once.
	rotated := makeJWT(t, k8sClaims(clk.Now(), 24*time.Hour))
	calls := api.count()
	v2 := opens.rotate(dir, rotated)
	reloads.NextReload(t, guard, "TokenReloaded")
	logs.waitFor(t, "token changed; credentials still fresh")
	settle()
	for clk.Now().Before(t0.Add(2 * time.Second)) {
		clk.AdvanceToNext()
		settle()
	}
	var writerRetried bool
	for _, c := range api.callList()[calls:] {
		if c.role == writerRole && c.token == rotated {
			writerRetried = true
		}
		if c.role == readerRole {
			t.Fatalf("reader called STS at %v after a rotation although its credentials were fresh", c.at.Sub(t0))
		}
	}
	if !writerRetried {
		t.Fatal("the rejected role did not retry with the rotated token")
	}
	if n := opens.opens(v2); n != 1 {
		t.Fatalf("rotated token opened %d times for two roles, want 1", n)
	}

	// Three hours: the reader refreshes on its own schedule, one call per refresh (at least
	// Duration - RefreshWindow = 20 min apart); the rejected writer waits its terminal backoff
	// (a minute) between calls. STS failing for one role never shows in the other's calls.
	end := t0.Add(3 * time.Hour)
	for clk.Now().Before(end) {
		clk.AdvanceToNext()
		settle()
	}
	var last = map[string]time.Time{}
	counts := map[string]int{}
	for _, c := range api.callList() {
		counts[c.role]++
		prev, ok := last[c.role]
		last[c.role] = c.at
		if !ok {
			continue
		}
		gap := c.at.Sub(prev)
		switch {
		case c.role == readerRole && gap < 20*time.Minute:
			t.Fatalf("reader called STS %v after its previous call, want one call per refresh (>= 20m)", gap)
		case c.role == writerRole && gap < time.Minute && c.token != rotated:
			t.Fatalf("writer called STS %v after its previous call, want its terminal backoff (>= 1m)", gap)
		}
	}
	// 1 h sessions refreshed with 40 min (to 36 at this jitter) left: a call every 22 min.
	if counts[readerRole] < 8 || counts[readerRole] > 10 {
		t.Fatalf("reader made %d STS calls in 3h, want 8-10 (one per refresh)", counts[readerRole])
	}
	if reader.Servable() == nil || writer.Servable() != nil {
		t.Fatal("after 3h the reader must still be served and the writer not")
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestNewGroupRefuses: the roles of a group share one token watch, so they must read the same
// file at the same interval, under distinct names, each in one group.
func TestNewGroupRefuses(t *testing.T) {
	clk := clock.NewFake(t0)
	api := newFakeSTS(t, clk)
	build := func(cfg Config) *Manager {
		m, err := NewManager(cfg, api, WithClock(clk))
		if err != nil {
			t.Fatalf("NewManager: %v", err)
		}
		return m
	}
	a := build(Config{RoleARN: readerRole, TokenFile: "/var/run/token"})
	other := build(Config{RoleARN: writerRole, TokenFile: "/var/run/other"})
	slow := build(Config{RoleARN: writerRole, TokenFile: "/var/run/token", PollInterval: time.Minute})
	tests := []struct {
		name  string
		roles []Role
		want  string
	}{
		{"none", nil, "no roles"},
		{"nil manager", []Role{{Name: "a"}}, `role "a" has no manager`},
		{"same name", []Role{{Name: "a", Manager: a}, {Name: "a", Manager: build(Config{RoleARN: writerRole, TokenFile: "/var/run/token"})}},
			`role "a" given twice`},
		{"other token", []Role{{Name: "", Manager: a}, {Name: "b", Manager: other}}, `role "b" reads /var/run/other every 30s`},
		{"other interval", []Role{{Name: "", Manager: a}, {Name: "b", Manager: slow}}, `role "b" reads /var/run/token every 1m0s`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewGroup(tt.roles...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewGroup error %v, want one containing %q", err, tt.want)
			}
		})
	}
	if _, err := NewGroup(Role{Name: "", Manager: a}); err != nil {
		t.Fatal(err)
	}
	_, err := NewGroup(Role{Name: "again", Manager: a})
	if err == nil || !strings.Contains(err.Error(), "in a group already") {
		t.Fatalf("a manager joined two groups: %v", err)
	}
}
