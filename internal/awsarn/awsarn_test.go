package awsarn

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name, in            string
		wantErr             bool
		role, account, last string
	}{
		{name: "role", in: "arn:aws:iam::123456789012:role/app", role: "app", account: "123456789012", last: "app"},
		{name: "role with path", in: "arn:aws-cn:iam::123456789012:role/team/a/app", role: "app", account: "123456789012", last: "app"},
		{name: "assumed role", in: "arn:aws:sts::123456789012:assumed-role/app/default.job-1", role: "app",
			account: "123456789012", last: "default.job-1"},
		{name: "policy", in: "arn:aws:iam::aws:policy/ReadOnlyAccess", last: "ReadOnlyAccess"},
		{name: "resource keeps colons", in: "arn:aws:s3:::bucket:with:colons", last: "bucket:with:colons"},
		{name: "five fields", in: "arn:aws:iam::123456789012", wantErr: true},
		{name: "no prefix", in: "aws:iam::123456789012:role/app:x", wantErr: true},
		{name: "empty", in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := Parse(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Parse(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if a.String() != tt.in {
				t.Errorf("String() = %q, want %q", a.String(), tt.in)
			}
			if a.Role() != tt.role || a.AccountID() != tt.account || a.Name() != tt.last {
				t.Errorf("Role, AccountID, Name = %q, %q, %q; want %q, %q, %q", a.Role(), a.AccountID(), a.Name(),
					tt.role, tt.account, tt.last)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	long := "arn:aws:iam::123456789012:role/" + strings.Repeat("p/", 1100) + "app"
	tests := []struct {
		name       string
		check      func(string) error
		in         string
		wantPassed bool
	}{
		{"role", CheckRole, "arn:aws:iam::123456789012:role/app", true},
		{"role gov path", CheckRole, "arn:aws-us-gov:iam::123456789012:role/a/b/app", true},
		{"role bad partition", CheckRole, "arn:aws-xx:iam::123456789012:role/app", false},
		{"role short account", CheckRole, "arn:aws:iam::12345678901:role/app", false},
		{"role is a user", CheckRole, "arn:aws:iam::123456789012:user/app", false},
		{"role name too long", CheckRole, "arn:aws:iam::123456789012:role/" + strings.Repeat("a", 65), false},
		{"role over 2048", CheckRole, long, false},
		{"role no prefix", CheckRole, "app", false},
		{"policy aws managed", CheckPolicy, "arn:aws:iam::aws:policy/ReadOnlyAccess", true},
		{"policy own", CheckPolicy, "arn:aws:iam::123456789012:policy/team/p", true},
		{"policy is a role", CheckPolicy, "arn:aws:iam::123456789012:role/app", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.check(tt.in); (err == nil) != tt.wantPassed {
				t.Errorf("check(%q) = %v, want passed %v", tt.in, err, tt.wantPassed)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"arn:aws:iam::123456789012:role/app", "arn:aws:sts::1:assumed-role/a/b", "arn:::::", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := Parse(s)
		if err != nil {
			return
		}
		if a.String() != s {
			t.Fatalf("Parse(%q).String() = %q: not a round trip", s, a.String())
		}
		if CheckRole(s) == nil && (a.Role() == "" || a.AccountID() == "") {
			t.Fatalf("%q passes CheckRole but has role %q, account %q", s, a.Role(), a.AccountID())
		}
	})
}
