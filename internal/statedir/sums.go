package statedir

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/kubeforge/kubeforge/components/bundle"
	"github.com/kubeforge/kubeforge/internal/atomicfile"
)

// sumsFile caches the sha256 of the bundle archives this state directory
// has sent, by path, size, modification time and inode: hashing the 91
// MB archive on every run was a quarter of what joining a node costs the
// admin machine. A stale entry cannot go unnoticed: the hosts check the
// stream against the sum, and every file against the manifest.
const sumsFile = "cache/archive-sums.json"

type archiveSum struct {
	Size    int64  `json:"size"`
	ModTime int64  `json:"mtimeNs"`
	Inode   uint64 `json:"inode"`
	SHA256  string `json:"sha256"`
}

// ArchiveSum is the sha256 and size of a bundle archive (or the unpacker
// beside it), from the cache when the file is the one hashed before,
// else hashed and cached. A cache that cannot be read or written is not
// an error: the file is hashed.
func (d Dir) ArchiveSum(archive string) (string, int64, error) {
	abs, err := filepath.Abs(archive)
	if err != nil {
		return "", 0, err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return "", 0, err
	}
	key := archiveSum{Size: fi.Size(), ModTime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		key.Inode = st.Ino
	}
	cache := map[string]archiveSum{}
	if data, err := os.ReadFile(d.File(sumsFile)); err == nil {
		_ = json.Unmarshal(data, &cache) // unreadable: rebuilt below
	} else if !errors.Is(err, fs.ErrNotExist) {
		cache = nil
	}
	if c, ok := cache[abs]; ok && c.SHA256 != "" {
		sum := c.SHA256
		if c.SHA256 = ""; c == key {
			return sum, c.Size, nil
		}
	}
	sum, size, err := bundle.HashFile(abs)
	if err != nil || cache == nil || size != key.Size {
		return sum, size, err
	}
	key.SHA256 = sum
	cache[abs] = key
	if data, err := json.Marshal(cache); err == nil {
		_ = atomicfile.Write(d.File(sumsFile), data, 0o600, 0o700)
	}
	return sum, size, nil
}
