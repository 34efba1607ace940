package untar

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

type entry struct {
	name, link, body string
	typ              byte
	mode             int64
}

func tarOf(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: e.mode, Size: int64(len(e.body))}
		if e.typ != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func compress(t *testing.T, kind string, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	switch kind {
	case "zstd":
		w, err := zstd.NewWriter(&buf, zstd.WithWindowSize(1<<20))
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
		w.Close()
	case "gzip":
		w := gzip.NewWriter(&buf)
		w.Write(data)
		w.Close()
	}
	return buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	archive := tarOf(t,
		entry{name: "manifest.json", typ: tar.TypeReg, body: "{}", mode: 0o644},
		entry{name: "bin/", typ: tar.TypeDir, mode: 0o755},
		entry{name: "bin/kube", typ: tar.TypeReg, body: strings.Repeat("kube", 1000), mode: 0o755},
		entry{name: "bin/kubelet", typ: tar.TypeSymlink, link: "kube"},
		entry{name: "cni/bin/bridge", typ: tar.TypeReg, body: "bridge", mode: 0o700},
		entry{name: "cni/bin/up", typ: tar.TypeSymlink, link: "../../bin/kube"},
	)
	for _, kind := range []string{"zstd", "gzip"} {
		dir := filepath.Join(t.TempDir(), "new")
		if err := Unpack(bytes.NewReader(compress(t, kind, archive)), dir); err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		for name, want := range map[string]struct {
			body string
			mode os.FileMode
		}{
			"manifest.json":  {"{}", 0o644},
			"bin/kube":       {strings.Repeat("kube", 1000), 0o755},
			"cni/bin/bridge": {"bridge", 0o700},
			"bin/kubelet":    {strings.Repeat("kube", 1000), 0o755},
		} {
			p := filepath.Join(dir, name)
			data, err := os.ReadFile(p)
			fi, _ := os.Stat(p)
			if err != nil || string(data) != want.body || fi.Mode().Perm() != want.mode {
				t.Errorf("%s %s: %v %q %v", kind, name, err, shorten(data), fi.Mode())
			}
		}
		if link, err := os.Readlink(filepath.Join(dir, "cni/bin/up")); err != nil || link != "../../bin/kube" {
			t.Errorf("%s: symlink %q %v", kind, link, err)
		}
	}
}

func shorten(b []byte) string {
	if len(b) > 20 {
		return string(b[:20]) + "..."
	}
	return string(b)
}

func TestRefused(t *testing.T) {
	for name, entries := range map[string][]entry{
		"dot dot":             {{name: "../x", typ: tar.TypeReg, body: "x"}},
		"dot dot inside":      {{name: "bin/../../x", typ: tar.TypeReg, body: "x"}},
		"absolute":            {{name: "/etc/x", typ: tar.TypeReg, body: "x"}},
		"absolute symlink":    {{name: "bin/x", typ: tar.TypeSymlink, link: "/etc/passwd"}},
		"symlink escape":      {{name: "bin/x", typ: tar.TypeSymlink, link: "../../x"}},
		"symlink dot dot":     {{name: "x", typ: tar.TypeSymlink, link: ".."}},
		"through a symlink":   {{name: "d", typ: tar.TypeSymlink, link: "."}, {name: "d/x", typ: tar.TypeReg, body: "x"}},
		"hard link":           {{name: "x", typ: tar.TypeLink, link: "y"}},
		"device":              {{name: "x", typ: tar.TypeChar}},
		"over an earlier one": {{name: "x", typ: tar.TypeSymlink, link: "y"}, {name: "x", typ: tar.TypeReg, body: "x"}},
	} {
		root := t.TempDir()
		dir := filepath.Join(root, "in")
		err := Unpack(bytes.NewReader(compress(t, "zstd", tarOf(t, entries...))), dir)
		if err == nil {
			t.Errorf("%s: unpacked", name)
			continue
		}
		if !errors.Is(err, ErrUnsafe) && !errors.Is(err, os.ErrExist) {
			t.Errorf("%s: %v, want a refusal", name, err)
		}
		if _, err := os.Lstat(filepath.Join(root, "x")); err == nil {
			t.Errorf("%s: wrote outside the directory", name)
		}
	}
}

func TestNotAnArchive(t *testing.T) {
	err := Unpack(strings.NewReader("hello, world"), t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "not a zstd or gzip archive") {
		t.Errorf("%v", err)
	}
}

func sumOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestUnpackChecked(t *testing.T) {
	body := strings.Repeat("kubelet", 5000)
	archive := compress(t, "zstd", tarOf(t,
		entry{name: "bin/kube", typ: tar.TypeReg, body: body, mode: 0o755},
		entry{name: "bin/kubelet", typ: tar.TypeSymlink, link: "kube"},
		entry{name: "manifest.json", typ: tar.TypeReg, body: "{}", mode: 0o644},
	))
	// A stream with bytes after the tar's end: they count in its sum.
	archive = append(archive, compress(t, "zstd", make([]byte, 4096))...)
	good := Sums{Archive: sumOf(archive), Files: map[string]string{"bin/kube": sumOf([]byte(body)), "manifest.json": sumOf([]byte("{}"))}}
	if err := UnpackChecked(bytes.NewReader(archive), filepath.Join(t.TempDir(), "b"), good); err != nil {
		t.Fatalf("good sums: %v", err)
	}
	for name, tc := range map[string]struct {
		sums Sums
		want string
	}{
		"archive": {Sums{Archive: sumOf([]byte("other")), Files: good.Files}, "the archive has " + good.Archive},
		"file":    {Sums{Files: map[string]string{"bin/kube": sumOf([]byte("old"))}}, "bin/kube: " + sumOf([]byte(body))},
		"missing": {Sums{Files: map[string]string{"bin/kubectl": sumOf(nil)}}, "bin/kubectl: missing from the archive"},
		"symlink": {Sums{Files: map[string]string{"bin/kubelet": sumOf([]byte(body))}}, "bin/kubelet: missing from the archive"},
	} {
		err := UnpackChecked(bytes.NewReader(archive), filepath.Join(t.TempDir(), "b"), tc.sums)
		if !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an ErrMismatch saying %q", name, err, tc.want)
		}
	}
}
