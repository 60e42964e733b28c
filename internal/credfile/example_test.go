package credfile_test

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/credsidecar/credsidecar/internal/credfile"
	"github.com/credsidecar/credsidecar/internal/creds"
)

func ExampleWriter_Update() {
	dir, err := os.MkdirTemp("", "credfile-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	w, err := credfile.New(filepath.Join(dir, "credentials"), credfile.DefaultProfile)
	if err != nil {
		fmt.Println(err)
		return
	}
	// AWS's documentation example values.
	err = w.Update(&creds.Credentials{
		AccessKeyID:     "ASIAIOSFODNN7EXAMPLE",
		SecretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
		SessionToken:    "IQoJb3JpZ2luX2VjEXAMPLETOKEN",
		Expiration:      time.Date(2026, 8, 22, 13, 4, 5, 0, time.UTC),
		RoleARN:         "arn:aws:iam::123456789012:role/app",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	b, _ := os.ReadFile(w.Path())
	fmt.Print(string(b))
	// Output:
	// # Written by credsidecar; replaced whole on every refresh. Do not edit; keep other profiles elsewhere.
	// # role_arn = arn:aws:iam::123456789012:role/app
	// # expiration = 2026-08-22T13:04:05Z
	// [default]
	// aws_access_key_id = ASIAIOSFODNN7EXAMPLE
	// aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
	// aws_session_token = IQoJb3JpZ2luX2VjEXAMPLETOKEN
}
