// Package proc reads a process's memory use and CPU time from /proc, for the benchmarks and the
// soak test that hold the sidecar to its memory budget. It reads what the kernel accounts
// (resident set size), which is what a container's memory limit is compared with, not the Go
// heap.
package proc

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
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

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on every Linux ABI Go runs on.
const clockTicks = 100

// ReadCPUTime reads the CPU time (user plus system) a process has used since it started, from
// /proc/<pid>/stat. The benchmarks compare it with the wall time of a load run to tell whether
// the server or the load generator was the bottleneck.
func ReadCPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("read cpu time of pid %d: %w", pid, err)
	}
	d, err := parseStat(b)
	if err != nil {
		return 0, fmt.Errorf("read cpu time of pid %d: %w", pid, err)
	}
	return d, nil
}

// parseStat reads utime and stime, fields 14 and 15 of /proc/<pid>/stat. The command name
// (field 2) is in parentheses and may hold spaces or parentheses, so fields are counted from
// the last ')'.
func parseStat(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("no command name in stat")
	}
	// After ')': field 3 (state) onwards, so utime and stime are at indexes 11 and 12.
	f := bytes.Fields(b[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("stat has %d fields after the command name, want at least 13", len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(string(s), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bad cpu time %q in stat: %w", s, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}
