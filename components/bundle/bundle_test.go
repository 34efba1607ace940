package bundle

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/klauspost/compress/zstd"

	"github.com/kubeforge/kubeforge/components/bundle/untar"
)

func TestArchiveRoundTripAndDeterminism(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{
		ManifestFile:      `{"manifestVersion":1}`,
		"bin/kube":        "kube binary",
		"cni/bin/flannel": "cni plugin",
	}
	for p, content := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	paths := []string{"cni/bin/flannel", "bin/kube", ManifestFile}
	for _, c := range []Compression{Gzip, Zstd} {
		a := filepath.Join(t.TempDir(), "a"+c.Ext())
		b := filepath.Join(t.TempDir(), "b"+c.Ext())
		if err := WriteArchive(root, paths, a, c); err != nil {
			t.Fatal(err)
		}
		if err := WriteArchive(root, paths, b, c); err != nil {
			t.Fatal(err)
		}
		sa, _, _ := HashFile(a)
		sb, _, _ := HashFile(b)
		if sa != sb {
			t.Errorf("%s: the same files gave two different archives", c)
		}
		var order []string
		err := ReadArchive(a, func(name string, mode os.FileMode, r io.Reader) error {
			data, _ := io.ReadAll(r)
			if string(data) != files[name] {
				t.Errorf("%s: %s = %q", c, name, data)
			}
			if mode != 0o755 {
				t.Errorf("%s: %s mode %v", c, name, mode)
			}
			order = append(order, name)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(order, ",") != ManifestFile+",bin/kube,cni/bin/flannel" {
			t.Errorf("%s: order %v, want the manifest first then sorted", c, order)
		}
	}
}

func TestWriteImage(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "pause")
	if err := os.WriteFile(bin, []byte("#!/bin/true\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	spec := ImageSpec{
		Ref:        "kubeforge.local/pause:test",
		Files:      []ImageFile{{Path: "/pause", Source: bin}, {Path: "/etc/motd", Data: []byte("hi"), Mode: 0o644}},
		Entrypoint: []string{"/pause"},
		User:       "65535:65535",
		Ports:      []string{"53/udp"},
	}
	out1, out2 := filepath.Join(dir, "1.tar"), filepath.Join(dir, "2.tar")
	id1, err := WriteImage(spec, out1)
	if err != nil {
		t.Fatal(err)
	}
	id2, err := WriteImage(spec, out2)
	if err != nil {
		t.Fatal(err)
	}
	if id1 != id2 {
		t.Errorf("image id not reproducible: %s vs %s", id1, id2)
	}
	img, err := tarball.ImageFromPath(out1, nil)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.Entrypoint[0] != "/pause" || cf.Config.User != "65535:65535" || cf.OS != "linux" || cf.Architecture == "" {
		t.Errorf("config %+v", cf.Config)
	}
	if _, ok := cf.Config.ExposedPorts["53/udp"]; !ok {
		t.Errorf("ports %v", cf.Config.ExposedPorts)
	}
	// docker-save manifest names the reference, which `ctr images import` uses.
	mf, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(out1) })
	if err != nil || len(mf) != 1 || len(mf[0].RepoTags) != 1 || mf[0].RepoTags[0] != "kubeforge.local/pause:test" {
		t.Fatalf("manifest %+v, %v", mf, err)
	}

	if _, err := WriteImage(ImageSpec{Ref: "x:1", Files: []ImageFile{{Path: "relative", Data: nil}}}, filepath.Join(dir, "bad.tar")); err == nil {
		t.Error("relative path accepted")
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "make bundle") {
		t.Errorf("missing manifest: %v", err)
	}
	for name, data := range map[string]string{
		"garbled":     "{not json",
		"old version": `{"manifestVersion":0,"files":[{"path":"bin/kube"}]}`,
		"no files":    `{"manifestVersion":1}`,
	} {
		if err := os.WriteFile(filepath.Join(dir, ManifestFile), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), ManifestFile) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestComponents(t *testing.T) {
	m := &Manifest{
		Files: []File{
			{Path: "bin/kube", Programs: []Program{{Name: "kubelet", Version: "v1.35.4"}, {Name: "etcd", Version: "v3.6.5"}}},
		},
		Images: []Image{{Name: "coredns", Version: "v1.13.2", Path: "images/coredns.tar"}},
	}
	got := m.Components()
	if len(got) != 3 || got[0].Name != "coredns (image)" || got[1].Name != "etcd" || got[2].Path != "bin/kube" {
		t.Fatalf("%+v", got)
	}
	if f, p, ok := m.Program("etcd"); !ok || f.Path != "bin/kube" || p.Version != "v3.6.5" {
		t.Fatalf("Program(etcd) = %v %v %v", f, p, ok)
	}
}

func TestReadVersionFile(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, data, module, version string
	}{
		{"keepalived", "module=keepalived (Debian source 1:2.2.7-1)\nversion=v2.2.7\nsha256-orig=c619\n", "keepalived (Debian source 1:2.2.7-1)", "v2.2.7"},
		{"no version", "module=keepalived\n", "", ""},
		{"empty", "", "", ""},
	} {
		path := filepath.Join(dir, tc.name+".version")
		if err := os.WriteFile(path, []byte(tc.data), 0o644); err != nil {
			t.Fatal(err)
		}
		module, version, err := ReadVersionFile(path)
		if module != tc.module || version != tc.version || (err != nil) != (tc.version == "") {
			t.Errorf("%s: %q %q %v", tc.name, module, version, err)
		}
	}
	if _, _, err := ReadVersionFile(filepath.Join(dir, "missing.version")); err == nil {
		t.Error("missing file accepted")
	}
}

// A zstd archive says its window in its frame header, and the hosts'
// decoder (untar) accepts it; untar unpacks both compressions.
func TestArchiveWindowAndUnpack(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, ManifestFile), []byte("{}"), 0o644)
	os.WriteFile(filepath.Join(root, "bin/kube"), []byte(strings.Repeat("kube", 1<<16)), 0o755)
	for _, c := range []Compression{Gzip, Zstd} {
		a := filepath.Join(t.TempDir(), "a"+c.Ext())
		if err := WriteArchive(root, []string{ManifestFile, "bin/kube"}, a, c); err != nil {
			t.Fatal(err)
		}
		if IsZstd(a) != (c == Zstd) {
			t.Errorf("IsZstd(%s) = %v", a, IsZstd(a))
		}
		if c == Zstd {
			f, _ := os.Open(a)
			var h zstd.Header
			buf := make([]byte, zstd.HeaderMaxSize)
			n, _ := io.ReadFull(f, buf)
			f.Close()
			if err := h.Decode(buf[:n]); err != nil {
				t.Fatal(err)
			}
			// A small input gets a window of its own size: no larger than ZstdWindow.
			if h.WindowSize > ZstdWindow || ZstdWindow > untar.MaxWindow {
				t.Errorf("window %d, ZstdWindow %d, the decoder accepts %d", h.WindowSize, ZstdWindow, untar.MaxWindow)
			}
		}
		dir := filepath.Join(t.TempDir(), "out")
		f, _ := os.Open(a)
		err := untar.Unpack(f, dir)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		if data, _ := os.ReadFile(filepath.Join(dir, "bin/kube")); len(data) != 4<<16 {
			t.Errorf("%s: bin/kube has %d bytes", c, len(data))
		}
	}
}

func TestManifestUnpacker(t *testing.T) {
	dir := t.TempDir()
	m := &Manifest{ManifestVersion: ManifestVersion, Archive: "kubeforge-bundle-v1-linux-amd64.tar.zst",
		Unpacker: &Unpacker{Path: "kube-unpack", SHA256: strings.Repeat("a", 64), Size: 2 << 20},
		Files:    []File{{Path: "bin/kube"}}}
	if err := WriteManifest(filepath.Join(dir, ManifestFile), m); err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Unpacker == nil || *got.Unpacker != *m.Unpacker {
		t.Errorf("unpacker %+v, want %+v", got.Unpacker, m.Unpacker)
	}
	// A manifest from before (gzip, no unpacker) still loads.
	m.Unpacker, m.Archive = nil, "kubeforge-bundle-v0-linux-amd64.tar.gz"
	WriteManifest(filepath.Join(dir, ManifestFile), m)
	data, _ := os.ReadFile(filepath.Join(dir, ManifestFile))
	if strings.Contains(string(data), "unpacker") {
		t.Errorf("a gzip bundle's manifest names an unpacker:\n%s", data)
	}
	if got, err := Load(dir); err != nil || got.Unpacker != nil {
		t.Errorf("%+v %v", got, err)
	}
}
