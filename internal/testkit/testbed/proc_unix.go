//go:build unix && !linux

package testbed

import "syscall"

// sysProcAttr puts weed in its own process group. Without Pdeathsig outside Linux, a test binary
// killed outright leaves weed running.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
