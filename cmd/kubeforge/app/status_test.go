package app

import (
	"bytes"
	"strings"
	"testing"

	"github.com/kubeforge/kubeforge/phases"
)

func services(states ...string) []phases.ServiceStatus {
	var out []phases.ServiceStatus
	for i, s := range states {
		out = append(out, phases.ServiceStatus{Name: []string{"containerd", "kubelet", "kube-proxy", "flanneld"}[i], State: s})
	}
	return out
}

func TestStatusFinish(t *testing.T) {
	healthy := func() statusReport {
		return statusReport{
			Cluster: "c", VIP: "10.0.0.100", VIPHeld: []string{"cp1"}, API: "ok",
			Hosts: []hostRow{
				{HostStatus: phases.HostStatus{Name: "cp1", Services: services("active", "active", "active", "active")}},
				{HostStatus: phases.HostStatus{Name: "w1", Services: services("active", "active", "active", "active")}},
				{HostStatus: phases.HostStatus{Name: "w2", Services: services("active", "active", "active", "active")}},
			},
			Nodes: []phases.NodeStatus{{Name: "cp1", Ready: "True"}, {Name: "w1", Ready: "True"}, {Name: "w2", Ready: "True"}},
			Etcd:  []phases.EtcdStatus{{Name: "cp1", Healthy: true, Leader: true}},
		}
	}
	for _, tc := range []struct {
		name      string
		edit      func(*statusReport)
		degraded  []string // each a part of one degraded line, in order
		firstHost string
	}{
		{name: "healthy", edit: func(*statusReport) {}, firstHost: "cp1"},
		{name: "a stopped kubelet comes first", edit: func(r *statusReport) {
			r.Hosts[2].Services[1].State = "inactive"
			r.Nodes[2].Ready = "Unknown"
		}, degraded: []string{"host w2: kubelet is inactive", "node w2: Ready=Unknown"}, firstHost: "w2"},
		{name: "an unreachable host is a row", edit: func(r *statusReport) {
			r.Hosts[1] = hostRow{HostStatus: phases.HostStatus{Name: "w1"}, Unreachable: "connect: no route to host"}
		}, degraded: []string{"host w1: connect: no route to host"}, firstHost: "w1"},
		{name: "an error that names its host is not named twice", edit: func(r *statusReport) {
			r.Hosts[1] = hostRow{HostStatus: phases.HostStatus{Name: "w1"}, Unreachable: "host w1 (10.0.0.2:22): i/o timeout"}
		}, degraded: []string{"host w1 (10.0.0.2:22): i/o timeout"}, firstHost: "w1"},
		{name: "a learner, no VIP holder, the API down", edit: func(r *statusReport) {
			r.Etcd = append(r.Etcd, phases.EtcdStatus{Name: "cp2", Learner: true})
			r.VIPHeld = nil
			r.API = "connection refused"
		}, degraded: []string{"etcd member cp2: a learner", "VIP 10.0.0.100 held by 0 hosts", "API /readyz through the endpoint: connection refused"}, firstHost: "cp1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := healthy()
			tc.edit(&r)
			r.finish()
			if r.Healthy != (len(tc.degraded) == 0) || len(r.Degraded) != len(tc.degraded) {
				t.Fatalf("healthy %v, degraded %q; want %q", r.Healthy, r.Degraded, tc.degraded)
			}
			for i, want := range tc.degraded {
				if !strings.HasPrefix(r.Degraded[i], want) {
					t.Errorf("degraded[%d] = %q, want it to start with %q", i, r.Degraded[i], want)
				}
			}
			if r.Hosts[0].Name != tc.firstHost {
				t.Errorf("first host row %s, want %s", r.Hosts[0].Name, tc.firstHost)
			}
			var out bytes.Buffer
			printStatus(&out, &r)
			lines := strings.Split(out.String(), "\n")
			if !strings.HasPrefix(lines[1], tc.firstHost+" ") {
				t.Errorf("the table's first row is %q, want %s's", lines[1], tc.firstHost)
			}
			if r.Healthy != strings.Contains(out.String(), "\nHealthy.") {
				t.Errorf("the table says:\n%s", out.String())
			}
		})
	}
}

// A cluster half way through an upgrade is flagged, naming who runs what.
func TestMixedVersions(t *testing.T) {
	nodes := []phases.NodeStatus{
		{Name: "cp1", Kubelet: "v1.36.5", Runtime: "containerd://2.4.2"},
		{Name: "w1", Kubelet: "v1.35.4", Runtime: "containerd://1.6.20"},
		{Name: "w2", Kubelet: "v1.35.4", Runtime: "containerd://2.4.2"},
	}
	got := mixedVersions(nodes, []phases.EtcdStatus{{Name: "cp1", Version: "3.6.17"}})
	if len(got) != 2 || !strings.Contains(got[0], "kubelet versions differ (v1.35.4 on w1, w2; v1.36.5 on cp1)") ||
		!strings.Contains(got[1], "container runtimes differ (containerd://1.6.20 on w1; containerd://2.4.2 on cp1, w2)") {
		t.Fatalf("got %q", got)
	}
	if got := mixedVersions(nodes[:1], nil); got != nil {
		t.Errorf("one version flagged: %q", got)
	}
}
