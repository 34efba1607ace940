package cis

import (
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kubeforge/kubeforge/certs"
	"github.com/kubeforge/kubeforge/phases"
)

func overlay(t *testing.T) ([]byte, Overlay) {
	t.Helper()
	data, err := os.ReadFile("config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	o, err := ParseOverlay(data)
	if err != nil {
		t.Fatal(err)
	}
	return data, o
}

// The overlay names the paths phases/ writes: a path changed there and not
// here would have kube-bench check a file that is not there.
func TestOverlayIsKubeforgesLayout(t *testing.T) {
	_, o := overlay(t)
	unit := phases.UnitPath
	kubeconf := func(n string) string { return path.Join(phases.KubernetesDir, n) }
	for _, c := range []struct {
		target, component string
		bins, paths       []string
	}{
		{"master", "apiserver", []string{"kube-apiserver"}, []string{unit("kube-apiserver")}},
		{"master", "scheduler", []string{"kube-scheduler"}, []string{unit("kube-scheduler"), kubeconf(certs.SchedulerConf)}},
		{"master", "controllermanager", []string{"kube-controller-manager", "kube-controller"}, []string{unit("kube-controller-manager"), kubeconf(certs.ControllerManagerConf)}},
		{"master", "etcd", []string{"etcd"}, []string{unit("etcd"), phases.EtcdDataDir}},
		{"master", "flanneld", []string{"flanneld"}, []string{path.Join(phases.FlannelDir, "net-conf.json")}},
		{"master", "kubelet", []string{"kubelet"}, nil},
		{"etcd", "etcd", []string{"etcd"}, []string{unit("etcd"), phases.EtcdDataDir}},
		{"controlplane", "apiserver", []string{"kube-apiserver"}, nil},
		{"node", "kubelet", []string{"kubelet"}, []string{phases.KubeletConfigFile, unit("kubelet"), phases.KubeletKubeconfig, path.Join(phases.PKIDir, "ca.crt")}},
		{"node", "proxy", []string{"kube-proxy"}, []string{path.Join(phases.KubeProxyDir, "config.conf"), unit("kube-proxy")}},
	} {
		got, ok := o[c.target][c.component]
		if !ok {
			t.Errorf("%s.%s: not in the overlay", c.target, c.component)
			continue
		}
		if !slices.Equal(got.Bins, c.bins) {
			t.Errorf("%s.%s: bins %v, want %v", c.target, c.component, got.Bins, c.bins)
		}
		if p := got.Paths(); !slices.Equal(p, c.paths) {
			t.Errorf("%s.%s: paths %v, want %v", c.target, c.component, p, c.paths)
		}
		// The default is the one candidate: a missing file is checked as
		// missing, never replaced by some other distribution's.
		for _, pair := range [][2]any{{got.Confs, got.DefaultConf}, {got.Svc, got.DefaultSvc}, {got.Kubeconfig, got.DefaultKubeconfig}, {got.CAFile, got.DefaultCAFile}, {got.DataDirs, got.DefaultDataDir}} {
			list, def := pair[0].([]string), pair[1].(string)
			if (len(list) > 0 || def != "") && !slices.Equal(list, []string{def}) {
				t.Errorf("%s.%s: candidates %v, default %q", c.target, c.component, list, def)
			}
		}
	}
	if n := len(o["master"]) + len(o["node"]) + len(o["etcd"]) + len(o["controlplane"]); n != 10 || len(o) != 4 {
		t.Errorf("the overlay has %d sections and %d components, the test knows 4 and 10", len(o), n)
	}
}

func TestExpect(t *testing.T) {
	_, o := overlay(t)
	cp := o.Expect(ControlPlaneTargets)
	var procs []string
	for _, p := range cp.Processes {
		procs = append(procs, strings.Join(p, "|"))
	}
	if got := strings.Join(procs, " "); got != "kube-apiserver kube-controller-manager|kube-controller etcd flanneld kubelet kube-scheduler kube-proxy" {
		t.Errorf("control plane processes: %s", got)
	}
	if len(cp.Paths) != 14 || !slices.Contains(cp.Paths, "/var/lib/etcd") || !slices.Contains(cp.Paths, "/etc/kubernetes/kubelet.conf") {
		t.Errorf("control plane paths: %v", cp.Paths)
	}
	w := o.Expect(WorkerTargets)
	if len(w.Processes) != 2 || len(w.Paths) != 6 || slices.Contains(w.Paths, "/var/lib/etcd") {
		t.Errorf("worker: %+v", w)
	}
}

func TestParseOverlayRefuses(t *testing.T) {
	for name, data := range map[string]string{
		"empty":         "---\n# nothing\n",
		"misspelt key":  "node:\n  kubelet:\n    kubeconfigs: [/etc/kubernetes/kubelet.conf]\n",
		"relative path": "node:\n  kubelet:\n    defaultconf: config.yaml\n",
		"not a list":    "node:\n  kubelet:\n    bins: 3\n",
	} {
		if _, err := ParseOverlay([]byte(data)); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}

func TestStageConfig(t *testing.T) {
	data, _ := overlay(t)
	src := t.TempDir()
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(src, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("config.yaml", "master:\n  components: [apiserver]\n")
	write("cis-1.12/config.yaml", "---\n## Version-specific settings that override the values in cfg/config.yaml\n")
	write("cis-1.12/master.yaml", "controls:\n")
	write("cis-1.12/node.yaml", "controls:\n")
	write("cis-1.11/node.yaml", "controls:\n")

	dst := t.TempDir()
	if err := StageConfig(src, data, dst); err != nil {
		t.Fatal(err)
	}
	var got []string
	filepath.WalkDir(dst, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dst, p)
			got = append(got, rel)
		}
		return err
	})
	if strings.Join(got, " ") != "cis-1.12/config.yaml cis-1.12/master.yaml cis-1.12/node.yaml config.yaml" {
		t.Errorf("staged %v", got)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "cis-1.12/config.yaml")); string(b) != string(data) {
		t.Error("the benchmark's config.yaml is not the overlay")
	}

	// Upstream's benchmark config.yaml with settings: not replaced.
	write("cis-1.12/config.yaml", "node:\n  kubelet:\n    defaultconf: /etc/kubelet.yaml\n")
	if err := StageConfig(src, data, t.TempDir()); err == nil || !strings.Contains(err.Error(), "settings of its own") {
		t.Errorf("replaced a benchmark config.yaml with settings: %v", err)
	}
	if err := StageConfig(t.TempDir(), data, t.TempDir()); err == nil || !strings.Contains(err.Error(), "make kube-bench") {
		t.Errorf("no cfg: %v", err)
	}
}
