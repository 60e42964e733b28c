package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// installName is the file install writes into its directory.
const installName = "sidecar"

// install copies the running binary into dir, so that another container of the pod can run
// `sidecar credential-process` from a shared emptyDir: the image has no shell and no cp, so an
// init container runs `sidecar install /credsidecar/bin` instead. The copy is written to a
// temporary file and renamed, so a reader never finds half a binary.
func install(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 || args[0] == "" || args[0][0] == '-' {
		fmt.Fprintf(stderr, "usage: %s install DIR\n\nCopies this binary to DIR/%s, for credential_process in another container.\n",
			program, installName)
		if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
			return 0
		}
		return 2
	}
	dest, err := copySelf(args[0])
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", program, err)
		return 1
	}
	fmt.Fprintf(stdout, "installed %s\n", dest)
	return 0
}

func copySelf(dir string) (dest string, err error) {
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("install: find this binary: %w", err)
	}
	src, err := os.Open(self)
	if err != nil {
		return "", fmt.Errorf("install: %w", err)
	}
	defer src.Close()
	dest = filepath.Join(dir, installName)
	tmp, err := os.CreateTemp(dir, "."+installName+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("install: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp.Name())
		}
	}()
	_, err = io.Copy(tmp, src)
	err = errors.Join(err, tmp.Chmod(0o755), tmp.Sync(), tmp.Close())
	if err != nil {
		return "", fmt.Errorf("install: write %s: %w", tmp.Name(), err)
	}
	if err = os.Rename(tmp.Name(), dest); err != nil {
		return "", fmt.Errorf("install: %w", err)
	}
	return dest, nil
}
