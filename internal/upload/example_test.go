package upload_test

import (
	"fmt"
	"time"

	"github.com/credsidecar/credsidecar/internal/upload"
)

func ExampleParseSize() {
	for _, s := range []string{"16MiB", "5M", "8MB", "1048576"} {
		n, _ := upload.ParseSize(s)
		fmt.Println(s, "=", n, "=", upload.FormatSize(n))
	}
	// Output:
	// 16MiB = 16777216 = 16MiB
	// 5M = 5242880 = 5MiB
	// 8MB = 8000000 = 8000000
	// 1048576 = 1048576 = 1MiB
}

func ExampleDefaultKey() {
	seoul, _ := time.LoadLocation("Asia/Seoul")
	at := time.Date(2026, 11, 25, 17, 30, 15, 0, seoul)
	fmt.Println(upload.DefaultKey("", at))
	fmt.Println(upload.DefaultKey("/data/report.csv", at))
	// Output:
	// uploads/aks-oidc-test-20261125_173015.txt
	// uploads/report.csv
}
