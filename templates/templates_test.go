package templates

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	toml "github.com/pelletier/go-toml/v2"
	yaml "go.yaml.in/yaml/v3"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// cases renders every template with representative data.
var cases = []struct {
	name     string
	template string
	data     any
	parse    func(t *testing.T, out []byte)
}{
	{"etcd.service", "systemd/service.tmpl", map[string]any{
		"Description": "etcd", "Documentation": "https://etcd.io/docs/v3.6/",
		"After": []string{"network-online.target"}, "Wants": []string{"network-online.target"}, "Requires": []string(nil),
		"Type": "notify", "User": "etcd", "Group": "etcd", "RuntimeDirectory": "etcd",
		"Environment":     []string{"KUBEFORGE_BINARY=etcd@sha256:0123456789abcdef"},
		"EnvironmentFile": "/var/lib/kubeforge/etcd-initial-cluster.env",
		"ExecStartPre":    []string{"+/bin/mkdir -p -m 0700 /var/lib/etcd", "+/bin/chown -R etcd:etcd /var/lib/etcd"},
		"Exec":            "/usr/local/bin/etcd", "Args": []string{"--data-dir=/var/lib/etcd", "--name=cp1"},
		"RestartSec": "5s", "TimeoutStopSec": "", "LimitNOFILE": 65536, "Delegate": false, "OOMScoreAdjust": 0,
		"ExecReload": "", "ExecStopPost": []string(nil), "Extra": []string(nil),
	}, parseUnit},
	{"keepalived.service", "systemd/service.tmpl", map[string]any{
		"Description": "keepalived", "Documentation": "https://www.keepalived.org/manpage.html",
		"After": []string{"network-online.target"}, "Wants": []string{"network-online.target"}, "Requires": []string(nil),
		"Type": "simple", "User": "", "Group": "", "RuntimeDirectory": "",
		"Environment": []string(nil), "EnvironmentFile": "", "ExecStartPre": []string(nil),
		"Exec": "/opt/kubeforge/current/bin/keepalived", "Args": []string{"--dont-fork", "--log-console"},
		"ExecReload": "/bin/kill -HUP $MAINPID", "ExecStopPost": []string{`-/bin/sh -c "ip addr del 172.30.0.100/32 dev eth0 2>/dev/null || true"`},
		"RestartSec": "1s", "TimeoutStopSec": "", "LimitNOFILE": 0, "Delegate": false, "OOMScoreAdjust": 0, "Extra": []string{"TasksMax=infinity"},
	}, parseUnitWith("[Service]", "ExecReload", "/bin/kill -HUP $MAINPID")},
	{"containerd.toml", "containerd/config.toml.tmpl", map[string]any{
		"Version": "2.4.2", "SandboxImage": "kubeforge.local/pause:3.10-kubeforge.1", "RegistryConfigPath": "/etc/containerd/certs.d",
		"RestrictOOMScoreAdj": true, "Runc": "/opt/kubeforge/current/bin/runc", "SystemdCgroup": true,
		"CNIBinDir": "/opt/cni/bin", "CNIConfDir": "/etc/cni/net.d",
	}, parseContainerd2},
	{"containerd-1.x.toml", "containerd/config-1.x.toml.tmpl", map[string]any{
		"SandboxImage": "kubeforge.local/pause:3.10-kubeforge.1", "RestrictOOMScoreAdj": true, "SystemdCgroup": true,
	}, parseTOML},
	{"crictl.yaml", "containerd/crictl.yaml.tmpl", map[string]any{"Socket": "unix:///run/containerd/containerd.sock"}, parseYAML},
	{"audit-policy.yaml", "audit/audit-policy.yaml.tmpl", nil, parseYAML},
	{"10-flannel.conflist", "cni/10-flannel.conflist.tmpl", nil, parseJSON},
	{"net-conf.json", "cni/net-conf.json.tmpl", map[string]string{"PodCIDR": "10.244.0.0/16", "Backend": "vxlan"}, parseJSON},
	{"coredns.yaml", "addons/coredns.yaml.tmpl", map[string]any{
		"DNSDomain": "cluster.local", "ClusterDNS": "10.96.0.10", "Image": "kubeforge.local/coredns:v1.13.2", "Replicas": 2,
		"Upstreams": "192.0.2.53 192.0.2.54", "APIHost": "192.0.2.100", "APIPort": "6443",
	}, parseManifests("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "Deployment", "Service")},
	{"bootstrap.yaml", "bootstrap/cluster.yaml.tmpl", map[string]any{
		"BootstrapGroup": "system:bootstrappers:kubeadm:default-node-token",
		"ClusterInfo":    "apiVersion: v1\nclusters:\n- cluster:\n    server: https://10.0.0.1:6443\n  name: \"\"\n",
		"ConfigName":     "kubeforge-config",
		"ClusterConfig":  "apiVersion: kubeforge.io/v1alpha1\nkind: Cluster\nmetadata:\n  name: t\n",
		"CertsName":      "kubeforge-certs",
	}, parseManifests("ClusterRoleBinding", "ClusterRoleBinding", "ClusterRoleBinding", "ClusterRoleBinding", "ClusterRole",
		"ClusterRoleBinding", "ConfigMap", "Role", "RoleBinding", "ClusterRoleBinding", "ClusterRole", "ClusterRoleBinding",
		"ConfigMap", "Role", "RoleBinding", "Role", "RoleBinding")},
	{"keepalived.conf", "keepalived/keepalived.conf.tmpl", map[string]any{
		"VIP": "172.30.0.100", "Bits": 32, "RouterID": "cp1", "CheckScript": "/etc/keepalived/kubeforge-check-apiserver.sh",
		"Interface": "eth0", "VirtualRouterID": 51, "Priority": 200, "Self": "172.30.0.11",
		"Peers": []string{"172.30.0.12", "172.30.0.13"}, "MaintenanceScript": "/etc/keepalived/kubeforge-maintenance.sh", "MaintenanceWeight": 190,
	}, parseKeepalived},
	{"renew.service", "systemd/renew.service.tmpl", map[string]any{
		"Binary": "/usr/local/bin/kubeforge", "Node": "cp1", "Window": "720h0m0s", "Cluster": "/etc/kubernetes/kubeforge-cluster.yaml",
	}, parseUnitWith("[Service]", "ExecStart", "/usr/local/bin/kubeforge certs renew-local --node cp1 --within 720h0m0s")},
	{"renew.timer", "systemd/renew.timer.tmpl", map[string]any{"Unit": "kubeforge-certs-renew"}, parseUnitWith("[Timer]", "OnCalendar", "daily")},
	{"maintenance.sh", "keepalived/maintenance.sh.tmpl", map[string]any{"Flag": "/etc/keepalived/kubeforge-maintenance"}, parseShell},
	{"check-apiserver.sh", "keepalived/check-apiserver.sh.tmpl", map[string]any{
		"Check": "/opt/kubeforge/current/bin/kube-apiserver-check", "CAFile": "/etc/kubernetes/pki/ca.crt", "Port": 6443,
	}, parseShell},
}

// parseKeepalived checks keepalived's block structure and the settings
// the VIP depends on.
func parseKeepalived(t *testing.T, out []byte) {
	t.Helper()
	depth := 0
	blocks := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasSuffix(line, "{") {
			if depth == 0 {
				blocks[strings.Fields(line)[0]] = true
			}
			depth++
		}
		if line == "}" {
			depth--
		}
		if depth < 0 {
			t.Fatalf("unbalanced braces at %q", line)
		}
	}
	if depth != 0 || !blocks["global_defs"] || !blocks["vrrp_script"] || !blocks["vrrp_instance"] {
		t.Fatalf("blocks %v, depth %d", blocks, depth)
	}
	for _, want := range []string{"state BACKUP", "unicast_src_ip 172.30.0.11", "172.30.0.100/32 dev eth0", "init_fail", "enable_script_security"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("lacks %q", want)
		}
	}
}

// parseShell checks a script with sh -n.
func parseShell(t *testing.T, out []byte) {
	t.Helper()
	cmd := exec.Command("sh", "-n")
	cmd.Stdin = bytes.NewReader(out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sh -n: %v: %s", err, msg)
	}
	if !strings.HasPrefix(string(out), "#!/bin/sh\n") {
		t.Errorf("no #!/bin/sh line")
	}
}

func TestGolden(t *testing.T) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := Render(tc.template, tc.data)
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", tc.name+".golden")
			if *update {
				if err := os.WriteFile(golden, out, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./templates -update)", err)
			}
			if !bytes.Equal(out, want) {
				t.Errorf("%s differs from %s (go test ./templates -update to accept):\n%s", tc.name, golden, out)
			}
			tc.parse(t, out)
		})
	}
}

func TestMissingKeyIsAnError(t *testing.T) {
	if _, err := Render("cni/net-conf.json.tmpl", map[string]string{"PodCIDR": "10.244.0.0/16"}); err == nil {
		t.Fatal("a missing key rendered")
	}
	if _, err := Render("nope.tmpl", nil); err == nil {
		t.Fatal("an unknown template rendered")
	}
}

// parseUnitWith checks a unit's syntax and that section has key starting
// with want.
func parseUnitWith(section, key, want string) func(t *testing.T, out []byte) {
	return func(t *testing.T, out []byte) {
		t.Helper()
		sections := unitSections(t, out)
		if !strings.HasPrefix(sections[section][key], want) {
			t.Fatalf("%s %s = %q, want %q...", section, key, sections[section][key], want)
		}
	}
}

// parseUnit checks a systemd unit: sections, Key=Value lines, line
// continuations, and the keys systemd needs.
func parseUnit(t *testing.T, out []byte) {
	t.Helper()
	sections := unitSections(t, out)
	if !strings.HasPrefix(sections["[Service]"]["ExecStart"], "/usr/local/bin/etcd ") ||
		!strings.Contains(sections["[Service]"]["ExecStart"], "--name=cp1") ||
		sections["[Service]"]["User"] != "etcd" || sections["[Service]"]["RuntimeDirectoryMode"] != "0700" ||
		sections["[Install]"]["WantedBy"] != "multi-user.target" {
		t.Fatalf("unit parsed to %v", sections)
	}
}

// unitSections reads a systemd unit: sections, Key=Value lines, line
// continuations.
func unitSections(t *testing.T, out []byte) map[string]map[string]string {
	t.Helper()
	sections := map[string]map[string]string{}
	var cur string
	sc := bufio.NewScanner(bytes.NewReader(out))
	var cont string
	for sc.Scan() {
		line := cont + sc.Text()
		cont = ""
		if strings.HasSuffix(line, `\`) {
			cont = strings.TrimSuffix(line, `\`)
			continue
		}
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			cur = line
			sections[cur] = map[string]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || cur == "" {
				t.Fatalf("not a unit line: %q", line)
			}
			sections[cur][k] = v
		}
	}
	return sections
}

func parseTOML(t *testing.T, out []byte) {
	t.Helper()
	var v map[string]any
	if err := toml.Unmarshal(out, &v); err != nil {
		t.Fatalf("TOML: %v", err)
	}
	cri := v["plugins"].(map[string]any)["io.containerd.grpc.v1.cri"].(map[string]any)
	if cri["sandbox_image"] != "kubeforge.local/pause:3.10-kubeforge.1" || cri["restrict_oom_score_adj"] != true {
		t.Fatalf("cri %v", cri)
	}
}

// parseContainerd2 checks containerd 2.x's sections (configuration
// version 4) and the settings the kubelet depends on.
func parseContainerd2(t *testing.T, out []byte) {
	t.Helper()
	var v struct {
		Version int
		Plugins map[string]map[string]any
	}
	if err := toml.Unmarshal(out, &v); err != nil {
		t.Fatalf("TOML: %v", err)
	}
	images, runtime := v.Plugins["io.containerd.cri.v1.images"], v.Plugins["io.containerd.cri.v1.runtime"]
	if v.Version != 4 || images == nil || runtime == nil {
		t.Fatalf("version %d, plugins %v", v.Version, v.Plugins)
	}
	if got := images["pinned_images"].(map[string]any)["sandbox"]; got != "kubeforge.local/pause:3.10-kubeforge.1" {
		t.Errorf("sandbox image %v", got)
	}
	if got := images["registry"].(map[string]any)["config_path"]; got != "/etc/containerd/certs.d" {
		t.Errorf("config_path %v", got)
	}
	if runtime["restrict_oom_score_adj"] != true {
		t.Errorf("restrict_oom_score_adj %v", runtime["restrict_oom_score_adj"])
	}
	runc := runtime["containerd"].(map[string]any)["runtimes"].(map[string]any)["runc"].(map[string]any)["options"].(map[string]any)
	if runc["SystemdCgroup"] != true || runc["BinaryName"] != "/opt/kubeforge/current/bin/runc" {
		t.Errorf("runc options %v", runc)
	}
}

func parseYAML(t *testing.T, out []byte) {
	t.Helper()
	var v map[string]any
	if err := yaml.Unmarshal(out, &v); err != nil || len(v) == 0 {
		t.Fatalf("YAML: %v (%v)", err, v)
	}
}

func parseJSON(t *testing.T, out []byte) {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("JSON: %v", err)
	}
}

// parseManifests checks a multi-document YAML and the kinds in it.
func parseManifests(kinds ...string) func(*testing.T, []byte) {
	return func(t *testing.T, out []byte) {
		t.Helper()
		dec := yaml.NewDecoder(bytes.NewReader(out))
		var got []string
		for {
			var obj struct {
				APIVersion string `yaml:"apiVersion"`
				Kind       string `yaml:"kind"`
				Metadata   struct{ Name string }
			}
			if err := dec.Decode(&obj); err != nil {
				if err.Error() == "EOF" {
					break
				}
				t.Fatalf("YAML: %v", err)
			}
			if obj.Kind == "" || obj.APIVersion == "" || obj.Metadata.Name == "" {
				t.Fatalf("object without kind, apiVersion or name: %+v", obj)
			}
			got = append(got, obj.Kind)
		}
		if strings.Join(got, ",") != strings.Join(kinds, ",") {
			t.Fatalf("kinds %v, want %v", got, kinds)
		}
	}
}
