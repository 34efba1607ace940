package main

// The images `kubeadm init` runs, built here from the same binaries the
// bundle ships, so the reference path needs no registry. kubeadm names
// them after registry.k8s.io; they are imported into containerd on the
// host before init, and its preflight "pull" finds them present.

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/kubeforge/kubeforge/components/bundle"
)

// kubeadmImageRecipe changes when the way the images are made changes, so
// cached images from an older recipe are not reused.
const kubeadmImageRecipe = "kubeadm-images-1"

// Where a kubeadm image's command finds its program: the static pod
// manifests call "kube-apiserver", "etcd"... through PATH, the kube-proxy
// DaemonSet calls /usr/local/bin/kube-proxy, as in the upstream images.
const imagePath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// kubeadmImage is one image of the reference path.
type kubeadmImage struct {
	Ref  string // as kubeadm names it
	File string // the docker-save tarball
}

// kubeadmVersions are the versions kubeadm is told to use, read from the
// binaries themselves.
type kubeadmVersions struct {
	Kubernetes string // v1.35.4
	EtcdTag    string // 3.6.5-0: etcd's version in kubeadm's tag scheme
	CoreDNSTag string // v1.13.2
}

// The version of the pause image kubeadm v1.35 names (constants.PauseVersion).
// Our pause is the bundle's own build; the sandbox protocol has no version
// to match, so it is tagged with the name kubeadm and containerd look for.
const kubeadmPauseTag = "3.10.1"

// buildKubeadmImages makes (or finds cached under cacheDir) the images of
// the reference path from bundleDir's bin/kube, binDir's pause and coredns,
// and iptables taken from the lab hosts' image (labImage): kube-proxy in
// iptables mode execs iptables-restore inside its container, and using the
// hosts' own iptables (nf_tables backend) keeps its rules compatible with
// those flanneld writes from the host.
func buildKubeadmImages(ctx context.Context, bundleDir, binDir, labImage, cacheDir string) ([]kubeadmImage, kubeadmVersions, error) {
	kube := filepath.Join(bundleDir, "bin", "kube")
	pause := filepath.Join(binDir, "pause")
	coredns := filepath.Join(binDir, "coredns")
	var v kubeadmVersions
	var err error
	if v.Kubernetes, err = bundle.ModuleVersion(kube, "k8s.io/kubernetes"); err != nil {
		return nil, v, err
	}
	etcd, err := bundle.ModuleVersion(kube, "go.etcd.io/etcd/server/v3")
	if err != nil {
		return nil, v, err
	}
	v.EtcdTag = strings.TrimPrefix(etcd, "v") + "-0"
	if v.CoreDNSTag, err = bundle.ModuleVersion(coredns, "github.com/coredns/coredns"); err != nil {
		return nil, v, err
	}
	labID, err := output(ctx, "docker", "image", "inspect", "-f", "{{.Id}}", labImage)
	if err != nil {
		return nil, v, fmt.Errorf("the lab image: %w", err)
	}

	// The cache key: the recipe and every input.
	h := sha256.New()
	fmt.Fprintln(h, kubeadmImageRecipe, labID)
	for _, f := range []string{kube, pause, coredns} {
		sum, _, err := bundle.HashFile(f)
		if err != nil {
			return nil, v, err
		}
		fmt.Fprintln(h, f, sum)
	}
	dir := filepath.Join(cacheDir, hex.EncodeToString(h.Sum(nil))[:16])

	reg := "registry.k8s.io/"
	kubeFile := func(name string) bundle.ImageFile {
		return bundle.ImageFile{Path: "/usr/local/bin/" + name, Source: kube}
	}
	specs := []bundle.ImageSpec{
		{Ref: reg + "kube-apiserver:" + v.Kubernetes, Files: []bundle.ImageFile{kubeFile("kube-apiserver")}, Env: []string{imagePath}},
		{Ref: reg + "kube-controller-manager:" + v.Kubernetes, Files: []bundle.ImageFile{kubeFile("kube-controller-manager")}, Env: []string{imagePath}},
		{Ref: reg + "kube-scheduler:" + v.Kubernetes, Files: []bundle.ImageFile{kubeFile("kube-scheduler")}, Env: []string{imagePath}},
		{Ref: reg + "etcd:" + v.EtcdTag, Files: []bundle.ImageFile{kubeFile("etcd")}, Env: []string{imagePath}},
		{Ref: reg + "pause:" + kubeadmPauseTag, Files: []bundle.ImageFile{{Path: "/pause", Source: pause}},
			Entrypoint: []string{"/pause"}, User: "65535:65535"},
		// Upstream's image runs as 65532 with a file capability on
		// /coredns; WriteImage writes no xattrs, so this one runs as
		// root and binds :53 with the NET_BIND_SERVICE capability
		// kubeadm's Deployment adds (it drops all others).
		{Ref: reg + "coredns/coredns:" + v.CoreDNSTag, Files: []bundle.ImageFile{{Path: "/coredns", Source: coredns}},
			Entrypoint: []string{"/coredns"}, Ports: []string{"53/udp", "53/tcp", "9153/tcp"}},
	}
	proxy := bundle.ImageSpec{Ref: reg + "kube-proxy:" + v.Kubernetes, Env: []string{imagePath}}

	var images []kubeadmImage
	for _, s := range append(specs, proxy) {
		name := strings.NewReplacer("/", "_", ":", "_").Replace(strings.TrimPrefix(s.Ref, reg))
		images = append(images, kubeadmImage{Ref: s.Ref, File: filepath.Join(dir, name+".tar")})
	}
	if _, err := os.Stat(filepath.Join(dir, "done")); err == nil {
		return images, v, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, v, err
	}
	ipt, err := iptablesFiles(ctx, labImage)
	if err != nil {
		return nil, v, err
	}
	proxy.Files = append([]bundle.ImageFile{kubeFile("kube-proxy")}, ipt...)
	specs = append(specs, proxy)

	// Two at a time: each holds its layer in memory while it is
	// compressed, and the machine has two cores.
	var wg sync.WaitGroup
	errs := make([]error, len(specs))
	sem := make(chan struct{}, 2)
	for i, s := range specs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			_, errs[i] = bundle.WriteImage(s, images[i].File)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, v, err
	}
	return images, v, os.WriteFile(filepath.Join(dir, "done"), nil, 0o644)
}

// iptablesFiles copies iptables (the nf_tables multicall binary under each
// name kube-proxy runs), its shared libraries and its extensions out of the
// lab hosts' image. Symbolic links are followed: an image layer here holds
// regular files only.
func iptablesFiles(ctx context.Context, labImage string) ([]bundle.ImageFile, error) {
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
	var files []bundle.ImageFile
	var multi []byte
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
		if p == "/usr/sbin/xtables-nft-multi" {
			multi = data
		}
		files = append(files, bundle.ImageFile{Path: p, Data: data, Mode: hdr.Mode & 0o777})
	}
	if multi == nil {
		return nil, fmt.Errorf("no /usr/sbin/xtables-nft-multi in %s", labImage)
	}
	// The names kube-proxy runs; xtables-nft-multi picks its mode from
	// the name it was started under.
	for _, n := range []string{"iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore"} {
		files = append(files, bundle.ImageFile{Path: path.Join("/usr/sbin", n), Data: multi, Mode: 0o755})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
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
