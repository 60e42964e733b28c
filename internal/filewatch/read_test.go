package filewatch

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	file := write("file", "0123456789")
	link := filepath.Join(dir, "link")
	if err := os.Symlink("file", link); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	zero := filepath.Join(dir, "zero")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}

	got, err := Read(link, 10, nil)
	if err != nil || string(got.Data) != "0123456789" || got.Target != file {
		t.Fatalf("Read(link) = %+v, %v; want the file's 10 bytes and its path", got, err)
	}
	var tooLarge *TooLargeError
	if _, err := Read(file, 9, nil); !errors.As(err, &tooLarge) || tooLarge.Limit != 9 {
		t.Errorf("Read over the limit: %v, want *TooLargeError{9}", err)
	}
	var notRegular *NotRegularError
	for _, p := range []string{fifo, zero, dir} {
		if _, err := Read(p, 1<<20, nil); !errors.As(err, &notRegular) {
			t.Errorf("Read(%s) = %v, want *NotRegularError (and no hang, no endless read)", p, err)
		}
	}
	if !strings.Contains((&NotRegularError{Type: fs.ModeDir}).Error(), "directory") {
		t.Error("a directory's error does not say so")
	}
	if _, err := Read(filepath.Join(dir, "missing"), 10, nil); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Read(missing) = %v, want fs.ErrNotExist", err)
	}
}
