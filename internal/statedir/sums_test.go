package statedir

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubeforge/kubeforge/components/bundle"
)

// The archive is hashed once; the cache answers while the file is the
// same, and a changed file (size or time) is hashed again.
func TestArchiveSumCache(t *testing.T) {
	d := Dir(t.TempDir())
	archive := filepath.Join(t.TempDir(), "bundle.tar.zst")
	if err := os.WriteFile(archive, []byte("archive one"), 0o644); err != nil {
		t.Fatal(err)
	}
	want, _, _ := bundle.HashFile(archive)
	sum, size, err := d.ArchiveSum(archive)
	if err != nil || sum != want || size != 11 {
		t.Fatalf("first: %s %d %v, want %s 11", sum, size, err, want)
	}
	// Prove the second answer comes from the cache: plant a sum there.
	data, err := os.ReadFile(d.File(sumsFile))
	if err != nil {
		t.Fatal(err)
	}
	planted := strings.Repeat("ab", 32)
	if err := os.WriteFile(d.File(sumsFile), []byte(strings.ReplaceAll(string(data), want, planted)), 0o600); err != nil {
		t.Fatal(err)
	}
	if sum, _, _ := d.ArchiveSum(archive); sum != planted {
		t.Errorf("second: %s, want the cached %s", sum, planted)
	}
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(archive, later, later); err != nil {
		t.Fatal(err)
	}
	if sum, _, _ := d.ArchiveSum(archive); sum != want {
		t.Errorf("after a touch: %s, want it hashed again (%s)", sum, want)
	}
	if err := os.WriteFile(archive, []byte("archive two, longer"), 0o644); err != nil {
		t.Fatal(err)
	}
	two, _, _ := bundle.HashFile(archive)
	if sum, size, _ := d.ArchiveSum(archive); sum != two || size != 19 {
		t.Errorf("a new archive: %s %d, want %s 19", sum, size, two)
	}
	// A cache that is not JSON is rebuilt, not an error.
	os.WriteFile(d.File(sumsFile), []byte("{"), 0o600)
	if sum, _, err := d.ArchiveSum(archive); err != nil || sum != two {
		t.Errorf("a broken cache: %s %v", sum, err)
	}
	var cache map[string]archiveSum
	data, _ = os.ReadFile(d.File(sumsFile))
	if err := json.Unmarshal(data, &cache); err != nil || len(cache) != 1 {
		t.Errorf("the cache after a rebuild: %s (%v)", data, err)
	}
}
