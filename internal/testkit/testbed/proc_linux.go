package testbed

import "syscall"

// sysProcAttr puts weed in its own process group, so one signal reaches everything it starts,
// and has the kernel kill it if the test binary dies without running its clean-ups.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
