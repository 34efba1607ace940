package version

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/mod/modfile"
)

// TestWindowIsBuilt holds the three places that name the window to one
// list: KubernetesMinors, the Makefile's K8S_WINDOW, and components/kube's
// and components/coredns' module files (go.mod for the newest,
// k8s-<minor>.mod for the others).
func TestWindowIsBuilt(t *testing.T) {
	root := filepath.Join("..", "..")
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^K8S_WINDOW\s*:=\s*(.*)$`).FindSubmatch(mk)
	if m == nil || strings.Join(strings.Fields(string(m[1])), " ") != strings.Join(KubernetesMinors, " ") {
		t.Errorf("Makefile K8S_WINDOW is %q, KubernetesMinors %v", m, KubernetesMinors)
	}
	for i, minor := range KubernetesMinors {
		name := "k8s-" + minor + ".mod"
		if i == len(KubernetesMinors)-1 {
			name = "go.mod"
		}
		if _, err := os.Stat(filepath.Join(root, "components", "coredns", name)); err != nil {
			t.Errorf("Kubernetes %s: the CoreDNS that goes with it: %v", minor, err)
		}
		path := filepath.Join(root, "components", "kube", name)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("Kubernetes %s: %v (components/kube/pin.sh writes it)", minor, err)
			continue
		}
		f, err := modfile.Parse(path, data, nil)
		if err != nil {
			t.Fatal(err)
		}
		var got string
		for _, r := range f.Require {
			if r.Mod.Path == "k8s.io/kubernetes" {
				got = r.Mod.Version
			}
		}
		if Minor(got) != minor {
			t.Errorf("%s pins k8s.io/kubernetes %q, want a v%s release", name, got, minor)
		}
	}
}

func TestCheckKubernetes(t *testing.T) {
	for v, ok := range map[string]bool{"v1.35.8": true, "v1.37.2": true, "v1.34.4": false, "v1.38.0": false, "v1.37.0-rc.1": false, "": false, "1.36.5": false} {
		if err := CheckKubernetes(v); (err == nil) != ok {
			t.Errorf("CheckKubernetes(%q) = %v", v, err)
		}
	}
	if got := Minor("v1.36.5"); got != "1.36" {
		t.Errorf("Minor = %q", got)
	}
}
