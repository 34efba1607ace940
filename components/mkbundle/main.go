// Command mkbundle assembles dist/ from the component binaries that `make`
// built into bin/: it copies them, makes the offline images, writes the
// manifest (name, version, sha256, size of each file) and packs one
// compressed archive for kubeforge to upload. Versions are read from the
// build information inside each binary, not typed in.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/kubeforge/kubeforge/components/bundle"
	pauseversion "github.com/kubeforge/kubeforge/components/pause/version"
	"github.com/kubeforge/kubeforge/internal/atomicfile"
)

// kubeforgeModule is this repo's module; programs built from it take the
// kubeforge version.
const kubeforgeModule = "github.com/kubeforge/kubeforge"

type fileSpec struct {
	path     string // in the bundle
	from     string // below --bin
	programs []programSpec
}

type programSpec struct {
	name   string
	module string // whose version the program carries
	// notGo: the program carries no Go build information; its build
	// script writes FROM.version (bundle.ReadVersionFile) next to it.
	notGo bool
}

func multicall(module string, names ...string) []programSpec {
	out := make([]programSpec, len(names))
	for i, n := range names {
		out[i] = programSpec{name: n, module: module}
	}
	return out
}

// files is what goes to every host.
var files = []fileSpec{
	{path: "bin/kube", from: "kube", programs: append(append(append(
		multicall("k8s.io/kubernetes", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "kubectl"),
		programSpec{name: "etcd", module: "go.etcd.io/etcd/server/v3"}),
		programSpec{name: "etcdctl", module: "go.etcd.io/etcd/etcdctl/v3"}),
		programSpec{name: "etcdutl", module: "go.etcd.io/etcd/etcdutl/v3"})},
	{path: "bin/flanneld", from: "flanneld", programs: multicall("github.com/flannel-io/flannel", "flanneld")},
	{path: "bin/containerd", from: "containerd", programs: multicall("github.com/containerd/containerd/v2", "containerd")},
	{path: "bin/ctr", from: "ctr", programs: multicall("github.com/containerd/containerd/v2", "ctr")},
	{path: "bin/containerd-shim-runc-v2", from: "containerd-shim-runc-v2", programs: multicall("github.com/containerd/containerd/v2", "containerd-shim-runc-v2")},
	{path: "bin/runc", from: "runc", programs: multicall("github.com/opencontainers/runc", "runc")},
	{path: "bin/crictl", from: "crictl", programs: multicall("sigs.k8s.io/cri-tools", "crictl")},
	{path: "bin/keepalived", from: "keepalived", programs: []programSpec{{name: "keepalived", notGo: true}}},
	{path: "bin/kube-apiserver-check", from: "kube-apiserver-check", programs: multicall(kubeforgeModule, "kube-apiserver-check")},
	{path: "cni/bin/bridge", from: "cni/bridge", programs: multicall("github.com/containernetworking/plugins", "cni-bridge")},
	{path: "cni/bin/host-local", from: "cni/host-local", programs: multicall("github.com/containernetworking/plugins", "cni-host-local")},
	{path: "cni/bin/loopback", from: "cni/loopback", programs: multicall("github.com/containernetworking/plugins", "cni-loopback")},
	{path: "cni/bin/portmap", from: "cni/portmap", programs: multicall("github.com/containernetworking/plugins", "cni-portmap")},
	{path: "cni/bin/flannel", from: "cni/flannel", programs: multicall(kubeforgeModule, "cni-flannel")},
}

// ImageRegistry prefixes the offline images' references. Nothing is ever
// pulled from it: the images are imported into containerd on each host.
const ImageRegistry = "kubeforge.local"

type imageSpec struct {
	name    string
	from    string // the binary inside
	module  string // whose version tags the image; "" for pauseversion
	image   func(binary, version string) bundle.ImageSpec
	version string
}

var images = []imageSpec{
	{name: "pause", from: "pause", version: pauseversion.Pause, image: func(binary, version string) bundle.ImageSpec {
		return bundle.ImageSpec{
			Ref:        ImageRegistry + "/pause:" + version,
			Files:      []bundle.ImageFile{{Path: "/pause", Source: binary}},
			Entrypoint: []string{"/pause"},
			User:       "65535:65535",
		}
	}},
	{name: "coredns", from: "coredns", module: "github.com/coredns/coredns", image: func(binary, version string) bundle.ImageSpec {
		return bundle.ImageSpec{
			Ref:        ImageRegistry + "/coredns:" + version,
			Files:      []bundle.ImageFile{{Path: "/coredns", Source: binary}},
			Entrypoint: []string{"/coredns"},
			User:       "65532:65532",
			Ports:      []string{"53/udp", "53/tcp", "9153/tcp"},
		}
	}},
}

func main() {
	binDir := flag.String("bin", "bin", "directory holding the built components")
	out := flag.String("out", "dist", "bundle directory to write")
	version := flag.String("kubeforge-version", "dev", "version of this tree")
	compression := flag.String("compression", string(bundle.Zstd), "archive compression: zstd, or gzip (hosts unpack it with their own tar)")
	flag.Parse()
	c, err := bundle.ParseCompression(*compression)
	if err == nil {
		err = build(*binDir, *out, *version, c, os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkbundle:", err)
		os.Exit(1)
	}
}

func build(binDir, out, version string, c bundle.Compression, log io.Writer) error {
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	goVersion, err := bundle.GoVersion(filepath.Join(binDir, "kube"))
	if err != nil {
		return err
	}
	m := &bundle.Manifest{
		ManifestVersion: bundle.ManifestVersion,
		Kubeforge:       version,
		OS:              "linux",
		Arch:            runtime.GOARCH,
		GoVersion:       goVersion,
		Archive:         fmt.Sprintf("kubeforge-bundle-%s-linux-%s%s", version, runtime.GOARCH, c.Ext()),
	}
	paths := []string{bundle.ManifestFile}
	for _, spec := range files {
		src := filepath.Join(binDir, spec.from)
		f := bundle.File{Path: spec.path}
		for _, p := range spec.programs {
			module, v := p.module, version
			switch {
			case p.notGo:
				module, v, err = bundle.ReadVersionFile(src + ".version")
			case p.module != kubeforgeModule:
				v, err = bundle.ModuleVersion(src, p.module)
			}
			if err != nil {
				return fmt.Errorf("%w (run 'make components' first)", err)
			}
			f.Programs = append(f.Programs, bundle.Program{Name: p.name, Module: module, Version: v})
		}
		if err := atomicfile.Copy(src, filepath.Join(out, spec.path), 0o755); err != nil {
			return fmt.Errorf("%w (run 'make components' first)", err)
		}
		if f.SHA256, f.Size, err = bundle.HashFile(filepath.Join(out, spec.path)); err != nil {
			return err
		}
		m.Files = append(m.Files, f)
		paths = append(paths, spec.path)
	}
	for _, spec := range images {
		src := filepath.Join(binDir, spec.from)
		v := spec.version
		if spec.module != "" {
			if v, err = bundle.ModuleVersion(src, spec.module); err != nil {
				return err
			}
		}
		is := spec.image(src, v)
		path := "images/" + spec.name + ".tar"
		start := time.Now()
		if _, err := bundle.WriteImage(is, filepath.Join(out, path)); err != nil {
			return err
		}
		img := bundle.Image{Name: spec.name, Ref: is.Ref, Path: path, Module: spec.module, Version: v}
		if img.Module == "" {
			img.Module = kubeforgeModule
		}
		if img.SHA256, img.Size, err = bundle.HashFile(filepath.Join(out, path)); err != nil {
			return err
		}
		fmt.Fprintf(log, "image %-8s %-40s %6.1f MiB  %s\n", spec.name, is.Ref, mib(img.Size), time.Since(start).Round(time.Millisecond))
		m.Images = append(m.Images, img)
		paths = append(paths, path)
	}
	if m.Unpacker, err = addUnpacker(binDir, out); err != nil {
		return err
	}
	fmt.Fprintf(log, "unpacker %s: %.1f MiB, beside the archive\n", m.Unpacker.Path, mib(m.Unpacker.Size))
	if err := bundle.WriteManifest(filepath.Join(out, bundle.ManifestFile), m); err != nil {
		return err
	}
	var raw int64
	for _, f := range m.Files {
		raw += f.Size
	}
	for _, img := range m.Images {
		raw += img.Size
	}
	start := time.Now()
	archive := filepath.Join(out, m.Archive)
	if err := bundle.WriteArchive(out, paths, archive, c); err != nil {
		return err
	}
	fi, err := os.Stat(archive)
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "bundle %s: %d files, %.1f MiB raw, %.1f MiB %s (%.0f%%) in %s\n",
		archive, len(paths), mib(raw), mib(fi.Size()), c, 100*float64(fi.Size())/float64(raw), time.Since(start).Round(time.Millisecond))
	return nil
}

// UnpackerFile is kube-unpack's name in bin/ and in dist/.
const UnpackerFile = "kube-unpack"

// addUnpacker copies kube-unpack beside the archive. Not into it: a host
// without a zstd program needs it before it can read the archive, and it
// checks every file's sum as it unpacks them (gzip archives too).
func addUnpacker(binDir, out string) (*bundle.Unpacker, error) {
	dst := filepath.Join(out, UnpackerFile)
	if err := atomicfile.Copy(filepath.Join(binDir, UnpackerFile), dst, 0o755); err != nil {
		return nil, fmt.Errorf("%w (the bundle needs it: run 'make unpack' first)", err)
	}
	// The hosts install it 0755, and its sum is checked: the same here.
	if err := os.Chmod(dst, 0o755); err != nil {
		return nil, err
	}
	u := &bundle.Unpacker{Path: UnpackerFile}
	var err error
	if u.SHA256, u.Size, err = bundle.HashFile(dst); err != nil {
		return nil, err
	}
	return u, nil
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
