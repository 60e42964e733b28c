//go:build !unix

package testbed

import (
	"context"
	"errors"
	"syscall"
)

var errUnsupported = errors.New("the seaweedfs runner needs a unix system")

func sysProcAttr() *syscall.SysProcAttr { return nil }

func signalGroup(int, syscall.Signal) error { return errUnsupported }

func lockStartup(context.Context, string) (func(), error) { return nil, errUnsupported }

func processAlive(int) bool { return true }
