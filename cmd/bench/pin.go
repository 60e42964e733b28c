package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
)

// cpuPlan says where the endpoint section runs its processes. On a machine of two cores, a
// server and the load generator that float over both take turns on each other's core, and the
// result depends on the scheduler more than on the server; pinned to one core each, both
// servers compared get exactly one core and the generator the other.
type cpuPlan struct {
	// server and load are CPU lists for taskset(1): the servers' CPU and this process's.
	// Both are empty when unpinned.
	server, load string
	// unpinned says why nothing is pinned; empty when pinned.
	unpinned string
}

func (p cpuPlan) pinned() bool { return p.unpinned == "" }

// serverEnv is what a pinned server process gets in its environment: GOMAXPROCS matching its
// one CPU, the same for every server compared. Go derives the same from the affinity mask at
// start, but set explicitly it cannot differ between the sidecar and the bare servers.
func (p cpuPlan) serverEnv() []string {
	if !p.pinned() {
		return nil
	}
	return []string{"GOMAXPROCS=1"}
}

// describe is the plan in one sentence, for the report.
func (p cpuPlan) describe() string {
	if !p.pinned() {
		return fmt.Sprintf("Nothing was pinned (%s): the servers and the load generator share the %d cores, "+
			"so the scheduler's noise is part of every figure.", p.unpinned, runtime.NumCPU())
	}
	return fmt.Sprintf("Each server process (the sidecar, bare, bare + limits) runs pinned to CPU %s with "+
		"GOMAXPROCS=1 (`taskset -c %s`), and the load generator (this process, every thread) to CPU %s with "+
		"GOMAXPROCS=1, so every server gets exactly one core and the generator the other, whatever the "+
		"scheduler would do.", p.server, p.server, p.load)
}

// planCPUs picks the first two CPUs this process may run on: servers on the first, the load
// generator on the second. With fewer, or without taskset, or when pin is false, nothing is
// pinned and the plan says why.
func planCPUs(pin bool) cpuPlan {
	if !pin {
		return cpuPlan{unpinned: "-pin=false"}
	}
	list, err := allowedCPUList()
	if err != nil {
		return cpuPlan{unpinned: err.Error()}
	}
	cpus, err := parseCPUList(list)
	if err != nil {
		return cpuPlan{unpinned: err.Error()}
	}
	if len(cpus) < 2 {
		return cpuPlan{unpinned: fmt.Sprintf("this process may run on one CPU only (%s)", list)}
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		return cpuPlan{unpinned: "taskset (util-linux) not found"}
	}
	return cpuPlan{server: strconv.Itoa(cpus[0]), load: strconv.Itoa(cpus[1])}
}

// allowedCPUList reads this process's affinity as a CPU list from /proc/self/status.
func allowedCPUList() (string, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "", fmt.Errorf("read cpu affinity: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", errors.New("read cpu affinity: no Cpus_allowed_list in /proc/self/status")
}

// parseCPUList reads the kernel's CPU list format ("0-3,8,10-11") into CPU numbers, in order.
func parseCPUList(s string) ([]int, error) {
	var cpus []int
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		first, err := strconv.Atoi(lo)
		if err != nil || first < 0 {
			return nil, fmt.Errorf("cpu list %q: bad cpu %q", s, lo)
		}
		last := first
		if isRange {
			if last, err = strconv.Atoi(hi); err != nil || last < first {
				return nil, fmt.Errorf("cpu list %q: bad range %q", s, part)
			}
		}
		for c := first; c <= last; c++ {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

// pinSelf pins every thread of this process to cpus (taskset -a: threads started later inherit
// it from the thread that starts them) and sets GOMAXPROCS to 1. The returned function restores
// the previous affinity and Go's default GOMAXPROCS.
func pinSelf(ctx context.Context, cpus string) (restore func() error, err error) {
	before, err := allowedCPUList()
	if err != nil {
		return nil, err
	}
	if err := tasksetAll(ctx, cpus); err != nil {
		return nil, err
	}
	runtime.GOMAXPROCS(1)
	// The default GOMAXPROCS follows the affinity, so it is restored after the affinity.
	restore = func() error {
		err := tasksetAll(context.WithoutCancel(ctx), before)
		runtime.SetDefaultGOMAXPROCS()
		return err
	}
	// A thread the runtime started while taskset walked the list may have missed it: once more.
	if err := tasksetAll(ctx, cpus); err != nil {
		return nil, errors.Join(err, restore())
	}
	return restore, nil
}

// tasksetAll sets the affinity of every thread of this process.
func tasksetAll(ctx context.Context, cpus string) error {
	out, err := exec.CommandContext(ctx, "taskset", "-a", "-p", "-c", cpus, strconv.Itoa(os.Getpid())).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pin this process to cpus %s: %w: %s", cpus, err, bytes.TrimSpace(out))
	}
	return nil
}
