package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/kubeforge/kubeforge/components/bundle/peer"
)

// The test binary is kube-unpack when asked: -serve re-executes itself.
func TestMain(m *testing.M) {
	if os.Getenv("KUBE_UNPACK_TEST_AS_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func testArchive(t *testing.T) (path, sum string, body []byte) {
	t.Helper()
	body = bytes.Repeat([]byte("#!/bin/sh\necho kube\n"), 5000)
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	tw.WriteHeader(&tar.Header{Name: "bin/kube", Mode: 0o755, Size: int64(len(body)), Typeflag: tar.TypeReg})
	tw.Write(body)
	tw.Close()
	var zb bytes.Buffer
	zw, _ := zstd.NewWriter(&zb)
	zw.Write(tb.Bytes())
	zw.Close()
	path = filepath.Join(t.TempDir(), "bundle.tar.zst")
	if err := os.WriteFile(path, zb.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(zb.Bytes())
	return path, hex.EncodeToString(s[:]), body
}

// A control plane's -serve and a joining host's -from: the host unpacks
// the archive checked and keeps a copy; the server, in a process of its
// own, is gone after its one transfer.
func TestServeAndFetch(t *testing.T) {
	archive, sum, body := testArchive(t)
	tok, _ := peer.NewToken()
	cmd := exec.Command(os.Args[0], "-serve", archive, "-listen", "127.0.0.1", "-for", "1m")
	cmd.Env = append(os.Environ(), "KUBE_UNPACK_TEST_AS_MAIN=1")
	cmd.Stdin = strings.NewReader(tok + "\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("-serve: %v", err)
	}
	var port, pid int
	if _, err := fmt.Sscanf(string(out), "%d %d\n", &port, &pid); err != nil {
		t.Fatalf("-serve printed %q: %v", out, err)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })

	dir := filepath.Join(t.TempDir(), "unpacked")
	keep := filepath.Join(t.TempDir(), "kept.tar.zst")
	o := options{dir: dir, archive: sum, keep: keep, from: fmt.Sprintf("127.0.0.1:%d", port)}
	if msg := o.usageError(); msg != "" {
		t.Fatal(msg)
	}
	if err := run(o, strings.NewReader(tok+"\n"), nil); err != nil {
		t.Fatalf("-from: %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "bin/kube")); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("unpacked bin/kube: %d bytes, %v", len(got), err)
	}
	kept, err := os.ReadFile(keep)
	want, _ := os.ReadFile(archive)
	if err != nil || !bytes.Equal(kept, want) {
		t.Fatalf("kept archive: %d bytes (%v), want %d", len(kept), err, len(want))
	}
	if fi, _ := os.Stat(keep); fi.Mode().Perm() != 0o644 {
		t.Errorf("kept archive mode %v", fi.Mode())
	}
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatal("the server is still running after its one transfer")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// An archive whose sum is not the one expected is not kept.
func TestKeepOnlyChecked(t *testing.T) {
	archive, _, _ := testArchive(t)
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keep := filepath.Join(t.TempDir(), "kept.tar.zst")
	o := options{dir: filepath.Join(t.TempDir(), "u"), archive: strings.Repeat("0", 64), keep: keep}
	if err := run(o, f, nil); err == nil {
		t.Fatal("a wrong sum was accepted")
	}
	entries, _ := os.ReadDir(filepath.Dir(keep))
	if len(entries) != 0 {
		t.Fatalf("left behind: %v", entries)
	}
}

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		o    options
		want string
	}{
		{options{serve: "a", listen: "10.0.0.1", dir: "d"}, "-serve goes alone"},
		{options{serve: "a", listen: "lab1"}, "-serve needs -listen IP"},
		{options{dir: "d", keep: "k"}, "-keep needs -sha256"},
		{options{dir: "d", from: "lab1:80"}, "-from needs IP:PORT"},
		{options{from: "10.0.0.1:80"}, "need -C DIR"},
		{options{serve: "a", listen: "10.0.0.1"}, ""},
		{options{dir: "d", archive: "s", keep: "k", from: "[fd00::1]:4000"}, ""},
	} {
		if got := tc.o.usageError(); !strings.Contains(got, tc.want) || (tc.want == "" && got != "") {
			t.Errorf("%+v: %q, want %q", tc.o, got, tc.want)
		}
	}
}
