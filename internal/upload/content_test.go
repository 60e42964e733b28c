package upload

import (
	"strings"
	"testing"
	"time"
)

func TestTestFileContent(t *testing.T) {
	seoul, err := time.LoadLocation("Asia/Seoul")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 25, 17, 30, 15, 0, seoul)
	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{
			name: "downward API names",
			env:  map[string]string{"POD_NAME": "s3-upload-test-abc", "POD_NAMESPACE": "team-a", "NODE_NAME": "aks-node-1", "HOSTNAME": "ignored"},
			want: []string{"time: 2026-11-25 17:30:15 KST (Asia/Seoul)", "pod: s3-upload-test-abc", "namespace: team-a", "node: aks-node-1", "object: s3://b-1/k.txt"},
		},
		{
			name: "hostname is the pod name when the downward API is not wired",
			env:  map[string]string{"HOSTNAME": "s3-upload-test-xyz"},
			want: []string{"pod: s3-upload-test-xyz", "namespace: unknown", "node: unknown"},
		},
		{
			name: "nothing known",
			want: []string{"pod: unknown"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(testFileContent(at, envMap(tt.env), "b-1", "k.txt"))
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("content lacks %q:\n%s", w, got)
				}
			}
		})
	}
}
