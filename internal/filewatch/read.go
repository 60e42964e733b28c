package filewatch

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// File is one read of a watched file: its bytes, the path its symlinks led to (a kubelet
// volume's ..<timestamp>/<name>) and the metadata of the version read, which tells a later look
// whether the file is still the same.
type File struct {
	Data   []byte
	Target string
	Info   fs.FileInfo
}

// NotRegularError is a path that resolves to a directory, FIFO, device or socket: opening a
// FIFO would block until someone writes, and /dev/zero never ends.
type NotRegularError struct {
	// Type is the file's type; fs.ModeDir for a directory.
	Type fs.FileMode
}

func (e *NotRegularError) Error() string {
	if e.Type&fs.ModeDir != 0 {
		return "is a directory, not a file"
	}
	return fmt.Sprintf("is not a regular file (%s)", e.Type)
}

// TooLargeError is a file longer than the caller's limit.
type TooLargeError struct {
	// Limit is the most the caller accepts, in bytes.
	Limit int64
}

func (e *TooLargeError) Error() string { return fmt.Sprintf("is larger than %d bytes", e.Limit) }

// Read reads a file that the kubelet (or anyone) may replace at any moment, the way the
// projected token and the auth token must be read: the symlinks resolved, the target checked
// to be a regular file before it is opened, and at most limit bytes read. Errors are
// *NotRegularError, *TooLargeError or the *fs.PathError of the failing step. afterResolve, if
// not nil, runs between resolving the symlinks and opening the file (tests swap ..data there).
func Read(path string, limit int64, afterResolve func()) (*File, error) {
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, err
	}
	if afterResolve != nil {
		afterResolve()
	}
	fi, err := os.Stat(target)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &NotRegularError{Type: fi.Mode().Type()}
	}
	f, err := os.Open(target)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// The version actually opened: a rotation may have swapped ..data since the Stat above.
	if fi, err = f.Stat(); err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &NotRegularError{Type: fi.Mode().Type()}
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: target, Err: err}
	}
	if int64(len(data)) > limit {
		return nil, &TooLargeError{Limit: limit}
	}
	return &File{Data: data, Target: target, Info: fi}, nil
}
