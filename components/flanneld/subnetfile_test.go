package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestReadSubnetFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "subnet.env")
	if err := os.WriteFile(path, []byte("FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.2.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	prev := readSubnetFile(path)
	if got := prev.network.String(); got != "10.244.0.0/16" {
		t.Errorf("network = %s", got)
	}
	if got := prev.subnet.String(); got != "10.244.2.0/24" {
		t.Errorf("subnet = %s", got)
	}
	if missing := readSubnetFile(filepath.Join(t.TempDir(), "none")); !missing.network.Empty() || !missing.subnet.Empty() {
		t.Errorf("missing file gave %+v", missing)
	}
}

func TestFlagsMatchUpstreamNames(t *testing.T) {
	var o options
	fs := newFlagSet(&o)
	args := []string{"--kube-subnet-mgr", "--kubeconfig-file=/etc/kubernetes/flannel.conf", "--iface=eth0", "--iface=eth1",
		"--ip-masq", "--net-config-path=/etc/kube-flannel/net-conf.json", "--healthz-port=10256"}
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	if !o.kubeSubnetMgr || !o.ipMasq || o.kubeconfig != "/etc/kubernetes/flannel.conf" || o.healthzPort != 10256 || len(o.ifaces) != 2 {
		t.Fatalf("parsed %+v", o)
	}
}
