package testbed

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// SecretVolume plays the kubelet's part for a mounted Secret (or ConfigMap): every Write puts
// all the files in place at once with the atomic writer's layout, <dir>/<name> -> ..data/<name>
// and ..data -> a timestamped directory swapped by rename, which is how a rotated Secret reaches
// a running pod.
type SecretVolume struct {
	dir string
	mu  sync.Mutex // serialises writes
}

// secretMode is a Secret volume's default file mode (defaultMode 0644).
const secretMode os.FileMode = 0o644

// NewSecretVolume creates dir if needed and writes files there, by name.
func NewSecretVolume(dir string, files map[string]string) (*SecretVolume, error) {
	if dir == "" {
		return nil, errors.New("new secret volume: dir is required")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("new secret volume: %w", err)
	}
	v := &SecretVolume{dir: dir}
	if err := v.Write(files); err != nil {
		return nil, fmt.Errorf("new secret volume: %w", err)
	}
	return v, nil
}

// Write replaces the volume's content with files in one atomic swap, as the kubelet does when
// the Secret changes.
func (v *SecretVolume) Write(files map[string]string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	payload := make(map[string][]byte, len(files))
	for name, content := range files {
		if name == "" || filepath.Base(name) != name || name[0] == '.' {
			return fmt.Errorf("write secret volume: %q is not a plain file name", name)
		}
		payload[name] = []byte(content)
	}
	if err := atomicWrite(v.dir, time.Now(), payload, secretMode); err != nil {
		return fmt.Errorf("write secret volume: %w", err)
	}
	return nil
}

// Path is the file a container reads for the key name: <dir>/<name>, a symlink through ..data.
func (v *SecretVolume) Path(name string) string { return filepath.Join(v.dir, name) }
