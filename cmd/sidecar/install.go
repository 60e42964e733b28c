package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/credsidecar/credsidecar/internal/atomicfile"
)

// installName is the file install writes into its directory.
const installName = "sidecar"

// install copies the running binary into dir, so that another container of the pod can run
// `sidecar credential-process` from a shared emptyDir: the image has no shell and no cp, so an
// init container runs `sidecar install /credsidecar/bin` instead. The copy is written
// with internal/atomicfile, so a reader never finds half a binary.
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

func copySelf(dir string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("install: find this binary: %w", err)
	}
	src, err := os.Open(self)
	if err != nil {
		return "", fmt.Errorf("install: %w", err)
	}
	defer src.Close()
	dest := filepath.Join(dir, installName)
	if err := atomicfile.WriteFrom(dest, src, 0o755); err != nil {
		return "", fmt.Errorf("install: %w", err)
	}
	return dest, nil
}
