package testbed

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"time"
)

// child is a server process the bed runs (weed, etcd, kube-apiserver): in its own process group,
// killed by the kernel if the test binary dies first, its output in <logDir>/<name>.stdout.log
// and .stderr.log.
type child struct {
	name    string
	cmd     *exec.Cmd
	exited  chan struct{} // closed once the process has been reaped
	waitErr error         // valid after exited is closed
	done    chan struct{} // closed when the goroutine that reaps it has returned
	log     *slog.Logger
}

// startChild starts bin with args in dir, with exactly the environment env.
func startChild(name, bin string, args, env []string, dir, logDir string, log *slog.Logger) (*child, error) {
	stdout, err := os.Create(filepath.Join(logDir, name+".stdout.log"))
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	defer stdout.Close()
	stderr, err := os.Create(filepath.Join(logDir, name+".stderr.log"))
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	defer stderr.Close()
	cmd := exec.Command(bin, args...)
	cmd.Dir, cmd.Env = dir, env
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = sysProcAttr()

	c := &child{name: name, cmd: cmd, exited: make(chan struct{}), done: make(chan struct{}), log: log}
	started := make(chan error, 1)
	go func() {
		defer close(c.done)
		// Pdeathsig fires when the thread that started the child exits, not the process: keep
		// this thread for this goroutine until the child has been reaped.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- fmt.Errorf("run %s: %w", bin, err)
			return
		}
		started <- nil
		c.waitErr = cmd.Wait()
		close(c.exited)
	}()
	if err := <-started; err != nil {
		<-c.done
		return nil, err
	}
	log.Debug(name+" started", "pid", cmd.Process.Pid)
	return c, nil
}

// pid is the child's process id, which is also its process group's.
func (c *child) pid() int { return c.cmd.Process.Pid }

// stop sends SIGTERM to the child's group, SIGKILL after timeout, and waits until it is reaped.
func (c *child) stop(timeout time.Duration) error {
	defer func() { <-c.done }()
	pid := c.pid()
	select {
	case <-c.exited:
		return nil // died on its own; start-up already reported why
	default:
	}
	if err := signalGroup(pid, syscall.SIGTERM); err != nil {
		c.log.Warn("sigterm "+c.name, "pid", pid, "error", err)
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-c.exited:
		// The child is gone; anything left in its group is not, yet.
		_ = signalGroup(pid, syscall.SIGKILL)
		c.log.Debug(c.name+" stopped", "pid", pid)
		return nil
	case <-t.C:
	}
	c.log.Warn(c.name+" ignored sigterm, killing it", "pid", pid, "after", timeout)
	if err := signalGroup(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("stop %s: kill pid %d: %w", c.name, pid, err)
	}
	<-c.exited
	return nil
}
