package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const valid = `apiVersion: kubeforge.io/v1alpha1
kind: Cluster
metadata:
  name: lab
spec:
  ssh:
    user: admin
    keyPath: /root/.ssh/id_ed25519
  hosts:
    - name: cp1
      address: 172.30.0.11
      roles: [control-plane]
    - name: w1
      address: 172.30.0.12
      roles: [worker]
      ssh:
        port: 2222
  controlPlane:
    certSANs: [api.example.com, 192.0.2.10]
  certificates:
    validity: 30d
`

func TestParseValidWithDefaults(t *testing.T) {
	c, warnings, err := Parse("cluster.yaml", []byte(valid))
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings: %v", warnings)
	}
	cp, w := c.Host("cp1"), c.Host("w1")
	if !cp.Has(RoleEtcd) || w.Has(RoleEtcd) {
		t.Errorf("stacked etcd default: cp1 %v, w1 %v", cp.Roles, w.Roles)
	}
	if w.SSH.User != "admin" || w.SSH.Port != 2222 || w.SSH.KeyPath != "/root/.ssh/id_ed25519" || cp.SSH.Port != 22 {
		t.Errorf("ssh merge: cp1 %+v, w1 %+v", cp.SSH, w.SSH)
	}
	if c.Spec.ControlPlane.Endpoint != "172.30.0.11:6443" {
		t.Errorf("endpoint %q", c.Spec.ControlPlane.Endpoint)
	}
	if c.Spec.Certificates.Validity.Duration != 30*24*time.Hour || c.Spec.Certificates.CAValidity.Duration != DefaultCAValidity {
		t.Errorf("validity %v / %v", c.Spec.Certificates.Validity, c.Spec.Certificates.CAValidity)
	}
	if c.Spec.Networking.PodCIDR != DefaultPodCIDR || c.Spec.Networking.Backend != BackendVXLAN {
		t.Errorf("networking %+v", c.Spec.Networking)
	}
	// Defaults are idempotent.
	before := *c.Host("cp1")
	SetDefaults(c)
	if len(c.Host("cp1").Roles) != len(before.Roles) {
		t.Errorf("second SetDefaults changed roles: %v", c.Host("cp1").Roles)
	}
}

func TestVIPBecomesEndpoint(t *testing.T) {
	c, _, err := Parse("c", []byte(strings.Replace(valid, "  controlPlane:\n", "  controlPlane:\n    vip: 172.30.0.100\n", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if c.Spec.ControlPlane.Endpoint != "172.30.0.100:6443" || c.Spec.ControlPlane.VirtualRouterID != DefaultVirtualRouterID {
		t.Fatalf("controlPlane %+v", c.Spec.ControlPlane)
	}
}

// TestInvalid: each bad input gives an error naming the field and, where
// the field is in the file, its line.
func TestInvalid(t *testing.T) {
	for name, tc := range map[string]struct {
		edit func(string) string
		want []string
	}{
		"unknown field with suggestion": {
			func(s string) string { return strings.Replace(s, "address: 172.30.0.12", "adress: 172.30.0.12", 1) },
			[]string{"line 14: spec.hosts[1].adress: unknown field (did you mean \"address\"?)"},
		},
		"unknown top-level field": {
			func(s string) string { return s + "extra: 1\n" },
			[]string{"extra: unknown field"},
		},
		"overlapping CIDRs": {
			func(s string) string {
				return s + "  networking:\n    podCIDR: 10.0.0.0/8\n    serviceCIDR: 10.96.0.0/12\n"
			},
			[]string{"spec.networking.serviceCIDR: 10.96.0.0/12 overlaps podCIDR 10.0.0.0/8", "line 24"},
		},
		"pod CIDR holds a host": {
			func(s string) string { return s + "  networking:\n    podCIDR: 172.30.0.0/16\n" },
			[]string{"spec.networking.podCIDR: 172.30.0.0/16 contains host address 172.30.0.11 (spec.hosts[0])"},
		},
		"duplicate IP": {
			func(s string) string { return strings.Replace(s, "172.30.0.12", "172.30.0.11", 1) },
			[]string{"spec.hosts[1].address: 172.30.0.11 is already the address of spec.hosts[0]", "line 14"},
		},
		"duplicate name": {
			func(s string) string { return strings.Replace(s, "name: w1", "name: cp1", 1) },
			[]string{"spec.hosts[1].name: \"cp1\" is already used by spec.hosts[0]"},
		},
		"unknown role": {
			func(s string) string { return strings.Replace(s, "roles: [worker]", "roles: [master]", 1) },
			[]string{"spec.hosts[1].roles[0]: unknown role \"master\""},
		},
		"no control plane": {
			func(s string) string { return strings.Replace(s, "roles: [control-plane]", "roles: [worker]", 1) },
			[]string{"spec.hosts: no host has the control-plane role"},
		},
		"VIP equal to a host": {
			func(s string) string {
				return strings.Replace(s, "  controlPlane:\n", "  controlPlane:\n    vip: 172.30.0.12\n", 1)
			},
			[]string{"spec.controlPlane.vip: 172.30.0.12 is the address of spec.hosts[1]"},
		},
		"bad duration": {
			func(s string) string { return strings.Replace(s, "validity: 30d", "validity: a year", 1) },
			[]string{"invalid duration \"a year\""},
		},
		"wrong kind": {
			func(s string) string { return strings.Replace(s, "kind: Cluster", "kind: Pod", 1) },
			[]string{"line 2: kind: is \"Pod\", want \"Cluster\""},
		},
		"wrong type": {
			func(s string) string { return strings.Replace(s, "port: 2222", "port: many", 1) },
			[]string{"line 17: spec.hosts[1].ssh.port: cannot unmarshal"},
		},
		"not YAML": {
			func(string) string { return "a: [" },
			[]string{"line 1: (syntax)"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := Parse("cluster.yaml", []byte(tc.edit(valid)))
			var inv *InvalidError
			if !errors.As(err, &inv) {
				t.Fatalf("error %v, want *InvalidError", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, "cluster.yaml") {
				t.Errorf("message does not name the file: %s", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message lacks %q:\n%s", w, msg)
				}
			}
		})
	}
}

func TestEvenEtcdWarns(t *testing.T) {
	s := strings.Replace(valid, "roles: [worker]", "roles: [control-plane]", 1)
	_, warnings, err := Parse("c", []byte(s))
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "2 etcd members") {
		t.Fatalf("warnings %v", warnings)
	}
}

func TestExampleIsValid(t *testing.T) {
	c, warnings, err := Parse("example", []byte(Example))
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 0 || len(c.Spec.Hosts) != 4 || c.Spec.ControlPlane.Endpoint != "10.0.0.100:6443" {
		t.Fatalf("warnings %v, %d hosts, endpoint %s", warnings, len(c.Spec.Hosts), c.Spec.ControlPlane.Endpoint)
	}
}

func TestPublishedKeepsNoSSHAndParsesBack(t *testing.T) {
	c, _, err := Parse("t", []byte(`apiVersion: kubeforge.io/v1alpha1
kind: Cluster
metadata: {name: pub}
spec:
  ssh: {user: admin, keyPath: /home/admin/.ssh/id, sudoPasswordEnv: SUDO_PW, bastion: "jump@10.0.0.1:22"}
  controlPlane: {vip: 192.0.2.100}
  networking: {backend: host-gw}
  certificates: {validity: 10m}
  hosts:
    - {name: cp1, address: 192.0.2.11, roles: [control-plane], labels: {zone: a}}
    - {name: w1, address: 192.0.2.12, roles: [worker], ssh: {user: other, passwordEnv: W1_PW}}
`))
	if err != nil {
		t.Fatal(err)
	}
	data, err := Published(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"admin", "/home/admin", "SUDO_PW", "jump", "W1_PW", "other", "keyPath"} {
		if strings.Contains(string(data), secret) {
			t.Errorf("published cluster holds %q:\n%s", secret, data)
		}
	}
	back, _, err := Parse("published", data)
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	if back.Spec.ControlPlane.Endpoint != "192.0.2.100:6443" || back.Spec.Networking.Backend != "host-gw" ||
		back.Spec.Certificates.Validity.Duration != 10*time.Minute || len(back.Spec.Hosts) != 2 ||
		!back.Spec.Hosts[0].Has(RoleEtcd) || back.Spec.Hosts[0].Labels["zone"] != "a" {
		t.Errorf("round trip: %+v", back.Spec)
	}
}
