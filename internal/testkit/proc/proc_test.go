package proc

import (
	"os"
	"testing"
)

func TestParseStatus(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Memory
		wantErr bool
	}{
		{
			name: "linux status",
			in:   "Name:\tsidecar\nVmPeak:\t  1241528 kB\nVmHWM:\t    12288 kB\nVmRSS:\t    10240 kB\nThreads:\t7\n",
			want: Memory{RSS: 10240 << 10, PeakRSS: 12288 << 10},
		},
		{name: "kernel thread", in: "Name:\tkthreadd\nThreads:\t1\n", wantErr: true},
		{name: "unknown unit", in: "VmHWM:\t1 MB\nVmRSS:\t1 MB\n", wantErr: true},
		{name: "not a number", in: "VmHWM:\tx kB\nVmRSS:\t1 kB\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatus([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseStatus error = %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("parseStatus = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestReadMemorySelf(t *testing.T) {
	m, err := ReadMemory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// A running Go test binary is resident: at least a MiB, and never above its own peak.
	if m.RSS < 1<<20 || m.PeakRSS < m.RSS {
		t.Errorf("ReadMemory(self) = %+v, want RSS >= 1 MiB and PeakRSS >= RSS", m)
	}
}

func TestMiB(t *testing.T) {
	if got := MiB(15 << 20); got != "15.0" {
		t.Errorf("MiB(15 MiB) = %q, want 15.0", got)
	}
	if got := MiB(3 << 19); got != "1.5" {
		t.Errorf("MiB(1.5 MiB) = %q, want 1.5", got)
	}
}
