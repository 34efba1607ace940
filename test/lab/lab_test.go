package lab

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kubeforge/kubeforge/internal/config"
)

// These tests need neither Docker nor a running lab: they read hosts.json
// files and run the parts of lab.sh that only print.

const sample = `{
  "network": "kubeforge-lab",
  "bridge": "kubeforge-lab",
  "subnet": "172.30.0.0/24",
  "gateway": "172.30.0.1",
  "image": "kubeforge-lab:0123456789ab",
  "controlPlanes": 1,
  "vip": "",
  "sshUser": "root",
  "keyFile": "/repo/.lab/id_ed25519",
  "clusterFile": "/repo/.lab/cluster.yaml",
  "hosts": [
    {"name": "lab1", "container": "kubeforge-lab1", "ip": "172.30.0.11", "roles": ["control-plane"]},
    {"name": "lab2", "container": "kubeforge-lab2", "ip": "172.30.0.12", "roles": ["worker"]}
  ]
}`

func writeHostsJSON(t *testing.T, data string) string {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, StateDir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, StateDir, "hosts.json"), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestLoad(t *testing.T) {
	root := writeHostsJSON(t, sample)
	l, err := Load(root)
	if err != nil {
		t.Fatal(err)
	}
	if l.Root() != root {
		t.Errorf("Root() = %q, want %q", l.Root(), root)
	}
	if l.KeyFile() != "/repo/.lab/id_ed25519" || l.ClusterFile() != "/repo/.lab/cluster.yaml" {
		t.Errorf("KeyFile() = %q, ClusterFile() = %q", l.KeyFile(), l.ClusterFile())
	}
	hosts := l.Hosts()
	if len(hosts) != 2 || hosts[0].Name != "lab1" || hosts[1].IP != "172.30.0.12" || hosts[1].Container != "kubeforge-lab2" {
		t.Fatalf("Hosts() = %+v", hosts)
	}
	hosts[0].Roles[0] = "changed" // a copy: the lab must not change
	if h, err := l.Host("lab1"); err != nil || h.Roles[0] != "control-plane" {
		t.Errorf("Host(lab1) = %+v, %v", h, err)
	}
	if _, err := l.Host("lab9"); err == nil || !strings.Contains(err.Error(), "lab1, lab2") {
		t.Errorf("Host(lab9) error = %v, want one listing the hosts", err)
	}
}

func TestLoadNotUp(t *testing.T) {
	_, err := Load(t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "make lab-up") {
		t.Fatalf("Load of an empty dir: %v, want a hint to run make lab-up", err)
	}
}

func TestLoadInvalid(t *testing.T) {
	for _, tc := range []struct {
		name, old, new, want string
	}{
		{"bad ip", `"172.30.0.12"`, `"172.30.0.x"`, "lab2"},
		{"ip outside subnet", `"172.30.0.12"`, `"172.31.0.12"`, "outside 172.30.0.0/24"},
		{"duplicate name", `"name": "lab2"`, `"name": "lab1"`, "listed twice"},
		{"no roles", `["worker"]`, `[]`, "no roles"},
		{"relative key", `"/repo/.lab/id_ed25519"`, `".lab/id_ed25519"`, "absolute"},
		{"unknown field", `"vip": ""`, `"vip": "", "extra": 1`, "unknown field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := strings.Replace(sample, tc.old, tc.new, 1)
			if data == sample {
				t.Fatalf("fixture unchanged: %q not found", tc.old)
			}
			_, err := Load(writeHostsJSON(t, data))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load: %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// lab.sh writes hosts.json and the cluster file from N and CP; check both
// for a few shapes, the cluster file with kubeforge's own loader.
func TestRenderedFiles(t *testing.T) {
	for _, tool := range []string{"bash", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	for _, tc := range []struct {
		n, cp string
		roles []string // per host, joined with "+"
		vip   string
	}{
		{"1", "1", []string{"control-plane+worker"}, ""},
		{"3", "1", []string{"control-plane", "worker", "worker"}, ""},
		{"3", "3", []string{"control-plane", "control-plane", "control-plane"}, "172.30.0.100"},
		{"4", "2", []string{"control-plane", "control-plane", "worker", "worker"}, "172.30.0.100"},
	} {
		t.Run("N="+tc.n+",CP="+tc.cp, func(t *testing.T) {
			cmd := exec.Command("bash", "lab.sh", "render-hosts", tc.n, tc.cp)
			cmd.Env = append(os.Environ(), "LAB_SUBNET=")
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("render-hosts: %v", err)
			}
			root := writeHostsJSON(t, string(out))
			l, err := Load(root)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for i, h := range l.Hosts() {
				got = append(got, strings.Join(h.Roles, "+"))
				if want := "172.30.0.1" + string(rune('1'+i)); h.IP != want {
					t.Errorf("%s: ip %s, want %s", h.Name, h.IP, want)
				}
			}
			if !slices.Equal(got, tc.roles) || l.VIP != tc.vip {
				t.Errorf("roles %v vip %q, want %v %q", got, l.VIP, tc.roles, tc.vip)
			}

			yaml, err := exec.Command("bash", "lab.sh", "render-cluster", filepath.Join(root, StateDir, "hosts.json")).Output()
			if err != nil {
				t.Fatalf("render-cluster: %v", err)
			}
			c, warnings, err := config.Parse("cluster.yaml", yaml)
			if err != nil {
				t.Fatalf("kubeforge rejects the lab's cluster file: %v\n%s", err, yaml)
			}
			for _, w := range warnings { // CP=2: an even etcd count; allowed
				t.Logf("warning: %s", w)
			}
			if c.Metadata.Name != "lab" || c.Spec.SSH.User != "root" || c.Spec.SSH.KeyPath != l.KeyFile() ||
				len(c.Spec.Hosts) != len(tc.roles) || c.Spec.ControlPlane.VIP != tc.vip {
				t.Errorf("cluster file does not match hosts.json:\n%s", yaml)
			}
		})
	}
}
