package upload

import "testing"

func TestRoleARN(t *testing.T) {
	tests := []struct {
		name, caller, account, want string
	}{
		{name: "assumed role", caller: "arn:aws:sts::111122223333:assumed-role/AKS-S3-Access-Role/default.s3-upload-test-abc", want: "arn:aws:iam::111122223333:role/AKS-S3-Access-Role"},
		{name: "other partition", caller: "arn:aws-cn:sts::111122223333:assumed-role/R/s", want: "arn:aws-cn:iam::111122223333:role/R"},
		{name: "store without account in the ARN", caller: "arn:aws:sts::assumed-role/R/s", account: "111122223333", want: "arn:aws:iam::111122223333:role/R"},
		{name: "IAM user", caller: "arn:aws:iam::111122223333:user/alice", want: ""},
		{name: "federated user", caller: "arn:aws:sts::111122223333:federated-user/bob", want: ""},
		{name: "empty role name", caller: "arn:aws:sts::111122223333:assumed-role//s", want: ""},
		{name: "garbage", caller: "not-an-arn", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := roleARN(tt.caller, tt.account); got != tt.want {
				t.Errorf("roleARN(%q) = %q, want %q", tt.caller, got, tt.want)
			}
		})
	}
}
