// Package proc reads a process's memory use from /proc, for the benchmarks and the soak test
// that hold the sidecar to its memory budget. It reads what the kernel accounts (resident set
// size), which is what a container's memory limit is compared with, not the Go heap.
package proc

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// Memory is one reading of a process's memory.
type Memory struct {
	// RSS is the resident set size now (VmRSS), in bytes.
	RSS int64
	// PeakRSS is the largest RSS since the process started (VmHWM), in bytes.
	PeakRSS int64
}

// ReadMemory reads /proc/<pid>/status.
func ReadMemory(pid int) (Memory, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return Memory{}, fmt.Errorf("read memory of pid %d: %w", pid, err)
	}
	m, err := parseStatus(b)
	if err != nil {
		return Memory{}, fmt.Errorf("read memory of pid %d: %w", pid, err)
	}
	return m, nil
}

// parseStatus reads the VmRSS and VmHWM lines, which the kernel writes in kB (KiB).
func parseStatus(b []byte) (Memory, error) {
	var m Memory
	var haveRSS, haveHWM bool
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, rest, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok {
			continue
		}
		var dst *int64
		switch string(name) {
		case "VmRSS":
			dst, haveRSS = &m.RSS, true
		case "VmHWM":
			dst, haveHWM = &m.PeakRSS, true
		default:
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			return Memory{}, fmt.Errorf("unexpected %s line %q", name, rest)
		}
		kib, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return Memory{}, fmt.Errorf("unexpected %s line %q: %w", name, rest, err)
		}
		*dst = kib << 10
	}
	if err := sc.Err(); err != nil {
		return Memory{}, err
	}
	if !haveRSS || !haveHWM {
		return Memory{}, fmt.Errorf("no VmRSS/VmHWM lines (a kernel thread or a zombie?)")
	}
	return m, nil
}

// MiB formats a byte count in MiB with one decimal, as the reports print memory.
func MiB(n int64) string { return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) }
