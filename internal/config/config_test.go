package config

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/credsidecar/credsidecar/internal/testkit/goldenfile"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

const (
	testARN   = "arn:aws:iam::123456789012:role/app"
	chainARN1 = "arn:aws:iam::210987654321:role/shared-data"
	chainARN2 = "arn:aws:iam::210987654321:role/reports-writer"
	// chainARN3 has a comma, which IAM allows in names: only the flag can give it.
	chainARN3  = "arn:aws:iam::210987654321:role/path/reports,writer"
	testPolicy = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"*"}]}`
)

func getenv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// baseEnv is the least a pod must set.
func baseEnv() map[string]string {
	return map[string]string{
		"AWS_ROLE_ARN":                testARN,
		"AWS_WEB_IDENTITY_TOKEN_FILE": "/var/run/secrets/eks.amazonaws.com/serviceaccount/token",
		"AWS_REGION":                  "eu-west-1",
	}
}

func withEnv(extra map[string]string, drop ...string) map[string]string {
	m := baseEnv()
	for _, k := range drop {
		delete(m, k)
	}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

func TestParse(t *testing.T) {
	defaults := Config{
		RoleARN:            testARN,
		TokenFile:          "/var/run/secrets/eks.amazonaws.com/serviceaccount/token",
		Region:             "eu-west-1",
		Duration:           time.Hour,
		RefreshWindow:      40 * time.Minute,
		MinRemaining:       5 * time.Minute,
		TokenPollInterval:  30 * time.Second,
		ShutdownTimeout:    5 * time.Second,
		Listen:             "127.0.0.1:9910",
		AuthTokenFile:      "/var/run/credsidecar/auth-token",
		MetricsListen:      ":9912",
		CredentialsProfile: "default",
		LogFormat:          "json",
		LogLevel:           slog.LevelInfo,
	}
	tests := []struct {
		name   string
		args   []string
		env    map[string]string
		modify func(c *Config)
	}{
		{name: "defaults", env: baseEnv()},
		{name: "flags only", env: map[string]string{}, args: []string{
			"--role-arn", testARN, "--token-file=/var/run/secrets/eks.amazonaws.com/serviceaccount/token", "-region", "eu-west-1"}},
		{name: "flag beats env", env: withEnv(map[string]string{"CREDSIDECAR_DURATION": "2h"}), args: []string{"--duration=3h"},
			modify: func(c *Config) { c.Duration = 3 * time.Hour }},
		{name: "env used when no flag", env: withEnv(map[string]string{"CREDSIDECAR_DURATION": "7200"}),
			modify: func(c *Config) { c.Duration = 2 * time.Hour }},
		{name: "empty env counts as unset", env: withEnv(map[string]string{"CREDSIDECAR_DURATION": ""})},
		{name: "AWS_DEFAULT_REGION when AWS_REGION unset", env: withEnv(map[string]string{"AWS_DEFAULT_REGION": "us-gov-west-1"}, "AWS_REGION"),
			modify: func(c *Config) { c.Region = "us-gov-west-1" }},
		{name: "AWS_REGION beats AWS_DEFAULT_REGION", env: withEnv(map[string]string{"AWS_DEFAULT_REGION": "us-east-1"})},
		{name: "endpoint without region", env: withEnv(map[string]string{"AWS_ENDPOINT_URL": "http://127.0.0.1:8333"}, "AWS_REGION"),
			modify: func(c *Config) { c.Region, c.STSEndpoint = "", "http://127.0.0.1:8333" }},
		{name: "AWS_ENDPOINT_URL_STS beats AWS_ENDPOINT_URL", env: withEnv(map[string]string{
			"AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_ENDPOINT_URL_STS": "https://sts.eu-west-1.amazonaws.com"}),
			modify: func(c *Config) { c.STSEndpoint = "https://sts.eu-west-1.amazonaws.com" }},
		{name: "session name from the downward API", env: withEnv(map[string]string{"POD_NAMESPACE": "shop", "POD_NAME": "cart-7d9f"}),
			modify: func(c *Config) { c.SessionName = "shop.cart-7d9f" }},
		{name: "session name fitted", env: withEnv(map[string]string{"POD_NAMESPACE": "shop", "POD_NAME": "cart:" + strings.Repeat("x", 70)}),
			modify: func(c *Config) { c.SessionName = "shop.cart-" + strings.Repeat("x", 54) }},
		{name: "session name left to the token without both names", env: withEnv(map[string]string{"POD_NAME": "cart-7d9f"})},
		{name: "explicit session name beats the downward API", env: withEnv(map[string]string{
			"POD_NAMESPACE": "shop", "POD_NAME": "cart", "AWS_ROLE_SESSION_NAME": "my@session"}),
			modify: func(c *Config) { c.SessionName = "my@session" }},
		{name: "partition aws-cn with a role path", env: withEnv(map[string]string{"AWS_ROLE_ARN": "arn:aws-cn:iam::123456789012:role/team/a/app+x=1,y.z@w-v_u"}),
			modify: func(c *Config) { c.RoleARN = "arn:aws-cn:iam::123456789012:role/team/a/app+x=1,y.z@w-v_u" }},
		{name: "ephemeral ports", env: baseEnv(), args: []string{"--listen=127.0.0.1:0", "--metrics-listen=127.0.0.1:0"},
			modify: func(c *Config) { c.Listen, c.MetricsListen = "127.0.0.1:0", "127.0.0.1:0" }},
		{name: "IPv6 loopback", env: withEnv(map[string]string{"CREDSIDECAR_LISTEN": "[::1]:9910"}),
			modify: func(c *Config) { c.Listen = "[::1]:9910" }},
		{name: "non-loopback allowed by flag", env: baseEnv(), args: []string{"--listen=10.1.2.3:9910", "--allow-non-loopback"},
			modify: func(c *Config) { c.Listen, c.AllowNonLoopback = "10.1.2.3:9910", true }},
		{name: "non-loopback allowed by env", env: withEnv(map[string]string{"CREDSIDECAR_LISTEN": ":9910", "CREDSIDECAR_ALLOW_NON_LOOPBACK": "true"}),
			modify: func(c *Config) { c.Listen, c.AllowNonLoopback = ":9910", true }},
		{name: "flag false beats env true", env: withEnv(map[string]string{"CREDSIDECAR_ALLOW_NON_LOOPBACK": "true"}), args: []string{"--allow-non-loopback=false"}},
		{name: "logging", env: withEnv(map[string]string{"CREDSIDECAR_LOG_FORMAT": "text", "CREDSIDECAR_LOG_LEVEL": "debug"}),
			modify: func(c *Config) { c.LogFormat, c.LogLevel = "text", slog.LevelDebug }},
		{name: "every duration", env: baseEnv(), args: []string{"--duration=12h", "--refresh-window=2h", "--min-remaining=15m",
			"--token-poll-interval=5s", "--shutdown-timeout=20s"},
			modify: func(c *Config) {
				c.Duration, c.RefreshWindow, c.MinRemaining = 12*time.Hour, 2*time.Hour, 15*time.Minute
				c.TokenPollInterval, c.ShutdownTimeout = 5*time.Second, 20*time.Second
			}},
		{name: "largest refresh window for 1h", env: baseEnv(), args: []string{"--refresh-window=54m31s"},
			modify: func(c *Config) { c.RefreshWindow = 54*time.Minute + 31*time.Second }},
		{name: "chain by repeated flags", env: baseEnv(), args: []string{"--chain-role-arn", chainARN1,
			"--chain-external-id=ext-1", "--chain-role-arn=" + chainARN3, "--chain-external-id="},
			modify: func(c *Config) {
				c.ChainRoleARNs, c.ChainExternalIDs = []string{chainARN1, chainARN3}, []string{"ext-1", ""}
			}},
		{name: "named roles by flags, with a chain and policies", env: baseEnv(), args: []string{
			"--role", "reader=" + chainARN1, "--role=writer=" + chainARN2, "--role-chain-role-arn=writer=" + chainARN3,
			"--role-chain-external-id=writer=ext-9", "--role-session-policy-arn=reader=arn:aws:iam::aws:policy/ReadOnlyAccess",
			`--role-session-policies={"reader": {"Version": "2012-10-17"}, "writer": "{\"Version\":\"2012-10-17\"}"}`},
			modify: func(c *Config) {
				c.Roles = []Role{
					{Name: "reader", ARN: chainARN1, SessionPolicyARNs: []string{"arn:aws:iam::aws:policy/ReadOnlyAccess"},
						SessionPolicy: `{"Version": "2012-10-17"}`},
					{Name: "writer", ARN: chainARN2, ChainRoleARNs: []string{chainARN3}, ChainExternalIDs: []string{"ext-9"},
						SessionPolicy: `{"Version":"2012-10-17"}`},
				}
			}},
		{name: "named roles only, by variable", env: withEnv(map[string]string{"CREDSIDECAR_ROLES": "reader=" + chainARN1 + ", writer=" + chainARN2}, "AWS_ROLE_ARN"),
			modify: func(c *Config) {
				c.RoleARN = ""
				c.Roles = []Role{{Name: "reader", ARN: chainARN1}, {Name: "writer", ARN: chainARN2}}
			}},
		{name: "chain by variables", env: withEnv(map[string]string{"CREDSIDECAR_CHAIN_ROLE_ARNS": chainARN1 + "," + chainARN2,
			"CREDSIDECAR_CHAIN_EXTERNAL_IDS": ",ext-2"}),
			modify: func(c *Config) {
				c.ChainRoleARNs, c.ChainExternalIDs = []string{chainARN1, chainARN2}, []string{"", "ext-2"}
			}},
		{name: "flags replace the variable's list", env: withEnv(map[string]string{"CREDSIDECAR_CHAIN_ROLE_ARNS": chainARN1 + "," + chainARN2}),
			args: []string{"--chain-role-arn=" + chainARN2}, modify: func(c *Config) { c.ChainRoleARNs = []string{chainARN2} }},
		{name: "chain with a long duration", env: baseEnv(), args: []string{"--chain-role-arn=" + chainARN1, "--duration=12h",
			"--refresh-window=54m31s"}, modify: func(c *Config) {
			c.ChainRoleARNs, c.Duration, c.RefreshWindow = []string{chainARN1}, 12*time.Hour, 54*time.Minute+31*time.Second
		}},
		{name: "session policies", env: withEnv(map[string]string{"CREDSIDECAR_SESSION_POLICY": testPolicy,
			"CREDSIDECAR_SESSION_POLICY_ARNS": "arn:aws:iam::aws:policy/ReadOnlyAccess,arn:aws-cn:iam::123456789012:policy/team/boundary"}),
			modify: func(c *Config) {
				c.SessionPolicy = testPolicy
				c.SessionPolicyARNs = []string{"arn:aws:iam::aws:policy/ReadOnlyAccess", "arn:aws-cn:iam::123456789012:policy/team/boundary"}
			}},
		{name: "imds and credentials file", env: withEnv(map[string]string{"CREDSIDECAR_IMDS_LISTEN": "127.0.0.1:9911",
			"CREDSIDECAR_CREDENTIALS_FILE": "/var/run/credsidecar-files/credentials", "CREDSIDECAR_CREDENTIALS_PROFILE": "app.ci"}),
			modify: func(c *Config) {
				c.IMDSListen, c.CredentialsFile, c.CredentialsProfile = "127.0.0.1:9911", "/var/run/credsidecar-files/credentials", "app.ci"
			}},
		{name: "imds on IPv6 loopback, ports chosen by the kernel", env: baseEnv(), args: []string{"--imds-listen=[::1]:0",
			"--listen=127.0.0.1:0", "--metrics-listen=127.0.0.1:0"},
			modify: func(c *Config) { c.IMDSListen, c.Listen, c.MetricsListen = "[::1]:0", "127.0.0.1:0", "127.0.0.1:0" }},
		{name: "plain http STS off loopback, allowed explicitly", env: baseEnv(),
			args:   []string{"--sts-endpoint=http://sts.example.com", "--allow-insecure-sts-endpoint"},
			modify: func(c *Config) { c.STSEndpoint, c.AllowInsecureSTSEndpoint = "http://sts.example.com", true }},
		{name: "plain http STS on loopback needs nothing", env: baseEnv(), args: []string{"--sts-endpoint=http://127.0.0.1:8333"},
			modify: func(c *Config) { c.STSEndpoint = "http://127.0.0.1:8333" }},
		{name: "imds with the shortest window it allows", env: baseEnv(), args: []string{"--imds-listen=127.0.0.1:9911", "--refresh-window=33m20s"},
			modify: func(c *Config) { c.IMDSListen, c.RefreshWindow = "127.0.0.1:9911", 33*time.Minute+20*time.Second }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.args, getenv(tt.env))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			want := defaults
			if tt.modify != nil {
				tt.modify(&want)
			}
			got.given = nil
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("Parse =\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string // the whole message
	}{
		{name: "duration too short", env: withEnv(map[string]string{"CREDSIDECAR_DURATION": "15m"}),
			want: `invalid configuration: --duration (CREDSIDECAR_DURATION) = "15m": must be at least 1h: SDKs refresh container credentials 5-15 min before expiry, shorter sessions make them call the endpoint on every request`},
		{name: "duration from flag in seconds", env: baseEnv(), args: []string{"--duration", "900"},
			want: `invalid configuration: --duration (CREDSIDECAR_DURATION) = "900": must be at least 1h: SDKs refresh container credentials 5-15 min before expiry, shorter sessions make them call the endpoint on every request`},
		{name: "duration too long", env: baseEnv(), args: []string{"--duration=13h"},
			want: `invalid configuration: --duration (CREDSIDECAR_DURATION) = "13h": must be at most 12h: STS refuses longer sessions`},
		{name: "duration fractional", env: baseEnv(), args: []string{"--duration=1h0m0.5s"},
			want: `invalid configuration: --duration (CREDSIDECAR_DURATION) = "1h0m0.5s": must be whole seconds: STS takes DurationSeconds`},
		{name: "duration not a duration", env: withEnv(map[string]string{"CREDSIDECAR_DURATION": "one hour"}),
			want: `invalid configuration: --duration (CREDSIDECAR_DURATION) = "one hour": must be a duration such as 90s, 40m or 1h, or a number of seconds`},
		{name: "duration seconds overflow", env: baseEnv(), args: []string{"--duration=99999999999999999"},
			want: `invalid configuration: --duration (CREDSIDECAR_DURATION) = "99999999999999999": out of range`},
		{name: "missing everything", env: map[string]string{},
			want: `invalid configuration: --role-arn (AWS_ROLE_ARN) = "": required unless --role names a role: the IAM role to assume, arn:aws:iam::<account-id>:role/<name>; ` +
				`--token-file (AWS_WEB_IDENTITY_TOKEN_FILE) = "": required: the path of the projected service-account token, as mounted in the pod; ` +
				`--region (AWS_REGION or AWS_DEFAULT_REGION) = "": required unless --sts-endpoint is set: the AWS SDK calls the regional STS endpoint`},
		{name: "region from the second variable", env: withEnv(map[string]string{"AWS_DEFAULT_REGION": "EU_WEST"}, "AWS_REGION"),
			want: `invalid configuration: --region (AWS_DEFAULT_REGION) = "EU_WEST": not a region name such as eu-west-1`},
		{name: "role ARN of a user", env: withEnv(map[string]string{"AWS_ROLE_ARN": "arn:aws:iam::123456789012:user/bob"}),
			want: `invalid configuration: --role-arn (AWS_ROLE_ARN) = "arn:aws:iam::123456789012:user/bob": not an IAM role ARN: want arn:aws:iam::<12-digit account id>:role/<name> (partition aws, aws-cn or aws-us-gov)`},
		{name: "role ARN short account", env: baseEnv(), args: []string{"--role-arn=arn:aws:iam::12345:role/x"},
			want: `invalid configuration: --role-arn (AWS_ROLE_ARN) = "arn:aws:iam::12345:role/x": not an IAM role ARN: want arn:aws:iam::<12-digit account id>:role/<name> (partition aws, aws-cn or aws-us-gov)`},
		{name: "role ARN unknown partition", env: baseEnv(), args: []string{"--role-arn=arn:aws-eu:iam::123456789012:role/x"},
			want: `invalid configuration: --role-arn (AWS_ROLE_ARN) = "arn:aws-eu:iam::123456789012:role/x": not an IAM role ARN: want arn:aws:iam::<12-digit account id>:role/<name> (partition aws, aws-cn or aws-us-gov)`},
		{name: "role ARN name too long", env: baseEnv(), args: []string{"--role-arn=arn:aws:iam::123456789012:role/" + strings.Repeat("r", 65)},
			want: `invalid configuration: --role-arn (AWS_ROLE_ARN) = "arn:aws:iam::123456789012:role/` + strings.Repeat("r", 65) + `": not an IAM role ARN: want arn:aws:iam::<12-digit account id>:role/<name> (partition aws, aws-cn or aws-us-gov)`},
		{name: "endpoint without scheme", env: withEnv(map[string]string{"AWS_ENDPOINT_URL_STS": "sts.amazonaws.com"}),
			want: `invalid configuration: --sts-endpoint (AWS_ENDPOINT_URL_STS) = "sts.amazonaws.com": must be an http or https URL, such as https://sts.eu-west-1.amazonaws.com`},
		{name: "endpoint with credentials, password never printed", env: baseEnv(), args: []string{"--sts-endpoint=https://u:s3cr3t@sts.amazonaws.com"},
			want: `invalid configuration: --sts-endpoint (AWS_ENDPOINT_URL_STS or AWS_ENDPOINT_URL) = "https://u:xxxxx@sts.amazonaws.com": must not carry credentials`},
		{name: "plain http STS off loopback", env: baseEnv(), args: []string{"--sts-endpoint=http://sts.example.com"},
			want: `invalid configuration: --sts-endpoint (AWS_ENDPOINT_URL_STS or AWS_ENDPOINT_URL) = "http://sts.example.com": plain http to a host other than loopback: the service-account token would cross the network in clear text; use https, or set --allow-insecure-sts-endpoint`},
		{name: "plain http STS from AWS_ENDPOINT_URL names it", env: withEnv(map[string]string{"AWS_ENDPOINT_URL": "http://10.0.0.7:8080"}),
			want: `invalid configuration: --sts-endpoint (AWS_ENDPOINT_URL) = "http://10.0.0.7:8080": plain http to a host other than loopback: the service-account token would cross the network in clear text; use https, or set --allow-insecure-sts-endpoint`},
		{name: "auth token file is the token file", env: baseEnv(), args: []string{"--auth-token-file=/var/run/secrets/eks.amazonaws.com/serviceaccount/./token"},
			want: `invalid configuration: --auth-token-file (CREDSIDECAR_AUTH_TOKEN_FILE) = "/var/run/secrets/eks.amazonaws.com/serviceaccount/./token": must not be the --token-file: the service-account token would then be accepted as the endpoint's Authorization token`},
		{name: "imds in a hostNetwork pod", env: withEnv(map[string]string{"POD_IP": "10.1.2.3", "HOST_IP": "10.1.2.3"}), args: []string{"--imds-listen=127.0.0.1:9911"},
			want: `invalid configuration: --imds-listen (CREDSIDECAR_IMDS_LISTEN) = "127.0.0.1:9911": refused: the pod uses hostNetwork (POD_IP = HOST_IP = 10.1.2.3), so its loopback is the node's and every process on the node could read the credentials from IMDS, which has no token; serve IMDS only from pods without hostNetwork`},
		{name: "session name invalid", env: withEnv(map[string]string{"AWS_ROLE_SESSION_NAME": "ns/pod"}),
			want: `invalid configuration: --session-name (AWS_ROLE_SESSION_NAME) = "ns/pod": must be 2-64 characters from letters, digits and _+=,.@-`},
		{name: "session name too short", env: baseEnv(), args: []string{"--session-name=x"},
			want: `invalid configuration: --session-name (AWS_ROLE_SESSION_NAME) = "x": must be 2-64 characters from letters, digits and _+=,.@-`},
		{name: "imds window that the jitter takes below 30 min", env: baseEnv(), args: []string{"--imds-listen=127.0.0.1:9911", "--refresh-window=33m"},
			want: `invalid configuration: --refresh-window (CREDSIDECAR_REFRESH_WINDOW) = "33m": must be at least 33m20s with --imds-listen: the refresh may start as late as 90% of the window, and botocore rewrites an instance-metadata expiry less than 30 min away and then fetches credentials far more often than they change`},
		{name: "refresh window leaves no room", env: baseEnv(), args: []string{"--refresh-window=1h"},
			want: `invalid configuration: --refresh-window (CREDSIDECAR_REFRESH_WINDOW) = "1h": must be less than 1h0m0s (--duration 1h0m0s): fresh credentials would already be due for refresh and the sidecar would call STS without pause`},
		{name: "refresh window too small", env: withEnv(map[string]string{"CREDSIDECAR_REFRESH_WINDOW": "10m"}),
			want: `invalid configuration: --refresh-window (CREDSIDECAR_REFRESH_WINDOW) = "10m": must be at least 16m40s: the refresh may start as late as 90% of the window, and below 15 min left botocore and the Java v1 SDK call the endpoint on every AWS request`},
		{name: "min remaining above window", env: baseEnv(), args: []string{"--min-remaining=40m"},
			want: `invalid configuration: --min-remaining (CREDSIDECAR_MIN_REMAINING) = "40m": must be less than --refresh-window (40m0s): credentials must be refreshed before they become unservable`},
		{name: "min remaining too small", env: baseEnv(), args: []string{"--min-remaining=10s"},
			want: `invalid configuration: --min-remaining (CREDSIDECAR_MIN_REMAINING) = "10s": must be at least 1m: credentials closer to expiry may expire before the SDK has used them`},
		{name: "poll interval", env: baseEnv(), args: []string{"--token-poll-interval=0"},
			want: `invalid configuration: --token-poll-interval (CREDSIDECAR_TOKEN_POLL_INTERVAL) = "0": must be between 1s and 5m: the kubelet rotates tokens as often as every 8 minutes`},
		{name: "shutdown timeout", env: baseEnv(), args: []string{"--shutdown-timeout=-1s"},
			want: `invalid configuration: --shutdown-timeout (CREDSIDECAR_SHUTDOWN_TIMEOUT) = "-1s": must be positive`},
		{name: "listen on every interface", env: withEnv(map[string]string{"CREDSIDECAR_LISTEN": "0.0.0.0:9910"}),
			want: `invalid configuration: --listen (CREDSIDECAR_LISTEN) = "0.0.0.0:9910": not a loopback address: anyone who can reach it could fetch the credentials with the token; use 127.0.0.1, or set --allow-non-loopback`},
		{name: "listen without host", env: baseEnv(), args: []string{"--listen=:9910"},
			want: `invalid configuration: --listen (CREDSIDECAR_LISTEN) = ":9910": listens on every interface: give a loopback address such as 127.0.0.1, or set --allow-non-loopback`},
		{name: "listen on a name", env: baseEnv(), args: []string{"--listen=localhost:9910"},
			want: `invalid configuration: --listen (CREDSIDECAR_LISTEN) = "localhost:9910": host must be an IP address: SDKs accept only 127.0.0.1 (or ::1) for a plain-http endpoint`},
		{name: "listen without port", env: baseEnv(), args: []string{"--listen=127.0.0.1"},
			want: `invalid configuration: --listen (CREDSIDECAR_LISTEN) = "127.0.0.1": must be host:port, such as 127.0.0.1:9910`},
		{name: "listen port out of range", env: baseEnv(), args: []string{"--listen=127.0.0.1:65536"},
			want: `invalid configuration: --listen (CREDSIDECAR_LISTEN) = "127.0.0.1:65536": port must be a number from 0 to 65535`},
		{name: "metrics on the credentials port", env: withEnv(map[string]string{"CREDSIDECAR_METRICS_LISTEN": ":9910"}),
			want: `invalid configuration: --metrics-listen (CREDSIDECAR_METRICS_LISTEN) = ":9910": uses the port of --listen ("127.0.0.1:9910"): the two endpoints need their own listeners`},
		{name: "metrics on a name", env: baseEnv(), args: []string{"--metrics-listen=metrics.local:9912"},
			want: `invalid configuration: --metrics-listen (CREDSIDECAR_METRICS_LISTEN) = "metrics.local:9912": host must be an IP address, or empty for every interface`},
		{name: "log format", env: withEnv(map[string]string{"CREDSIDECAR_LOG_FORMAT": "logfmt"}),
			want: `invalid configuration: --log-format (CREDSIDECAR_LOG_FORMAT) = "logfmt": must be json or text`},
		{name: "log level", env: baseEnv(), args: []string{"--log-level=loud"},
			want: `invalid configuration: --log-level (CREDSIDECAR_LOG_LEVEL) = "loud": must be debug, info, warn or error`},
		{name: "bool env", env: withEnv(map[string]string{"CREDSIDECAR_ALLOW_NON_LOOPBACK": "yes"}),
			want: `invalid configuration: --allow-non-loopback (CREDSIDECAR_ALLOW_NON_LOOPBACK) = "yes": must be true or false`},
		{name: "empty auth token file", env: baseEnv(), args: []string{"--auth-token-file="},
			want: `invalid configuration: --auth-token-file (CREDSIDECAR_AUTH_TOKEN_FILE) = "": required: where the endpoint's Authorization token is read or written`},
		{name: "several problems in one line", env: withEnv(map[string]string{"CREDSIDECAR_DURATION": "30m", "CREDSIDECAR_LOG_FORMAT": "xml"}),
			want: `invalid configuration: --duration (CREDSIDECAR_DURATION) = "30m": must be at least 1h: SDKs refresh container credentials 5-15 min before expiry, shorter sessions make them call the endpoint on every request; --log-format (CREDSIDECAR_LOG_FORMAT) = "xml": must be json or text`},
		{name: "newline in a value stays on one line", env: withEnv(map[string]string{"CREDSIDECAR_LOG_FORMAT": "json\nERROR forged"}),
			want: `invalid configuration: --log-format (CREDSIDECAR_LOG_FORMAT) = "json\nERROR forged": must be json or text`},
		{name: "unknown flag", env: baseEnv(), args: []string{"--roles=x"},
			want: `parse arguments: flag provided but not defined: -roles`},
		{name: "positional argument", env: baseEnv(), args: []string{"--duration=1h", "extra"},
			want: `parse arguments: unexpected argument "extra": serve takes flags only`},
		{name: "missing flag value", env: baseEnv(), args: []string{"--duration"},
			want: `parse arguments: flag needs an argument: -duration`},
		{name: "chained role not a role", env: baseEnv(), args: []string{"--chain-role-arn=" + chainARN1, "--chain-role-arn=arn:aws:iam::210987654321:user/bob"},
			want: `invalid configuration: --chain-role-arn (CREDSIDECAR_CHAIN_ROLE_ARNS) = "` + chainARN1 + `,arn:aws:iam::210987654321:user/bob": hop 3 "arn:aws:iam::210987654321:user/bob" is not an IAM role ARN: want arn:aws:iam::<12-digit account id>:role/<name> (partition aws, aws-cn or aws-us-gov)`},
		{name: "empty chained role in the variable", env: withEnv(map[string]string{"CREDSIDECAR_CHAIN_ROLE_ARNS": chainARN1 + ","}),
			want: `invalid configuration: --chain-role-arn (CREDSIDECAR_CHAIN_ROLE_ARNS) = "` + chainARN1 + `,": hop 3 "" is not an IAM role ARN: want arn:aws:iam::<12-digit account id>:role/<name> (partition aws, aws-cn or aws-us-gov)`},
		{name: "too many hops", env: withEnv(map[string]string{"CREDSIDECAR_CHAIN_ROLE_ARNS": strings.Repeat(chainARN1+",", 5) + chainARN1}),
			want: `invalid configuration: --chain-role-arn (CREDSIDECAR_CHAIN_ROLE_ARNS) = "` + strings.Repeat(chainARN1+",", 5) + chainARN1 + `": 6 roles, at most 5: every hop is one more STS call per refresh`},
		{name: "external ids do not match the roles", env: baseEnv(), args: []string{"--chain-role-arn=" + chainARN1, "--chain-role-arn=" + chainARN2, "--chain-external-id=ext-1"},
			want: `invalid configuration: --chain-external-id (CREDSIDECAR_CHAIN_EXTERNAL_IDS) = "ext-1": 1 external IDs for 2 chained roles: give one per --chain-role-arn, in the same order, empty for a role that needs none`},
		{name: "external id without a chain", env: withEnv(map[string]string{"CREDSIDECAR_CHAIN_EXTERNAL_IDS": "ext-1"}),
			want: `invalid configuration: --chain-external-id (CREDSIDECAR_CHAIN_EXTERNAL_IDS) = "ext-1": 1 external IDs for 0 chained roles: give one per --chain-role-arn, in the same order, empty for a role that needs none`},
		{name: "external id with a space", env: baseEnv(), args: []string{"--chain-role-arn=" + chainARN1, "--chain-external-id=my id"},
			want: `invalid configuration: --chain-external-id (CREDSIDECAR_CHAIN_EXTERNAL_IDS) = "my id": the external ID for hop 2: want 2-1224 characters of letters, digits and _+=,.@:/-`},
		{name: "role without a name", env: baseEnv(), args: []string{"--role=" + chainARN1},
			want: `invalid configuration: --role (CREDSIDECAR_ROLES) = "` + chainARN1 + `": "` + chainARN1 + `": want NAME=ARN`},
		{name: "role name with capitals", env: withEnv(map[string]string{"CREDSIDECAR_ROLES": "Reader=" + chainARN1}),
			want: `invalid configuration: --role (CREDSIDECAR_ROLES) = "Reader=` + chainARN1 + `": role name "Reader": want 1 to 32 of a-z, 0-9 and -`},
		{name: "role named twice", env: baseEnv(), args: []string{"--role=reader=" + chainARN1, "--role=reader=" + chainARN2},
			want: `invalid configuration: --role (CREDSIDECAR_ROLES) = "reader=` + chainARN1 + `,reader=` + chainARN2 + `": role "reader" is named twice`},
		{name: "role with a policy ARN", env: baseEnv(), args: []string{"--role=reader=arn:aws:iam::aws:policy/ReadOnlyAccess"},
			want: `invalid configuration: --role (CREDSIDECAR_ROLES) = "reader=arn:aws:iam::aws:policy/ReadOnlyAccess": role "reader": "arn:aws:iam::aws:policy/ReadOnlyAccess" is not an IAM role ARN: want arn:aws:iam::<12-digit account id>:role/<name> (partition aws, aws-cn or aws-us-gov)`},
		{name: "seventeen roles", env: withEnv(map[string]string{"CREDSIDECAR_ROLES": seventeenRoles()}),
			want: `invalid configuration: --role (CREDSIDECAR_ROLES) = "` + seventeenRoles() + `": 17 roles, at most 16: each is one more STS call per refresh`},
		{name: "chain for an unknown role", env: baseEnv(), args: []string{"--role=reader=" + chainARN1, "--role-chain-role-arn=writer=" + chainARN2},
			want: `invalid configuration: --role-chain-role-arn (CREDSIDECAR_ROLE_CHAIN_ROLE_ARNS) = "writer=` + chainARN2 + `": no role "writer": the roles are reader`},
		{name: "chain for a role not declared", env: baseEnv(), args: []string{"--role-chain-role-arn=writer=" + chainARN2},
			want: `invalid configuration: --role-chain-role-arn (CREDSIDECAR_ROLE_CHAIN_ROLE_ARNS) = "writer=` + chainARN2 + `": no role "writer": name it with --role writer=ARN first`},
		{name: "named role's bad hop", env: baseEnv(), args: []string{"--role=reader=" + chainARN1, "--role-chain-role-arn=reader=arn:aws:s3:::bucket"},
			want: `invalid configuration: --role-chain-role-arn (CREDSIDECAR_ROLE_CHAIN_ROLE_ARNS) = "reader=arn:aws:s3:::bucket": role "reader": hop 2 "arn:aws:s3:::bucket" is not an IAM role ARN: want arn:aws:iam::<12-digit account id>:role/<name> (partition aws, aws-cn or aws-us-gov)`},
		{name: "named role's policies not an object", env: baseEnv(), args: []string{"--role=reader=" + chainARN1, "--role-session-policies=[]"},
			want: `invalid configuration: --role-session-policies (CREDSIDECAR_ROLE_SESSION_POLICIES) = "[]": must be a JSON object from role name to policy document, {"reader": {"Version": ...}}`},
		{name: "imds without the unnamed role", env: withEnv(map[string]string{"CREDSIDECAR_ROLES": "reader=" + chainARN1}, "AWS_ROLE_ARN"),
			args: []string{"--imds-listen=127.0.0.1:9911"},
			want: `invalid configuration: --imds-listen (CREDSIDECAR_IMDS_LISTEN) = "127.0.0.1:9911": needs --role-arn: instance metadata serves the unnamed role only, since an instance has one role; the named roles are served at /v1/credentials/NAME`},
		{name: "profile named like a role", env: baseEnv(), args: []string{"--role=reader=" + chainARN1,
			"--credentials-file=/var/run/credsidecar/credentials", "--credentials-profile=reader"},
			want: `invalid configuration: --credentials-profile (CREDSIDECAR_CREDENTIALS_PROFILE) = "reader": is also a --role name: the credentials file holds [<this>] for --role-arn's credentials and [NAME] for each named role's, so the two would collide`},
		{name: "chain without a region", env: withEnv(map[string]string{"AWS_ENDPOINT_URL_STS": "http://127.0.0.1:8333"}, "AWS_REGION"),
			args: []string{"--chain-role-arn=" + chainARN1},
			want: `invalid configuration: --region (AWS_REGION or AWS_DEFAULT_REGION) = "": required with --chain-role-arn or --role-chain-role-arn: AssumeRole calls are signed for a region`},
		{name: "window too long for a chained hour", env: baseEnv(), args: []string{"--chain-role-arn=" + chainARN1, "--duration=2h", "--refresh-window=61m"},
			want: `invalid configuration: --refresh-window (CREDSIDECAR_REFRESH_WINDOW) = "61m": must be less than 1h0m0s (the 1h0m0s a chained role's session lasts): fresh credentials would already be due for refresh and the sidecar would call STS without pause`},
		{name: "session policy not JSON", env: withEnv(map[string]string{"CREDSIDECAR_SESSION_POLICY": "s3:GetObject"}),
			want: `invalid configuration: --session-policy (CREDSIDECAR_SESSION_POLICY) = "s3:GetObject": not a JSON object: want a policy document such as {"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}`},
		{name: "session policy too long", env: baseEnv(), args: []string{`--session-policy={"Sid":"` + strings.Repeat("x", 2039) + `"}`},
			want: `invalid configuration: --session-policy (CREDSIDECAR_SESSION_POLICY) = "{\"Sid\":\"` + strings.Repeat("x", 2039) + `\"}": 2049 characters, STS accepts at most 2048`},
		{name: "session policy ARN of a role", env: baseEnv(), args: []string{"--session-policy-arn=" + chainARN1},
			want: `invalid configuration: --session-policy-arn (CREDSIDECAR_SESSION_POLICY_ARNS) = "` + chainARN1 + `": "` + chainARN1 + `" is not an IAM policy ARN: want arn:aws:iam::<12-digit account id or aws>:policy/<name>`},
		{name: "eleven session policy ARNs", env: withEnv(map[string]string{"CREDSIDECAR_SESSION_POLICY_ARNS": strings.Repeat("arn:aws:iam::aws:policy/ReadOnlyAccess,", 10) + "arn:aws:iam::aws:policy/ReadOnlyAccess"}),
			want: `invalid configuration: --session-policy-arn (CREDSIDECAR_SESSION_POLICY_ARNS) = "` + strings.Repeat("arn:aws:iam::aws:policy/ReadOnlyAccess,", 10) + `arn:aws:iam::aws:policy/ReadOnlyAccess": 11 policies, STS accepts at most 10`},
		{name: "imds on every interface", env: baseEnv(), args: []string{"--imds-listen=0.0.0.0:9911", "--allow-non-loopback"},
			want: `invalid configuration: --imds-listen (CREDSIDECAR_IMDS_LISTEN) = "0.0.0.0:9911": must be a loopback IP address such as 127.0.0.1: anything that reaches it gets the credentials without a token (--allow-non-loopback does not apply to it)`},
		{name: "imds on a name", env: withEnv(map[string]string{"CREDSIDECAR_IMDS_LISTEN": "localhost:9911"}),
			want: `invalid configuration: --imds-listen (CREDSIDECAR_IMDS_LISTEN) = "localhost:9911": must be a loopback IP address such as 127.0.0.1: anything that reaches it gets the credentials without a token (--allow-non-loopback does not apply to it)`},
		{name: "imds without port", env: baseEnv(), args: []string{"--imds-listen=127.0.0.1"},
			want: `invalid configuration: --imds-listen (CREDSIDECAR_IMDS_LISTEN) = "127.0.0.1": must be host:port, such as 127.0.0.1:9910`},
		{name: "imds on the credentials port", env: baseEnv(), args: []string{"--imds-listen=127.0.0.1:9910"},
			want: `invalid configuration: --imds-listen (CREDSIDECAR_IMDS_LISTEN) = "127.0.0.1:9910": uses the port of --listen or --metrics-listen: instance metadata needs a listener of its own (the Go SDK replaces the URL's path)`},
		{name: "imds on the metrics port", env: baseEnv(), args: []string{"--imds-listen=[::1]:9912"},
			want: `invalid configuration: --imds-listen (CREDSIDECAR_IMDS_LISTEN) = "[::1]:9912": uses the port of --listen or --metrics-listen: instance metadata needs a listener of its own (the Go SDK replaces the URL's path)`},
		{name: "imds without a region", env: withEnv(map[string]string{"AWS_ENDPOINT_URL": "http://127.0.0.1:8333", "CREDSIDECAR_IMDS_LISTEN": "127.0.0.1:9911"}, "AWS_REGION"),
			want: `invalid configuration: --region (AWS_REGION or AWS_DEFAULT_REGION) = "": required with --imds-listen: instance metadata reports the region, and SDKs use it`},
		{name: "imds with a short window", env: baseEnv(), args: []string{"--imds-listen=127.0.0.1:9911", "--refresh-window=20m"},
			want: `invalid configuration: --refresh-window (CREDSIDECAR_REFRESH_WINDOW) = "20m": must be at least 33m20s with --imds-listen: the refresh may start as late as 90% of the window, and botocore rewrites an instance-metadata expiry less than 30 min away and then fetches credentials far more often than they change`},
		{name: "credentials file relative", env: withEnv(map[string]string{"CREDSIDECAR_CREDENTIALS_FILE": "aws/credentials"}),
			want: `invalid configuration: --credentials-file (CREDSIDECAR_CREDENTIALS_FILE) = "aws/credentials": must be an absolute path, such as /var/run/credsidecar-files/credentials`},
		{name: "credentials file a directory", env: baseEnv(), args: []string{"--credentials-file=/var/run/aws/"},
			want: `invalid configuration: --credentials-file (CREDSIDECAR_CREDENTIALS_FILE) = "/var/run/aws/": must name a file, not a directory`},
		{name: "credentials file is the auth token", env: baseEnv(), args: []string{"--credentials-file=/var/run/credsidecar/auth-token"},
			want: `invalid configuration: --credentials-file (CREDSIDECAR_CREDENTIALS_FILE) = "/var/run/credsidecar/auth-token": must not be the --auth-token-file or the --token-file`},
		{name: "credentials profile", env: withEnv(map[string]string{"CREDSIDECAR_CREDENTIALS_PROFILE": "my profile"}),
			want: `invalid configuration: --credentials-profile (CREDSIDECAR_CREDENTIALS_PROFILE) = "my profile": must be 1 to 64 letters, digits and _.+=,@/-`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.args, getenv(tt.env))
			if err == nil {
				t.Fatalf("Parse succeeded, want %s", tt.want)
			}
			if err.Error() != tt.want {
				t.Fatalf("Parse error\n got: %s\nwant: %s", err, tt.want)
			}
			if strings.ContainsAny(err.Error(), "\r\n") {
				t.Fatalf("error spans lines: %q", err)
			}
		})
	}
}

func TestParseHelpAndVersion(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want error
	}{
		{name: "help", args: []string{"--help"}, want: flag.ErrHelp},
		{name: "h", args: []string{"-h"}, want: flag.ErrHelp},
		{name: "version", args: []string{"--version"}, want: ErrVersion},
		{name: "version without the required settings", args: []string{"--duration=1m", "--version"}, want: ErrVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse(tt.args, getenv(nil)); !errors.Is(err, tt.want) {
				t.Fatalf("Parse error = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestErrorType(t *testing.T) {
	_, err := Parse([]string{"--duration=2m", "--log-format=yaml"}, getenv(baseEnv()))
	var cerr *Error
	if !errors.As(err, &cerr) {
		t.Fatalf("error %T is not *Error", err)
	}
	var flags []string
	for _, p := range cerr.Problems {
		flags = append(flags, p.Flag+"="+p.Value)
	}
	if got := strings.Join(flags, ","); got != "duration=2m,log-format=yaml" {
		t.Fatalf("problems = %s", got)
	}
}

func TestValidateBuiltConfig(t *testing.T) {
	tests := []struct {
		name   string
		modify func(c *Config)
		want   string
	}{
		{name: "defaults plus required fields", modify: func(c *Config) {}},
		{name: "formatted value when not parsed", modify: func(c *Config) { c.Duration = 30 * time.Minute },
			want: `invalid configuration: --duration (CREDSIDECAR_DURATION) = "30m0s": must be at least 1h: SDKs refresh container credentials 5-15 min before expiry, shorter sessions make them call the endpoint on every request`},
		{name: "zero config", modify: func(c *Config) { *c = Config{} },
			want: `--role-arn (AWS_ROLE_ARN) = "": required`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Defaults()
			c.RoleARN, c.TokenFile, c.STSEndpoint = testARN, "/tmp/token", "http://127.0.0.1:8333"
			c.Listen, c.MetricsListen = "127.0.0.1:0", "127.0.0.1:0"
			tt.modify(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate error = %v, want one containing %s", err, tt.want)
			}
		})
	}
}

func TestUsage(t *testing.T) {
	var b strings.Builder
	Usage(&b, "sidecar")
	goldenfile.Check(t, filepath.Join("testdata", "usage.golden"), []byte(b.String()), *update)
	// Every setting shows its variables and its default.
	for _, s := range settings() {
		for _, e := range s.envs {
			if !strings.Contains(b.String(), "$"+e) {
				t.Errorf("usage lacks $%s", e)
			}
		}
		if s.def != "" && !strings.Contains(b.String(), "default "+s.def) {
			t.Errorf("usage lacks the default of --%s", s.flag)
		}
	}
}

// FuzzParse feeds arbitrary durations and addresses through Parse: it must never panic, every
// error must be one line, and whatever it accepts must respect the invariants the rest of the
// sidecar relies on.
func FuzzParse(f *testing.F) {
	f.Add("1h", "40m", "5m", "127.0.0.1:9910", ":9912", false)
	f.Add("3600", "2400", "300", "[::1]:0", "127.0.0.1:0", false)
	f.Add("15m", "10m", "1m", "0.0.0.0:80", "0.0.0.0:80", true)
	f.Fuzz(func(t *testing.T, duration, window, minRemaining, listen, metricsListen string, allow bool) {
		args := []string{"--duration=" + duration, "--refresh-window=" + window, "--min-remaining=" + minRemaining,
			"--listen=" + listen, "--metrics-listen=" + metricsListen}
		if allow {
			args = append(args, "--allow-non-loopback")
		}
		c, err := Parse(args, getenv(baseEnv()))
		if err != nil {
			if strings.ContainsAny(err.Error(), "\r\n") {
				t.Fatalf("error spans lines: %q", err)
			}
			return
		}
		if c.Duration < time.Hour || c.Duration > 12*time.Hour {
			t.Fatalf("accepted duration %v", c.Duration)
		}
		if c.RefreshWindow+c.RefreshWindow/10 >= c.Duration || c.RefreshWindow < 15*time.Minute {
			t.Fatalf("accepted refresh window %v for duration %v", c.RefreshWindow, c.Duration)
		}
		if c.MinRemaining < time.Minute || c.MinRemaining >= c.RefreshWindow {
			t.Fatalf("accepted min remaining %v for window %v", c.MinRemaining, c.RefreshWindow)
		}
		if !allow {
			host, _, err := net.SplitHostPort(c.Listen)
			ip, perr := netip.ParseAddr(host)
			if err != nil || perr != nil || !ip.IsLoopback() {
				t.Fatalf("accepted non-loopback listen %q without --allow-non-loopback", c.Listen)
			}
		}
		host, _, err := net.SplitHostPort(c.MetricsListen)
		if _, perr := netip.ParseAddr(host); err != nil || (host != "" && perr != nil) {
			t.Fatalf("accepted metrics listen %q", c.MetricsListen)
		}
	})
}

// seventeenRoles is one role more than a sidecar takes.
func seventeenRoles() string {
	pairs := make([]string, 17)
	for i := range pairs {
		pairs[i] = fmt.Sprintf("r%d=arn:aws:iam::123456789012:role/r%d", i, i)
	}
	return strings.Join(pairs, ",")
}
