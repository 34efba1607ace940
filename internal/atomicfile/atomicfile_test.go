package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "key")
	if err := Write(path, []byte("secret"), 0o600, 0o700); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("stat %v %v", fi, err)
	}
	if di, _ := os.Stat(filepath.Dir(path)); di.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v", di.Mode().Perm())
	}
	if !Same(path, []byte("secret"), 0o600) || Same(path, []byte("other"), 0o600) || Same(path, []byte("secret"), 0o644) {
		t.Error("Same is wrong")
	}
}

func TestFailedWriteKeepsOldContent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := Write(path, []byte("old"), 0o644, 0o755); err != nil {
		t.Fatal(err)
	}
	err := WriteFunc(path, 0o644, 0o755, func(w io.Writer) error {
		_, _ = w.Write([]byte("half"))
		return errors.New("disk full")
	})
	if err == nil {
		t.Fatal("error lost")
	}
	if data, _ := os.ReadFile(path); string(data) != "old" {
		t.Fatalf("content %q after a failed write", data)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
}

func TestCopyKeepsMode(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "bin")
	if err := os.WriteFile(src, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "out", "bin")
	if err := Copy(src, dst, 0o700); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(dst); fi.Mode().Perm() != 0o755 || !Same(dst, []byte("#!/bin/sh\n"), 0o755) {
		t.Fatalf("copy: %v", fi.Mode())
	}
}
