package testbed

import (
	"os"
	"path/filepath"
	"testing"
)

func TestSecretVolumeRotatesAtomically(t *testing.T) {
	dir := t.TempDir()
	v, err := NewSecretVolume(dir, map[string]string{"token": "first", "other": "x"})
	if err != nil {
		t.Fatal(err)
	}
	firstData, err := os.Readlink(filepath.Join(dir, dataDirName))
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Write(map[string]string{"token": "second", "other": "y"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, want string
	}{
		{name: "token follows the swap", path: v.Path("token"), want: "second"},
		{name: "other key too", path: v.Path("other"), want: "y"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := os.ReadFile(tt.path)
			if err != nil || string(b) != tt.want {
				t.Fatalf("read %s = %q, %v; want %q", tt.path, b, err, tt.want)
			}
			link, err := os.Readlink(tt.path)
			if err != nil || link != filepath.Join(dataDirName, filepath.Base(tt.path)) {
				t.Errorf("%s links to %q (%v), want ..data/%s", tt.path, link, err, filepath.Base(tt.path))
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, firstData)); !os.IsNotExist(err) {
		t.Errorf("the first timestamped directory %s is still there (%v)", firstData, err)
	}
	if err := v.Write(map[string]string{"../escape": "x"}); err == nil {
		t.Error("Write accepted a name outside the volume")
	}
}
