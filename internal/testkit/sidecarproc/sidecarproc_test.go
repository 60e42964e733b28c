package sidecarproc

import "testing"

func TestSumMetric(t *testing.T) {
	expo := []byte(`# HELP credsidecar_sts_requests_total STS calls.
# TYPE credsidecar_sts_requests_total counter
credsidecar_sts_requests_total{code="",result="success"} 3
credsidecar_sts_requests_total{code="Throttling",result="error"} 2
credsidecar_sts_requests_total_extra 100
credsidecar_ready 1
`)
	tests := []struct {
		name    string
		metric  string
		want    float64
		wantErr bool
	}{
		{name: "labelled samples add up", metric: "credsidecar_sts_requests_total", want: 5},
		{name: "unlabelled", metric: "credsidecar_ready", want: 1},
		{name: "absent", metric: "credsidecar_nothing", wantErr: true},
		{name: "prefix of another name only", metric: "credsidecar_sts_requests", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SumMetric(expo, tt.metric)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("SumMetric(%s) = %v, %v; want %v, error %v", tt.metric, got, err, tt.want, tt.wantErr)
			}
		})
	}
}
