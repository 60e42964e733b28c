package upload

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParse(t *testing.T) {
	// 2026-11-25 08:30:15 UTC is 17:30:15 in Seoul (UTC+9, no DST).
	now := time.Date(2026, 11, 25, 8, 30, 15, 0, time.UTC)
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(t *testing.T, c Config)
		wantErr string // substring of the error; empty means success
	}{
		{
			name: "defaults with bucket from env",
			env:  map[string]string{"S3_BUCKET_NAME": "my-bucket"},
			check: func(t *testing.T, c Config) {
				want := Config{
					Bucket: "my-bucket", Region: DefaultRegion, Key: "uploads/aks-oidc-test-20261125_173015.txt",
					Timezone: DefaultTimezone, PartSize: 8 * MiB, Concurrency: 4, ProgressInterval: 5 * time.Second, LogFormat: "json",
				}
				c.Location = nil
				if c != want {
					t.Errorf("config = %+v\nwant     %+v", c, want)
				}
			},
		},
		{
			name: "flag wins over env",
			args: []string{"--bucket", "flag-bucket", "--region", "eu-west-1", "--concurrency", "8", "--part-size", "32MiB"},
			env:  map[string]string{"S3_BUCKET_NAME": "env-bucket", "AWS_REGION": "us-east-1", "UPLOAD_CONCURRENCY": "2", "UPLOAD_PART_SIZE": "5MiB"},
			check: func(t *testing.T, c Config) {
				if c.Bucket != "flag-bucket" || c.Region != "eu-west-1" || c.Concurrency != 8 || c.PartSize != 32*MiB {
					t.Errorf("got bucket=%q region=%q concurrency=%d part=%d", c.Bucket, c.Region, c.Concurrency, c.PartSize)
				}
			},
		},
		{
			name: "env fills what flags leave",
			args: []string{"--bucket", "b-1"},
			env: map[string]string{
				"AWS_REGION": "us-west-2", "S3_OBJECT_KEY": "x/y.txt", "S3_USE_PATH_STYLE": "true",
				"UPLOAD_PART_SIZE": "8MiB", "UPLOAD_CONCURRENCY": "2", "UPLOAD_PROGRESS_INTERVAL": "1s", "LOG_FORMAT": "text",
			},
			check: func(t *testing.T, c Config) {
				if c.Region != "us-west-2" || c.Key != "x/y.txt" || !c.PathStyle || c.PartSize != 8*MiB ||
					c.Concurrency != 2 || c.ProgressInterval != time.Second || c.LogFormat != "text" {
					t.Errorf("got %+v", c)
				}
			},
		},
		{
			name: "S3 endpoint prefers the S3-specific variable",
			args: []string{"--bucket", "b-1"},
			env:  map[string]string{"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9000", "AWS_ENDPOINT_URL": "http://127.0.0.1:1111"},
			check: func(t *testing.T, c Config) {
				if c.Endpoint != "http://127.0.0.1:9000" {
					t.Errorf("endpoint = %q", c.Endpoint)
				}
				if c.STSEndpoint != "http://127.0.0.1:1111" {
					t.Errorf("sts endpoint = %q, want the general AWS_ENDPOINT_URL", c.STSEndpoint)
				}
			},
		},
		{
			name: "general endpoint variable as fallback",
			args: []string{"--bucket", "b-1"},
			env:  map[string]string{"AWS_ENDPOINT_URL": "https://s3.example.test"},
			check: func(t *testing.T, c Config) {
				if c.Endpoint != "https://s3.example.test" {
					t.Errorf("endpoint = %q", c.Endpoint)
				}
			},
		},
		{
			name: "timezone changes the default key",
			args: []string{"--bucket", "b-1", "--timezone", "UTC"},
			check: func(t *testing.T, c Config) {
				if c.Key != "uploads/aks-oidc-test-20261125_083015.txt" {
					t.Errorf("key = %q", c.Key)
				}
			},
		},
		{
			name: "file gives the default key its base name",
			args: []string{"--bucket", "b-1", "--file", "/data/backup/dump.tar.gz"},
			check: func(t *testing.T, c Config) {
				if c.Key != "uploads/dump.tar.gz" || c.File != "/data/backup/dump.tar.gz" {
					t.Errorf("key = %q file = %q", c.Key, c.File)
				}
			},
		},
		{name: "bucket missing", wantErr: "--bucket / S3_BUCKET_NAME: required"},
		{name: "bucket is an ARN", args: []string{"--bucket", "arn:aws:s3:::b"}, wantErr: "not a valid bucket name"},
		{name: "bucket upper case", args: []string{"--bucket", "MyBucket"}, wantErr: "not a valid bucket name"},
		{name: "bucket too short", args: []string{"--bucket", "ab"}, wantErr: "not a valid bucket name"},
		{name: "bucket ends with dash", args: []string{"--bucket", "abc-"}, wantErr: "not a valid bucket name"},
		{name: "bad region", args: []string{"--bucket", "b-1", "--region", "Seoul"}, wantErr: `--region / AWS_REGION: "Seoul"`},
		{name: "part size below S3 minimum", args: []string{"--bucket", "b-1", "--part-size", "4MiB"}, wantErr: "--part-size / UPLOAD_PART_SIZE: 4MiB is outside"},
		{name: "part size not a size", args: []string{"--bucket", "b-1", "--part-size", "lots"}, wantErr: `--part-size (UPLOAD_PART_SIZE) = "lots": parse size`},
		{name: "bad part size from env names the variable", args: []string{"--bucket", "b-1"}, env: map[string]string{"UPLOAD_PART_SIZE": "-1"}, wantErr: `--part-size (UPLOAD_PART_SIZE) = "-1"`},
		{name: "zero concurrency", args: []string{"--bucket", "b-1", "--concurrency", "0"}, wantErr: "--concurrency / UPLOAD_CONCURRENCY: 0 is outside"},
		{name: "bad endpoint", args: []string{"--bucket", "b-1", "--endpoint-url", "127.0.0.1:9000"}, wantErr: "--endpoint-url / AWS_ENDPOINT_URL_S3"},
		{name: "bad sts endpoint", args: []string{"--bucket", "b-1", "--sts-endpoint-url", "ftp://x"}, wantErr: "--sts-endpoint-url / AWS_ENDPOINT_URL_STS"},
		{name: "leading slash key", args: []string{"--bucket", "b-1", "--key", "/a"}, wantErr: "no leading slash"},
		{name: "unknown timezone", args: []string{"--bucket", "b-1", "--timezone", "Mars/Base"}, wantErr: `--timezone / UPLOAD_TIMEZONE "Mars/Base"`},
		{name: "bad log format", args: []string{"--bucket", "b-1", "--log-format", "xml"}, wantErr: "neither json nor text"},
		{name: "bad bool from env", args: []string{"--bucket", "b-1"}, env: map[string]string{"S3_USE_PATH_STYLE": "sometimes"}, wantErr: `--path-style (S3_USE_PATH_STYLE) = "sometimes": must be true or false`},
		{name: "positional argument", args: []string{"--bucket", "b-1", "extra"}, wantErr: `unexpected argument "extra"`},
		{name: "unknown flag", args: []string{"--role-arn", "x"}, wantErr: "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(tt.args, envMap(tt.env), now, io.Discard)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("Parse succeeded with %+v, want error containing %q", c, tt.wantErr)
				}
				var ce *ConfigError
				if !errors.As(err, &ce) {
					t.Errorf("error %v is %T, want *ConfigError", err, err)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error = %q, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if c.Location == nil {
				t.Error("Location not set")
			}
			tt.check(t, c)
		})
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	_, err := Parse([]string{"--region", "x", "--concurrency", "100"}, envMap(nil), time.Now(), io.Discard)
	for _, want := range []string{"--bucket", "--region", "--concurrency"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %s", err, want)
		}
	}
}

func TestParseHelpAndVersion(t *testing.T) {
	var usage strings.Builder
	_, err := Parse([]string{"-h"}, envMap(nil), time.Now(), &usage)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("Parse(-h) = %v, want flag.ErrHelp", err)
	}
	// --help shows defaults and the environment fallbacks, as STYLE.md asks.
	for _, want := range []string{"S3_BUCKET_NAME", "AWS_REGION", "ap-northeast-2", "Asia/Seoul", "8MiB", "$AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL", "5s"} {
		if !strings.Contains(usage.String(), want) {
			t.Errorf("usage lacks %q:\n%s", want, usage.String())
		}
	}
	c, err := Parse([]string{"--version"}, envMap(nil), time.Now(), io.Discard)
	if err != nil || !c.ShowVersion {
		t.Errorf("Parse(--version) = %+v, %v", c, err)
	}
}

func TestDefaultKey(t *testing.T) {
	seoul, err := time.LoadLocation("Asia/Seoul")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, seoul)
	tests := []struct {
		name, file, want string
	}{
		{name: "generated", want: "uploads/aks-oidc-test-20260102_030405.txt"},
		{name: "file path", file: "/tmp/a/report.csv", want: "uploads/report.csv"},
		{name: "bare file name", file: "report.csv", want: "uploads/report.csv"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := DefaultKey(tt.file, at); got != tt.want {
				t.Errorf("DefaultKey(%q) = %q, want %q", tt.file, got, tt.want)
			}
		})
	}
}
