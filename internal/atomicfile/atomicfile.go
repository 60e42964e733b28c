// Package atomicfile replaces files so that a reader sees the old content or the new one,
// never a mixture or nothing: the credentials file, the generated auth token and the binary
// `sidecar install` copies are all read by other containers while the sidecar writes them.
//
// The new content goes to a temporary file in the same directory (a rename is atomic only
// within one file system), which is given its mode, written, synced and renamed over the
// target; the directory is then synced so that the rename survives a crash. The target must
// therefore not be a bind-mounted single file: a rename cannot replace a mount point.
package atomicfile

import (
	"bytes"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Write replaces path with data, with mode. The returned error is the one of the step that
// failed (an *fs.PathError or *os.LinkError naming the step and the file); callers add what
// the file is.
func Write(path string, data []byte, mode fs.FileMode) error {
	return WriteFrom(path, bytes.NewReader(data), mode)
}

// WriteFrom is Write for content read from r, such as a binary too large to hold in memory.
func WriteFrom(path string, r io.Reader, mode fs.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	// The mode is set before any byte is written, so a secret never sits in a file whose mode
	// is not yet the one asked for.
	if err = f.Chmod(mode); err != nil {
		return err
	}
	if _, err = io.Copy(f, r); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	syncDir(dir)
	return nil
}

// syncDir makes the rename durable. Some file systems cannot sync a directory; that is not an
// error, since every file written here is rewritten at the next start anyway.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	_ = d.Close()
}
