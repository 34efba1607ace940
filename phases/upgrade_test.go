package phases

import (
	"strings"
	"testing"
	"time"

	"github.com/kubeforge/kubeforge/components/bundle"
)

func targetBundle(kube, etcd string) *bundle.Manifest {
	return &bundle.Manifest{Files: []bundle.File{
		{Path: "bin/kube", Size: 160 << 20, Programs: []bundle.Program{{Name: "kubelet", Version: kube}, {Name: "etcd", Version: etcd}}},
		{Path: "bin/containerd", Size: 40 << 20, Programs: []bundle.Program{{Name: "containerd", Version: "v2.4.2"}}},
	}}
}

// upgradeInput is a healthy 3 + 2 cluster made by main's kubeforge:
// v1.35.4, etcd 3.6.5, the OS's containerd on the workers.
func upgradeInput(t *testing.T, target *bundle.Manifest) UpgradeInput {
	c := parseCluster(t, `
    - {name: cp1, address: 192.0.2.11, roles: [control-plane]}
    - {name: cp2, address: 192.0.2.12, roles: [control-plane]}
    - {name: cp3, address: 192.0.2.13, roles: [control-plane]}
    - {name: w1, address: 192.0.2.21, roles: [worker]}
    - {name: w2, address: 192.0.2.22, roles: [worker]}`)
	now := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	in := UpgradeInput{Cluster: c, Target: target, Now: now, Hosts: map[string]UpgradeHost{},
		APIServers: map[string]string{}, DeprecatedAPIs: map[string]string{},
		SoonestCert: "apiserver-etcd-client", SoonestExpiry: now.AddDate(0, 11, 0)}
	for _, h := range c.Spec.Hosts {
		in.Hosts[h.Name] = UpgradeHost{Name: h.Name, Bundle: "v1.35.4", FreeBytes: 10 << 30}
		runtime := "containerd://2.4.2"
		if strings.HasPrefix(h.Name, "w") {
			runtime = "containerd://1.6.20"
		}
		in.Nodes = append(in.Nodes, NodeStatus{Name: h.Name, Ready: "True", Kubelet: "v1.35.4", Runtime: runtime})
		if strings.HasPrefix(h.Name, "cp") {
			in.APIServers[h.Name] = "v1.35.4"
			in.Etcd = append(in.Etcd, EtcdStatus{Name: h.Name, Healthy: true, Version: "3.6.5"})
		}
	}
	return in
}

func TestPlanUpgradeNextMinor(t *testing.T) {
	p := PlanUpgrade(upgradeInput(t, targetBundle("v1.36.5", "v3.6.17")))
	if len(p.Refused) > 0 {
		t.Fatalf("refused: %q", p.Refused)
	}
	if p.From != "v1.35.4" || p.To != "v1.36.5" || strings.Join(p.ControlPlanes, ",") != "cp1,cp2,cp3" || strings.Join(p.Workers, ",") != "w1,w2" {
		t.Fatalf("plan %+v", p)
	}
	var got []string
	for _, c := range p.Changes {
		got = append(got, c.Host+" "+c.Component+" "+c.From+">"+c.To)
	}
	want := []string{
		"cp1 etcd v3.6.5>v3.6.17", "cp1 kube-apiserver, controller-manager, scheduler v1.35.4>v1.36.5", "cp1 kubelet, kube-proxy v1.35.4>v1.36.5",
		"cp2 etcd v3.6.5>v3.6.17", "cp2 kube-apiserver, controller-manager, scheduler v1.35.4>v1.36.5", "cp2 kubelet, kube-proxy v1.35.4>v1.36.5",
		"cp3 etcd v3.6.5>v3.6.17", "cp3 kube-apiserver, controller-manager, scheduler v1.35.4>v1.36.5", "cp3 kubelet, kube-proxy v1.35.4>v1.36.5",
		"w1 kubelet, kube-proxy v1.35.4>v1.36.5", "w1 container runtime containerd://1.6.20>containerd://2.4.2",
		"w2 kubelet, kube-proxy v1.35.4>v1.36.5", "w2 container runtime containerd://1.6.20>containerd://2.4.2",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("changes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// What upstream forbids is refused with the way forward.
func TestPlanUpgradeRefusesSkewAndDowngrade(t *testing.T) {
	p := PlanUpgrade(upgradeInput(t, targetBundle("v1.37.2", "v3.7.4")))
	want := []string{
		"v1.35.4 to v1.37.2 skips Kubernetes 1.36: upstream moves the control plane one minor at a time; upgrade with a bundle of 1.36 first (make bundle K8S=1.36)",
		"etcd member cp1 runs v3.6.5; etcd 3.7 needs every member at v3.6.11 or later first: upgrade with a bundle of Kubernetes 1.36 (etcd v3.6.17) first",
	}
	for _, w := range want {
		if !contains(p.Refused, w) {
			t.Errorf("refusals lack %q:\n%s", w, strings.Join(p.Refused, "\n"))
		}
	}

	in := upgradeInput(t, targetBundle("v1.35.8", "v3.6.17"))
	in.APIServers["cp2"] = "v1.36.5"
	p = PlanUpgrade(in)
	if len(p.Refused) != 1 || !strings.Contains(p.Refused[0], "older than the API servers' v1.36.5: kubeforge does not downgrade") {
		t.Errorf("downgrade: %q", p.Refused)
	}

	in = upgradeInput(t, targetBundle("v1.35.8", "v3.6.17"))
	in.Etcd[0].Version = "3.7.4" // etcd spells it without the v
	if p = PlanUpgrade(in); len(p.Refused) != 1 || !strings.Contains(p.Refused[0], "etcd member cp1 runs v3.7.4, newer than the bundle's v3.6.17") {
		t.Errorf("etcd ahead: %q", p.Refused)
	}

	in = upgradeInput(t, targetBundle("v1.35.8", "v3.6.17"))
	in.Nodes[3].Kubelet = "v1.36.5"
	if p = PlanUpgrade(in); len(p.Refused) != 1 || !strings.Contains(p.Refused[0], "node w1: kubelet v1.36.5 is newer than v1.35.8") {
		t.Errorf("kubelet ahead: %q", p.Refused)
	}
}

// What would not survive the way is refused, each naming what to do.
func TestPlanUpgradeRefusesUnhealthy(t *testing.T) {
	in := upgradeInput(t, targetBundle("v1.36.5", "v3.6.17"))
	in.Nodes[4].Ready = "False"
	in.Nodes[3].Pressure = []string{"DiskPressure"}
	in.Etcd[1] = EtcdStatus{Name: "cp2", Learner: true}
	in.SoonestExpiry = in.Now.Add(3 * time.Hour)
	in.Hosts["w1"] = UpgradeHost{Name: "w1", FreeBytes: 100 << 20}
	in.BlockingPDBs = []string{"default/web (pods on w1, w2: 3 of 3 pods healthy, 3 must stay)"}
	in.DeprecatedAPIs["flowcontrol.apiserver.k8s.io/v1beta3 flowschemas"] = "1.36"
	in.DeprecatedAPIs["v1 componentstatuses"] = ""
	in.FileChanged = true
	in.Unread = []string{"the PodDisruptionBudgets: forbidden"}
	p := PlanUpgrade(in)
	for _, w := range []string{
		"could not read the PodDisruptionBudgets: forbidden",
		"node w2 is not Ready (Ready=False)",
		"node w1 reports DiskPressure: its kubelet evicts pods",
		"etcd member cp2 is a learner, not a voter",
		"certificate apiserver-etcd-client expires 2026-12-06T03:00:00Z, before an upgrade could finish: renew first (kubeforge certs renew all",
		"host w1: 100 MiB free under /opt/kubeforge, the new bundle needs 240 MiB",
		"PodDisruptionBudget default/web (pods on w1, w2: 3 of 3 pods healthy, 3 must stay) allows no eviction now",
		"clients still use APIs that Kubernetes 1.36 no longer serves: flowcontrol.apiserver.k8s.io/v1beta3 flowschemas (removed in 1.36);",
		"the cluster file is not the one the cluster was last set up with",
	} {
		if !contains(p.Refused, w) {
			t.Errorf("refusals lack %q:\n%s", w, strings.Join(p.Refused, "\n"))
		}
	}
	if len(p.Refused) != 9 {
		t.Errorf("%d refusals:\n%s", len(p.Refused), strings.Join(p.Refused, "\n"))
	}
}

func TestPlanUpgradeNothingToDo(t *testing.T) {
	in := upgradeInput(t, targetBundle("v1.35.4", "v3.6.5"))
	for i := range in.Nodes {
		in.Nodes[i].Runtime = "containerd://2.4.2"
	}
	if p := PlanUpgrade(in); !p.Nothing() || len(p.Refused) > 0 {
		t.Errorf("plan %+v", p)
	}
}

func contains(list []string, sub string) bool {
	for _, s := range list {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
