package app

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubeforge/kubeforge/components/bundle"
)

// run executes kubeforge with args and returns the exit code and output.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Main(args, IO{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	return code, out.String(), errOut.String()
}

func writeBundle(t *testing.T) string {
	t.Helper()
	return writeBundleOf(t, "v1.35.4")
}

// writeBundleOf writes the manifest of a bundle of Kubernetes kube.
func writeBundleOf(t *testing.T, kube string) string {
	t.Helper()
	dir := t.TempDir()
	m := &bundle.Manifest{
		ManifestVersion: bundle.ManifestVersion, Kubeforge: "v9.9.9", OS: "linux", Arch: "amd64", GoVersion: "go1.26.8",
		Archive: "kubeforge-bundle.tar.gz",
		Files: []bundle.File{
			{Path: "bin/kube", Programs: []bundle.Program{
				{Name: "kubelet", Module: "k8s.io/kubernetes", Version: kube},
				{Name: "etcd", Module: "go.etcd.io/etcd/server/v3", Version: "v3.6.5"},
			}},
			{Path: "bin/flanneld", Programs: []bundle.Program{{Name: "flanneld", Module: "github.com/flannel-io/flannel", Version: "v0.28.10"}}},
			{Path: "bin/containerd", Programs: []bundle.Program{{Name: "containerd", Module: "github.com/containerd/containerd/v2", Version: "v2.4.2"}}},
			{Path: "bin/runc", Programs: []bundle.Program{{Name: "runc", Module: "github.com/opencontainers/runc", Version: "v1.5.3"}}},
			{Path: "bin/crictl", Programs: []bundle.Program{{Name: "crictl", Module: "sigs.k8s.io/cri-tools", Version: "v1.37.0"}}},
			{Path: "bin/keepalived", Programs: []bundle.Program{{Name: "keepalived", Module: "keepalived (Debian source 1:2.2.7-1)", Version: "v2.2.7"}}},
			{Path: "bin/kube-apiserver-check", Programs: []bundle.Program{{Name: "kube-apiserver-check", Module: "github.com/kubeforge/kubeforge", Version: "v9.9.9"}}},
		},
		Images:   []bundle.Image{{Name: "coredns", Ref: "kubeforge.local/coredns:v1.13.2", Path: "images/coredns.tar", Version: "v1.13.2"}},
		Unpacker: &bundle.Unpacker{Path: "kube-unpack", SHA256: strings.Repeat("a", 64), Size: 2445474},
	}
	if err := bundle.WriteManifest(filepath.Join(dir, bundle.ManifestFile), m); err != nil {
		t.Fatal(err)
	}
	return dir
}

// version names the window and the bundle's own Kubernetes.
func TestVersionWindow(t *testing.T) {
	code, out, _ := run(t, "version", "--bundle", writeBundleOf(t, "v1.36.5"))
	if code != 0 || !strings.Contains(out, "installs  Kubernetes 1.35, 1.36, 1.37") || !strings.Contains(out, "v1.36.5") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}

func TestVersionTable(t *testing.T) {
	dir := writeBundle(t)
	code, out, errOut := run(t, "version", "--bundle", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"kubeforge v", "kubelet", "v1.35.4", "etcd", "v3.6.5", "flanneld", "v0.28.10", "coredns (image)", "v1.13.2",
		"containerd", "v2.4.2", "github.com/containerd/containerd/v2", "runc", "v1.5.3", "crictl", "v1.37.0",
		"keepalived", "v2.2.7", "Debian source 1:2.2.7-1", "bin/keepalived", "kube-apiserver-check",
		"kube-unpack           v9.9.9"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestVersionJSON(t *testing.T) {
	dir := writeBundle(t)
	code, out, _ := run(t, "version", "-o", "json", "--bundle", dir)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var r versionReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	got := map[string]string{}
	for _, c := range r.Components {
		got[c.Name] = c.Version
	}
	if got["kubelet"] != "v1.35.4" || got["etcd"] != "v3.6.5" || got["containerd"] != "v2.4.2" || got["runc"] != "v1.5.3" ||
		got["crictl"] != "v1.37.0" || got["keepalived"] != "v2.2.7" || r.Bundle != dir || r.Kubeforge.Version == "" ||
		r.Unpacker == nil || r.Unpacker.Path != "kube-unpack" {
		t.Fatalf("report %+v", r)
	}
}

func TestVersionWithoutBundle(t *testing.T) {
	code, out, errOut := run(t, "version", "--bundle", t.TempDir())
	if code != 0 || !strings.HasPrefix(out, "kubeforge ") || !strings.Contains(errOut, "make bundle") {
		t.Fatalf("exit %d, out %q, err %q", code, out, errOut)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"version", "--no-such-flag"},
		{"version", "-o", "yaml"},
		{"version", "extra"},
	} {
		code, _, errOut := run(t, args...)
		if code != ExitUsage || !strings.Contains(errOut, "Error:") {
			t.Errorf("%v: exit %d, stderr %q; want %d", args, code, errOut, ExitUsage)
		}
	}
	if code, _, errOut := run(t, "no-such-command"); code != ExitUsage {
		t.Errorf("unknown command: exit %d %s", code, errOut)
	}
}

func TestFlagsFromEnvAndSettingsFile(t *testing.T) {
	dir := writeBundle(t)

	t.Setenv("KUBEFORGE_BUNDLE", dir)
	var seen *VersionOptions
	deps := &Deps{IO: IO{Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}, Global: &GlobalOptions{}}
	root := NewRootCmd(deps)
	root.RemoveCommand(root.Commands()...)
	root.AddCommand(NewCmdVersion(deps, func(o *VersionOptions) error { seen = o; return nil }))
	root.SetArgs([]string{"version"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if seen == nil || seen.Bundle != dir {
		t.Fatalf("KUBEFORGE_BUNDLE not applied: %+v", seen)
	}

	os.Unsetenv("KUBEFORGE_BUNDLE")
	settings := filepath.Join(t.TempDir(), "kubeforge.yaml")
	logFile := filepath.Join(t.TempDir(), "logs", "kf.log")
	if err := os.WriteFile(settings, []byte("bundle: "+dir+"\nlog-file: "+logFile+"\nverbose: 2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, "--config", settings, "version")
	if code != 0 || !strings.Contains(out, dir) {
		t.Fatalf("settings file not applied: exit %d\n%s\n%s", code, out, errOut)
	}
	if data, err := os.ReadFile(logFile); err != nil || !strings.Contains(string(data), `"msg":"kubeforge"`) {
		t.Fatalf("log file from settings: %v %q", err, data)
	}

	// The command line wins over the settings file.
	code, out, _ = run(t, "--config", settings, "version", "--bundle", t.TempDir())
	if code != 0 || strings.Contains(out, dir) {
		t.Fatalf("flag did not override settings file:\n%s", out)
	}

	if code, _, errOut := run(t, "--config", filepath.Join(t.TempDir(), "missing.yaml"), "version"); code == 0 || !strings.Contains(errOut, "missing.yaml") {
		t.Fatalf("missing settings file: exit %d %q", code, errOut)
	}
}
