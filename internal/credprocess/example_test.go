package credprocess_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"

	"github.com/credsidecar/credsidecar/internal/credprocess"
)

func ExampleMain() {
	// A stand-in for the sidecar's endpoint, with AWS's documentation example values.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "example-token" {
			http.Error(w, `{"code":"Unauthorized","message":"wrong token"}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"AccessKeyId":"ASIAIOSFODNN7EXAMPLE","SecretAccessKey":"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",`+
			`"Token":"IQoJb3JpZ2luX2VjEXAMPLETOKEN","Expiration":"2099-08-22T13:04:05Z","AccountId":"123456789012"}`)
	}))
	defer srv.Close()

	env := map[string]string{
		"AWS_CONTAINER_CREDENTIALS_FULL_URI": srv.URL + "/v1/credentials",
		"AWS_CONTAINER_AUTHORIZATION_TOKEN":  "example-token",
	}
	code := credprocess.Main(context.Background(), nil, func(k string) string { return env[k] }, os.Stdout, os.Stderr)
	fmt.Println("exit", code)
	// Output:
	// {"Version":1,"AccessKeyId":"ASIAIOSFODNN7EXAMPLE","SecretAccessKey":"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY","SessionToken":"IQoJb3JpZ2luX2VjEXAMPLETOKEN","Expiration":"2099-08-22T13:04:05Z","AccountId":"123456789012"}
	// exit 0
}
