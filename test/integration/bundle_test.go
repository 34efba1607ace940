//go:build integration

package integration

import (
	"archive/tar"
	"debug/elf"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/kubeforge/kubeforge/components/bundle"
	"github.com/kubeforge/kubeforge/internal/version"
)

func loadDist(t *testing.T) (string, *bundle.Manifest) {
	t.Helper()
	dir := os.Getenv("KUBEFORGE_DIST")
	if dir == "" {
		t.Fatal("KUBEFORGE_DIST is not set: run this test with 'make integration'")
	}
	m, err := bundle.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir, m
}

// selfReported runs a bundled program and returns the version it prints.
func selfReported(t *testing.T, file, program string) string {
	t.Helper()
	var cmd *exec.Cmd
	switch program {
	case "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy":
		cmd = exec.Command(file, program, "--version") // "Kubernetes v1.35.4"
	case "kubectl":
		cmd = exec.Command(file, program, "version", "--client", "-o", "json")
	case "etcd":
		cmd = exec.Command(file, program, "--version") // "etcd Version: 3.6.5"
	case "etcdctl", "etcdutl":
		cmd = exec.Command(file, program, "version") // "etcdctl version: 3.6.5"
	case "flanneld", "containerd", "ctr", "runc", "crictl", "kube-apiserver-check":
		cmd = exec.Command(file, "--version") // "containerd github.com/containerd/containerd/v2 v2.4.2", "crictl version v1.37.0"
	case "containerd-shim-runc-v2":
		cmd = exec.Command(file, "-v") // "Version:  v2.4.2"
	case "keepalived":
		cmd = exec.Command(file, "--version") // "Keepalived v2.2.7 (01/16,2022)" on stderr
	default: // CNI plugins print "CNI bridge plugin v1.9.1" without CNI_COMMAND
		cmd = exec.Command(file)
	}
	out, _ := cmd.CombinedOutput()
	text := string(out)
	if program == "kubectl" {
		var v struct {
			ClientVersion struct{ GitVersion string } `json:"clientVersion"`
		}
		if err := json.Unmarshal(out, &v); err != nil {
			t.Fatalf("kubectl version: %v: %s", err, out)
		}
		return v.ClientVersion.GitVersion
	}
	return text
}

// TestBundleVersionsAgree checks that every program in the bundle reports
// the version the manifest gives it, that the files are the ones hashed,
// and that the archive holds exactly the manifest's files.
func TestBundleVersionsAgree(t *testing.T) {
	dir, m := loadDist(t)
	if err := version.CheckKubernetes(m.Kubernetes()); err != nil {
		t.Fatal(err)
	}
	kube := "v" + version.Minor(m.Kubernetes()) + "." // a minor of the window: make bundle K8S=
	want := map[string]string{                        // program -> expected major.minor prefix (the pins of the module files)
		"kube-apiserver": kube, "kubelet": kube, "kubectl": kube, "etcd": "v3.",
		"containerd": "v2.4.", "ctr": "v2.4.", "containerd-shim-runc-v2": "v2.4.", "runc": "v1.5.",
		"crictl": "v1.37.", "keepalived": "v2.2.7",
	}
	for name := range want {
		if _, _, ok := m.Program(name); !ok {
			t.Errorf("the bundle has no %s", name)
		}
	}
	for _, f := range m.Files {
		path := filepath.Join(dir, f.Path)
		sum, size, err := bundle.HashFile(path)
		if err != nil || sum != f.SHA256 || size != f.Size {
			t.Errorf("%s: sha256 %s size %d, manifest says %s %d (%v)", f.Path, sum, size, f.SHA256, f.Size, err)
		}
		for _, p := range f.Programs {
			got := selfReported(t, path, p.Name)
			if !strings.Contains(got, strings.TrimPrefix(p.Version, "v")) {
				t.Errorf("%s (%s) reports %q, manifest says %s", p.Name, f.Path, strings.TrimSpace(got), p.Version)
			}
			if prefix, ok := want[p.Name]; ok && !strings.HasPrefix(p.Version, prefix) {
				t.Errorf("%s is %s, want %sx", p.Name, p.Version, prefix)
			}
		}
	}

	// runc filters system calls: linked with libseccomp, not built without it.
	if f, _, ok := m.Program("runc"); ok {
		out, _ := exec.Command(filepath.Join(dir, f.Path), "--version").CombinedOutput()
		if !strings.Contains(string(out), "libseccomp: 2.") {
			t.Errorf("runc --version names no libseccomp:\n%s", out)
		}
	}

	for _, img := range m.Images {
		bin := extractFromImage(t, filepath.Join(dir, img.Path), img.Ref, "/"+img.Name)
		flag := "--version"
		if img.Name == "coredns" {
			flag = "-version"
		}
		out, err := exec.Command(bin, flag).CombinedOutput()
		if err != nil || !strings.Contains(string(out), strings.TrimPrefix(img.Version, "v")) {
			t.Errorf("image %s: /%s %s printed %q (%v), manifest says %s", img.Ref, img.Name, flag, out, err, img.Version)
		}
	}

	inArchive := map[string]bool{}
	err := bundle.ReadArchive(filepath.Join(dir, m.Archive), func(name string, _ os.FileMode, r io.Reader) error {
		inArchive[name] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wantFiles := []string{bundle.ManifestFile}
	for _, f := range m.Files {
		wantFiles = append(wantFiles, f.Path)
	}
	for _, img := range m.Images {
		wantFiles = append(wantFiles, img.Path)
	}
	for _, f := range wantFiles {
		if !inArchive[f] {
			t.Errorf("archive lacks %s", f)
		}
		delete(inArchive, f)
	}
	if len(inArchive) > 0 {
		t.Errorf("archive has files the manifest does not list: %v", inArchive)
	}
}

// TestBundleIsStatic checks that every bundled program runs on a host with
// none of our shared libraries: no ELF interpreter, no needed library
// (runc is static-pie: it has a dynamic section, but needs nothing).
func TestBundleIsStatic(t *testing.T) {
	dir, m := loadDist(t)
	for _, f := range m.Files {
		e, err := elf.Open(filepath.Join(dir, f.Path))
		if err != nil {
			t.Errorf("%s: %v", f.Path, err)
			continue
		}
		for _, p := range e.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("%s has an ELF interpreter: dynamically linked", f.Path)
			}
		}
		if libs, err := e.ImportedLibraries(); err != nil || len(libs) > 0 {
			t.Errorf("%s needs shared libraries %v (%v)", f.Path, libs, err)
		}
		e.Close()
	}
}

// extractFromImage copies one file out of a docker-save image tarball.
func extractFromImage(t *testing.T, tarPath, ref, file string) string {
	t.Helper()
	img, err := tarball.ImageFromPath(tarPath, nil)
	if err != nil {
		t.Fatalf("%s: %v", tarPath, err)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) == 0 {
		t.Fatalf("%s: layers: %v", tarPath, err)
	}
	rc, err := layers[len(layers)-1].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			t.Fatalf("image %s has no %s", ref, file)
		}
		if err != nil {
			t.Fatal(err)
		}
		if "/"+strings.TrimPrefix(hdr.Name, "/") != file {
			continue
		}
		out := filepath.Join(t.TempDir(), filepath.Base(file))
		f, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY, 0o755)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(f, tr); err != nil {
			t.Fatal(err)
		}
		f.Close()
		return out
	}
}
