package creds

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestNewManagerConfig(t *testing.T) {
	ok := Config{RoleARN: testRole, TokenFile: "/var/run/secrets/token"}
	tests := []struct {
		name    string
		edit    func(c *Config)
		wantErr []string
	}{
		{name: "defaults", edit: func(*Config) {}},
		{name: "explicit values", edit: func(c *Config) {
			c.SessionName, c.Duration, c.RefreshWindow, c.MinRemaining, c.PollInterval = "s.1", 2*time.Hour, time.Hour, 10*time.Minute, time.Minute
		}},
		{name: "no role", edit: func(c *Config) { c.RoleARN = "" }, wantErr: []string{"RoleARN \"\""}},
		{name: "role not an arn", edit: func(c *Config) { c.RoleARN = "my-role-name-is-long-enough" }, wantErr: []string{"RoleARN \"my-role-name-is-long-enough\""}},
		{name: "no token file", edit: func(c *Config) { c.TokenFile = "" }, wantErr: []string{"TokenFile is empty"}},
		{name: "bad session name", edit: func(c *Config) { c.SessionName = "a b" }, wantErr: []string{"SessionName \"a b\""}},
		{name: "duration too short", edit: func(c *Config) { c.Duration = 10 * time.Minute }, wantErr: []string{"Duration 10m0s"}},
		{name: "duration too long", edit: func(c *Config) { c.Duration = 13 * time.Hour }, wantErr: []string{"duration 13h0m0s"}},
		{name: "duration not whole seconds", edit: func(c *Config) { c.Duration = time.Hour + time.Millisecond }, wantErr: []string{"whole seconds"}},
		{name: "window not inside duration", edit: func(c *Config) { c.Duration = 40 * time.Minute }, wantErr: []string{"RefreshWindow 40m0s", "Duration 40m0s"}},
		{name: "floor above window", edit: func(c *Config) { c.MinRemaining = 45 * time.Minute }, wantErr: []string{"RefreshWindow 40m0s", "MinRemaining 45m0s"}},
		{name: "negative poll", edit: func(c *Config) { c.PollInterval = -time.Second }, wantErr: []string{"PollInterval -1s"}},
		{name: "all problems at once", edit: func(c *Config) { c.RoleARN, c.TokenFile = "", "" }, wantErr: []string{"RoleARN", "TokenFile"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.edit(&cfg)
			m, err := NewManager(cfg, newFakeSTS(t, nil))
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("NewManager() error = %v", err)
				}
				want := cfg
				for _, d := range []struct {
					got *time.Duration
					def time.Duration
				}{{&want.Duration, DefaultDuration}, {&want.RefreshWindow, DefaultRefreshWindow}, {&want.MinRemaining, DefaultMinRemaining},
					{&want.PollInterval, DefaultPollInterval}, {&want.CallTimeout, DefaultCallTimeout}} {
					if *d.got == 0 {
						*d.got = d.def
					}
				}
				if !reflect.DeepEqual(m.cfg, want) {
					t.Errorf("config = %+v, want %+v", m.cfg, want)
				}
				return
			}
			if err == nil {
				t.Fatal("NewManager() accepted an invalid config")
			}
			if !strings.HasPrefix(err.Error(), "credentials config: ") {
				t.Errorf("error %q does not name the operation", err)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	if _, err := NewManager(ok, nil); err == nil {
		t.Error("NewManager with a nil STS client succeeded")
	}
}

func TestAccountFromARN(t *testing.T) {
	tests := []struct{ name, arn, want string }{
		{name: "assumed role", arn: "arn:aws:sts::123456789012:assumed-role/app/shop.uploader", want: "123456789012"},
		{name: "iam role", arn: "arn:aws:iam::210987654321:role/app", want: "210987654321"},
		{name: "china partition", arn: "arn:aws-cn:sts::123456789012:assumed-role/app/s", want: "123456789012"},
		{name: "no account", arn: "arn:aws:s3:::bucket", want: ""},
		{name: "account not digits", arn: "arn:aws:sts::12345678901x:assumed-role/a/b", want: ""},
		{name: "not an arn", arn: "AROATEST:session", want: ""},
		{name: "empty", arn: "", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := accountFromARN(tt.arn); got != tt.want {
				t.Errorf("accountFromARN(%q) = %q, want %q", tt.arn, got, tt.want)
			}
		})
	}
}
