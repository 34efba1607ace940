package main

// The images `kubeadm init` runs, built here from the same binaries the
// bundle ships, so the reference path needs no registry. kubeadm names
// them after registry.k8s.io; they are imported into containerd on the
// host before init, and its preflight "pull" finds them present.
//
// The four Kubernetes images and etcd share one layer: bin/kube, the
// multicall binary, with a symbolic link for each program (what the
// bundle does on the host). bundle.WriteImage makes one layer of regular
// files per image, which would give the host five copies of bin/kube to
// upload, unpack and store: a cost upstream's per-program images do not
// have, and one that would make the reference look slower than it is. One
// docker-save archive holds all the images, the shared layer once;
// containerd stores and unpacks it once.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/kubeforge/kubeforge/components/bundle"
)

// kubeadmImageRecipe changes when the way the images are made changes, so
// cached images from an older recipe are not reused.
const kubeadmImageRecipe = "kubeadm-images-2"

// Where a kubeadm image's command finds its program: the static pod
// manifests call "kube-apiserver", "etcd"... through PATH, the kube-proxy
// DaemonSet calls /usr/local/bin/kube-proxy, as in the upstream images.
const imagePath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// kubeadmVersions are the versions kubeadm is told to use, read from the
// binaries themselves.
type kubeadmVersions struct {
	Kubernetes string // v1.35.4
	EtcdTag    string // 3.6.5-0: etcd's version in kubeadm's tag scheme
	CoreDNSTag string // v1.13.2
}

// The version of the pause image kubeadm v1.37 names (constants.PauseVersion).
// Our pause is the bundle's own build; the sandbox protocol has no version
// to match, so it is tagged with the name kubeadm and containerd look for.
const kubeadmPauseTag = "3.10.2"

// kubeadmImagesFile is the archive's name in the cache directory.
const kubeadmImagesFile = "kubeadm-images.tar"

// buildKubeadmImages makes (or finds cached under cacheDir) the archive of
// the reference path's images from bundleDir's bin/kube, binDir's pause and
// coredns, and iptables taken from the lab hosts' image (labImage):
// kube-proxy in iptables mode execs iptables-restore inside its container,
// and using the hosts' own iptables (nf_tables backend) keeps its rules
// compatible with those flanneld writes from the host. It returns the
// archive's path and the refs in it.
func buildKubeadmImages(ctx context.Context, bundleDir, binDir, labImage, cacheDir string) (string, []string, kubeadmVersions, error) {
	kube := filepath.Join(bundleDir, "bin", "kube")
	pause := filepath.Join(binDir, "pause")
	coredns := filepath.Join(binDir, "coredns")
	var v kubeadmVersions
	var err error
	if v.Kubernetes, err = bundle.ModuleVersion(kube, "k8s.io/kubernetes"); err != nil {
		return "", nil, v, err
	}
	etcd, err := bundle.ModuleVersion(kube, "go.etcd.io/etcd/server/v3")
	if err != nil {
		return "", nil, v, err
	}
	v.EtcdTag = strings.TrimPrefix(etcd, "v") + "-0"
	if v.CoreDNSTag, err = bundle.ModuleVersion(coredns, "github.com/coredns/coredns"); err != nil {
		return "", nil, v, err
	}
	labID, err := output(ctx, "docker", "image", "inspect", "-f", "{{.Id}}", labImage)
	if err != nil {
		return "", nil, v, fmt.Errorf("the lab image: %w", err)
	}

	const reg = "registry.k8s.io/"
	kubeRefs := []string{
		reg + "kube-apiserver:" + v.Kubernetes,
		reg + "kube-controller-manager:" + v.Kubernetes,
		reg + "kube-scheduler:" + v.Kubernetes,
		reg + "etcd:" + v.EtcdTag,
	}
	proxyRef := reg + "kube-proxy:" + v.Kubernetes
	pauseRef := reg + "pause:" + kubeadmPauseTag
	dnsRef := reg + "coredns/coredns:" + v.CoreDNSTag
	refs := append(append([]string(nil), kubeRefs...), proxyRef, pauseRef, dnsRef)

	// The cache key: the recipe and every input.
	h := sha256.New()
	fmt.Fprintln(h, kubeadmImageRecipe, labID, refs)
	for _, f := range []string{kube, pause, coredns} {
		sum, _, err := bundle.HashFile(f)
		if err != nil {
			return "", nil, v, err
		}
		fmt.Fprintln(h, f, sum)
	}
	dir := filepath.Join(cacheDir, hex.EncodeToString(h.Sum(nil))[:16])
	archive := filepath.Join(dir, kubeadmImagesFile)
	if _, err := os.Stat(archive); err == nil {
		return archive, refs, v, nil
	}

	kubeLayer := []layerEntry{{path: "/usr/local/bin/kube", source: kube, mode: 0o755}}
	for _, p := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy", "etcd"} {
		kubeLayer = append(kubeLayer, layerEntry{path: "/usr/local/bin/" + p, link: "kube"})
	}
	ipt, err := iptablesFiles(ctx, labImage)
	if err != nil {
		return "", nil, v, err
	}
	base, err := makeLayer(kubeLayer)
	if err != nil {
		return "", nil, v, err
	}
	iptLayer, err := makeLayer(ipt)
	if err != nil {
		return "", nil, v, err
	}
	pauseLayer, err := makeLayer([]layerEntry{{path: "/pause", source: pause, mode: 0o755}})
	if err != nil {
		return "", nil, v, err
	}
	dnsLayer, err := makeLayer([]layerEntry{{path: "/coredns", source: coredns, mode: 0o755}})
	if err != nil {
		return "", nil, v, err
	}
	images := map[name.Reference]v1.Image{}
	add := func(ref string, layers []v1.Layer, c v1.Config) error {
		r, err := name.ParseReference(ref)
		if err != nil {
			return err
		}
		img, err := makeImage(layers, c)
		images[r] = img
		return err
	}
	for _, ref := range kubeRefs {
		if err := add(ref, []v1.Layer{base}, v1.Config{Env: []string{imagePath}}); err != nil {
			return "", nil, v, err
		}
	}
	if err := add(proxyRef, []v1.Layer{base, iptLayer}, v1.Config{Env: []string{imagePath}}); err != nil {
		return "", nil, v, err
	}
	if err := add(pauseRef, []v1.Layer{pauseLayer}, v1.Config{Entrypoint: []string{"/pause"}, User: "65535:65535"}); err != nil {
		return "", nil, v, err
	}
	// Upstream's CoreDNS image runs as 65532 with a file capability on
	// /coredns; this layer carries no xattrs, so the image runs as root
	// and binds :53 with the NET_BIND_SERVICE capability kubeadm's
	// Deployment adds (it drops all others).
	if err := add(dnsRef, []v1.Layer{dnsLayer}, v1.Config{Entrypoint: []string{"/coredns"},
		ExposedPorts: map[string]struct{}{"53/udp": {}, "53/tcp": {}, "9153/tcp": {}}}); err != nil {
		return "", nil, v, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, v, err
	}
	tmp := archive + ".tmp"
	if err := tarball.MultiRefWriteToFile(tmp, images); err != nil {
		return "", nil, v, err
	}
	return archive, refs, v, os.Rename(tmp, archive)
}

// layerEntry is a file or a symbolic link of a layer.
type layerEntry struct {
	path   string // absolute
	source string // the file on disk; or
	data   []byte // its content
	link   string // a symbolic link to this, instead
	mode   int64
}

// makeLayer builds a gzipped layer in memory, with fixed owners and times
// so the same inputs give the same digest. It is compressed once.
func makeLayer(entries []layerEntry) (v1.Layer, error) {
	sort.Slice(entries, func(i, j int) bool { return entries[i].path < entries[j].path })
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	epoch := time.Unix(0, 0)
	dirs := map[string]bool{}
	for _, e := range entries {
		var parents []string
		for d := filepath.Dir(e.path); d != "/" && !dirs[d]; d = filepath.Dir(d) {
			dirs[d] = true
			parents = append([]string{d}, parents...)
		}
		for _, d := range parents {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d[1:] + "/", Mode: 0o755, ModTime: epoch}); err != nil {
				return nil, err
			}
		}
		if e.link != "" {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: e.path[1:], Linkname: e.link, Mode: 0o777, ModTime: epoch}); err != nil {
				return nil, err
			}
			continue
		}
		data := e.data
		if e.source != "" {
			var err error
			if data, err = os.ReadFile(e.source); err != nil {
				return nil, err
			}
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: e.path[1:], Mode: e.mode, Size: int64(len(data)), ModTime: epoch}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	gz := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(gz)), nil })
}

// makeImage is a linux image of these layers and this configuration,
// created at the Unix epoch so its ID depends on its content only.
func makeImage(layers []v1.Layer, c v1.Config) (v1.Image, error) {
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	cf.Config = c
	return mutate.ConfigFile(img, cf)
}

// iptablesFiles copies iptables (the nf_tables multicall binary under each
// name kube-proxy runs), its shared libraries and its extensions out of the
// lab hosts' image. Symbolic links among the libraries are followed.
func iptablesFiles(ctx context.Context, labImage string) ([]layerEntry, error) {
	const script = `set -e
bin=/usr/sbin/xtables-nft-multi
ext=/usr/lib/x86_64-linux-gnu/xtables
libs=$(ldd $bin $ext/*.so | awk '$2 == "=>" {print $3} $1 ~ /^\/.*\/ld-linux/ {print $1}' | sort -u)
tar -ch $bin $libs $ext 2>/dev/null`
	cmd := exec.CommandContext(ctx, "docker", "run", "--rm", "--network", "none", "--entrypoint", "sh", labImage, "-c", script)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("iptables from %s: %w: %s", labImage, err, stderr.String())
	}
	var files []layerEntry
	found := false
	tr := tar.NewReader(&stdout)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		p := "/" + strings.TrimPrefix(hdr.Name, "/")
		found = found || p == "/usr/sbin/xtables-nft-multi"
		files = append(files, layerEntry{path: p, data: data, mode: hdr.Mode & 0o777})
	}
	if !found {
		return nil, fmt.Errorf("no /usr/sbin/xtables-nft-multi in %s", labImage)
	}
	// The names kube-proxy runs; xtables-nft-multi picks its mode from
	// the name it was started under.
	for _, n := range []string{"iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore"} {
		files = append(files, layerEntry{path: "/usr/sbin/" + n, link: "xtables-nft-multi"})
	}
	return files, nil
}

// output runs a command and returns its trimmed standard output.
func output(ctx context.Context, name string, args ...string) (string, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}
