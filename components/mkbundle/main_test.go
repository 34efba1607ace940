package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubeforge/kubeforge/components/bundle"
)

// kube-unpack goes beside the archive, executable, with its sum and size
// in the manifest; without it a zstd bundle is refused with what to do.
func TestAddUnpacker(t *testing.T) {
	bin, out := t.TempDir(), t.TempDir()
	if _, err := addUnpacker(bin, out); err == nil || !strings.Contains(err.Error(), "make unpack") {
		t.Errorf("without bin/kube-unpack: %v", err)
	}
	if err := os.WriteFile(filepath.Join(bin, UnpackerFile), []byte("unpacker"), 0o700); err != nil {
		t.Fatal(err)
	}
	u, err := addUnpacker(bin, out)
	if err != nil {
		t.Fatal(err)
	}
	sum, size, _ := bundle.HashFile(filepath.Join(bin, UnpackerFile))
	if u.Path != UnpackerFile || u.SHA256 != sum || u.Size != size {
		t.Errorf("%+v, want %s %s %d", u, UnpackerFile, sum, size)
	}
	if fi, err := os.Stat(filepath.Join(out, UnpackerFile)); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("dist/kube-unpack: %v %v", fi, err)
	}
}
