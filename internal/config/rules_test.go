package config

import (
	"errors"
	"strings"
	"testing"
)

// rulesBase is a valid file the rule cases edit.
const rulesBase = `apiVersion: kubeforge.io/v1alpha1
kind: Cluster
metadata: {name: rules}
spec:
  ssh: {user: root}
  controlPlane: {}
  networking: {}
  certificates: {}
  kubelet: {}
  hosts:
    - {name: cp1, address: 192.0.2.11, roles: [control-plane]}
    - {name: w1, address: 192.0.2.12, roles: [worker]}
`

// TestValidationRules: each mistake is refused with its field, its line
// and words that say what to do.
func TestValidationRules(t *testing.T) {
	sub := func(old, new string) func(string) string {
		return func(s string) string {
			if !strings.Contains(s, old) {
				panic("rulesBase lacks " + old)
			}
			return strings.Replace(s, old, new, 1)
		}
	}
	w1 := func(extra string) func(string) string {
		return sub("{name: w1, address: 192.0.2.12, roles: [worker]}", "{name: w1, address: 192.0.2.12, roles: [worker], "+extra+"}")
	}
	for _, tc := range []struct {
		name string
		edit func(string) string
		path string // the field named
		want string // in the message
	}{
		// Addresses.
		{"unspecified address", sub("address: 192.0.2.12", "address: 0.0.0.0"), "spec.hosts[1].address", "unspecified"},
		{"unspecified IPv6", sub("address: 192.0.2.12", `address: "::"`), "spec.hosts[1].address", "unspecified"},
		{"loopback", sub("address: 192.0.2.12", "address: 127.0.0.1"), "spec.hosts[1].address", "loopback"},
		{"mapped duplicate", sub("address: 192.0.2.12", `address: "::ffff:192.0.2.11"`), "spec.hosts[1].address", "already the address of spec.hosts[0]"},
		{"zone", sub("address: 192.0.2.12", `address: "fe80::1%eth0"`), "spec.hosts[1].address", "zone-scoped"},
		{"address with port", sub("address: 192.0.2.12", `address: "192.0.2.12:22"`), "spec.hosts[1].address", "has a port"},
		{"IPv6 host in an IPv4 cluster", sub("address: 192.0.2.12", `address: "2001:db8::12"`), "spec.hosts[1].address", "IPv6"},
		{"internalAddress loopback", w1("internalAddress: 127.0.0.2"), "spec.hosts[1].internalAddress", "loopback"},
		{"two local hosts", func(s string) string {
			return strings.Replace(strings.Replace(s, "roles: [control-plane]}", "roles: [control-plane], local: true}", 1),
				"roles: [worker]}", "roles: [worker], local: true}", 1)
		}, "spec.hosts[1].local", "only one host"},
		{"empty host entry", func(s string) string { return s + "    -\n" }, "spec.hosts[2]", "empty entry"},
		// Ports.
		{"ssh port 0", sub("{user: root}", "{user: root, port: 0}"), "spec.ssh.port", "0 is not a TCP port"},
		{"host ssh port 0", w1("ssh: {port: 0}"), "spec.hosts[1].ssh.port", "0 is not a TCP port"},
		{"ssh port too big", sub("{user: root}", "{user: root, port: 65536}"), "spec.ssh.port", "65536 is not a TCP port"},
		{"API port 0", sub("controlPlane: {}", "controlPlane: {port: 0}"), "spec.controlPlane.port", "0 is not a TCP port"},
		{"API port on etcd's", sub("controlPlane: {}", "controlPlane: {port: 2379}"), "spec.controlPlane.port", "etcd's client port"},
		{"API port on the kubelet's", sub("controlPlane: {}", "controlPlane: {port: 10250}"), "spec.controlPlane.port", "the kubelet's port"},
		{"API port on SSH", sub("controlPlane: {}", "controlPlane: {port: 22}"), "spec.controlPlane.port", "SSH port"},
		{"endpoint port", sub("controlPlane: {}", `controlPlane: {endpoint: "api.example.com:99999"}`), "spec.controlPlane.endpoint", "not a TCP port"},
		{"bastion port", sub("{user: root}", `{user: root, bastion: "jump.example.com:0"}`), "spec.ssh.bastion", "not a TCP port"},
		{"bastion is a host", sub("{user: root}", `{user: root, bastion: "admin@192.0.2.11:22"}`), "spec.ssh.bastion", "outside the cluster"},
		// The VIP.
		{"VIP loopback", sub("controlPlane: {}", "controlPlane: {vip: 127.0.0.5}"), "spec.controlPlane.vip", "cannot be a VIP"},
		{"VIP in the pod range", sub("controlPlane: {}", "controlPlane: {vip: 10.244.1.1}"), "spec.controlPlane.vip", "inside podCIDR"},
		{"VIP in the service range", sub("controlPlane: {}", "controlPlane: {vip: 10.96.0.50}"), "spec.controlPlane.vip", "inside serviceCIDR"},
		{"VIP IPv6", sub("controlPlane: {}", `controlPlane: {vip: "2001:db8::100"}`), "spec.controlPlane.vip", "IPv6"},
		{"vipInterface", sub("controlPlane: {}", `controlPlane: {vip: 192.0.2.100, vipInterface: "eth0\nnotify"}`), "spec.controlPlane.vipInterface", "interface name"},
		// Networks.
		{"pod range too small", sub("networking: {}", "networking: {podCIDR: 10.244.0.0/24}") /* 1 node subnet, 2 hosts */, "spec.networking.podCIDR", "holds 1 node subnets of /24, but the file has 2 hosts"},
		{"upstream DNS is the cluster DNS", sub("networking: {}", "networking: {upstreamDNS: [10.96.0.10]}"), "spec.networking.upstreamDNS[0]", "cluster's own DNS"},
		// Durations.
		{"validity 0", sub("certificates: {}", "certificates: {validity: 0s}"), "spec.certificates.validity", "no lifetime"},
		{"validity negative", sub("certificates: {}", "certificates: {validity: -1h}"), "spec.certificates.validity", "too short"},
		{"validity seconds", sub("certificates: {}", "certificates: {validity: 30s}"), "spec.certificates.validity", "at least 1m0s"},
		{"validity overflow", sub("certificates: {}", "certificates: {validity: 9999999999h}"), "spec.certificates.validity", "too long"},
		{"validity overflow in days", sub("certificates: {}", "certificates: {validity: 1e12d}"), "spec.certificates.validity", "too long"},
		{"validity garbage", sub("certificates: {}", "certificates: {validity: soon}"), "spec.certificates.validity", "invalid duration"},
		{"caValidity 0", sub("certificates: {}", "certificates: {caValidity: 0d}"), "spec.certificates.caValidity", "no lifetime"},
		{"maxPods 0", sub("kubelet: {}", "kubelet: {maxPods: 0}"), "spec.kubelet.maxPods", "pods fit on no node"},
		{"maxPods too many", sub("kubelet: {}", "kubelet: {maxPods: 500}"), "spec.kubelet.maxPods", "outside 1-250"},
		// Names that reach hosts.
		{"label key", w1(`labels: {"bad key": x}`), "spec.hosts[1].labels", "not a label key"},
		{"label value", w1(`labels: {zone: "$(touch /tmp/x)"}`), "spec.hosts[1].labels.zone", "not a label value"},
		{"ssh user", sub("{user: root}", `{user: "root; id"}`), "spec.ssh.user", "not a user name"},
		// Inherited from spec.ssh: named there, once.
		{"inherited error names spec.ssh", sub("{user: root}", `{user: root, passwordEnv: "not a name"}`), "spec.ssh.passwordEnv", "environment variable name"},
	} {
		_, _, err := Parse("rules.yaml", []byte(tc.edit(rulesBase)))
		var inv *InvalidError
		if !errors.As(err, &inv) {
			t.Errorf("%s: accepted (%v)", tc.name, err)
			continue
		}
		found := false
		for _, f := range inv.Fields {
			if f.Path == tc.path && strings.Contains(f.Msg, tc.want) {
				found = true
				if f.Line == 0 && !strings.Contains(tc.name, "empty host") {
					t.Errorf("%s: no line for %s", tc.name, f.Path)
				}
			}
			if tc.name == "inherited error names spec.ssh" && strings.HasPrefix(f.Path, "spec.hosts") {
				t.Errorf("%s: also blamed on %s", tc.name, f.Path)
			}
		}
		if !found {
			t.Errorf("%s: want %s: ...%s...; got:\n%v", tc.name, tc.path, tc.want, err)
		}
	}
	if _, _, err := Parse("rules.yaml", []byte(rulesBase)); err != nil {
		t.Fatalf("the base file: %v", err)
	}
}

// Broken files are named for what is wrong with them.
func TestBrokenFileWords(t *testing.T) {
	for _, tc := range []struct{ name, data, want string }{
		{"empty", "", "the cluster file is empty"},
		{"comments only", "# nothing yet\n\n# still nothing\n", "the cluster file is empty"},
		{"tab", "apiVersion: kubeforge.io/v1alpha1\nkind: Cluster\nspec:\n\thosts: []\n", "line 4: (syntax): a tab in the indentation"},
		{"syntax", "apiVersion: kubeforge.io/v1alpha1\nkind: Cluster\nspec:\n  hosts: [\n", "line 4: (syntax)"},
		{"a list, not a Cluster", "- a\n- b\n", "is not a Cluster"},
		{"two documents", "apiVersion: kubeforge.io/v1alpha1\n---\nkind: Cluster\n", "more than one YAML document"},
	} {
		_, _, err := Parse("f.yaml", []byte(tc.data))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
