package proc

import (
	"os"
	"testing"
	"time"
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

func TestParseStat(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    time.Duration
		wantErr bool
	}{
		{
			name: "linux stat",
			in:   "4242 (sidecar) S 1 4242 4242 0 -1 4194560 700 0 0 0 250 37 0 0 20 0 7 0 12345 1241528 2560 18446744073709551615\n",
			want: 2870 * time.Millisecond,
		},
		{
			name: "command with spaces and parentheses",
			in:   "7 (a (b) c) R 1 7 7 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 1 1 1\n",
			want: 70 * time.Millisecond,
		},
		{name: "no command", in: "7 R 1", wantErr: true},
		{name: "short", in: "7 (x) R 1 7 7 0 -1 0 0 0 0 0 3\n", wantErr: true},
		{name: "not a number", in: "7 (x) R 1 7 7 0 -1 0 0 0 0 0 x 4 0\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStat([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseStat error = %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("parseStat = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestReadCPUTimeSelf(t *testing.T) {
	before, err := ReadCPUTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Burn CPU until the kernel's accounting (10 ms ticks) moves, with a deadline.
	deadline := time.Now().Add(10 * time.Second)
	for {
		x := 0
		for i := range 1 << 20 {
			x += i
		}
		_ = x
		after, err := ReadCPUTime(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if after < before {
			t.Fatalf("cpu time went back from %v to %v", before, after)
		}
		if after > before {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cpu time stayed at %v through 10 s of work", before)
		}
	}
}
