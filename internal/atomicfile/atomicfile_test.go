package atomicfile

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		data string
		mode fs.FileMode
	}{
		{name: "new file", data: "first", mode: 0o600},
		{name: "replaces, with a wider mode", data: "second, longer", mode: 0o640},
		{name: "replaces, executable", data: "x", mode: 0o755},
		{name: "empty", data: "", mode: 0o600},
	}
	path := filepath.Join(dir, "f")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Write(path, []byte(tt.data), tt.mode); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil || string(got) != tt.data {
				t.Fatalf("content %q (%v), want %q", got, err, tt.data)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != tt.mode {
				t.Fatalf("mode %v, want %v", fi.Mode().Perm(), tt.mode)
			}
			entries, err := os.ReadDir(dir)
			if err != nil || len(entries) != 1 {
				t.Fatalf("directory holds %d entries (%v), want only the file: a temporary file was left", len(entries), err)
			}
		})
	}
}

func TestWriteFailures(t *testing.T) {
	dir := t.TempDir()
	boom := errors.New("reader failed")
	tests := []struct {
		name string
		path string
		r    io.Reader
		want error
	}{
		{name: "missing directory", path: filepath.Join(dir, "absent", "f"), r: bytes.NewReader(nil), want: fs.ErrNotExist},
		{name: "reader fails", path: filepath.Join(dir, "f"), r: io.MultiReader(bytes.NewReader([]byte("part")), errReader{boom}), want: boom},
		{name: "target is a directory", path: dir, r: bytes.NewReader([]byte("x")), want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := WriteFrom(tt.path, tt.r, 0o600)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("WriteFrom = %v, want an error matching %v", err, tt.want)
			}
			if _, serr := os.Stat(filepath.Join(dir, "f")); !errors.Is(serr, fs.ErrNotExist) {
				t.Fatalf("a failed write left the target behind: %v", serr)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 0 {
				t.Fatalf("a failed write left %d entries, want none", len(entries))
			}
		})
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// TestReadersSeeWholeFiles reads while another goroutine rewrites: every read must find one
// complete version.
func TestReadersSeeWholeFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	versions := [][]byte{bytes.Repeat([]byte("a"), 64<<10), bytes.Repeat([]byte("b"), 32<<10)}
	if err := Write(path, versions[0], 0o600); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	bad := make(chan string, 1)
	reads := 0
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			got, err := os.ReadFile(path)
			reads++
			if err != nil || !(bytes.Equal(got, versions[0]) || bytes.Equal(got, versions[1])) {
				select {
				case bad <- "read a partial or missing file":
				default:
				}
				return
			}
		}
	})
	for i := range 50 {
		if err := Write(path, versions[i%2], 0o600); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	select {
	case msg := <-bad:
		t.Fatal(msg)
	default:
	}
	if reads == 0 {
		t.Fatal("the reader never ran")
	}
}

func ExampleWrite() {
	path := filepath.Join(os.TempDir(), "atomicfile-example")
	defer os.Remove(path)
	if err := Write(path, []byte("token"), 0o640); err != nil {
		panic(err)
	}
	b, _ := os.ReadFile(path)
	os.Stdout.Write(append(b, '\n'))
	// Output: token
}
