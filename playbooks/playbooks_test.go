package playbooks

import (
	"fmt"
	"strings"
	"testing"

	"github.com/kubeforge/kubeforge/internal/config"
)

func TestEveryPlaybookLoads(t *testing.T) {
	names := Names()
	if len(names) == 0 {
		t.Fatal("no playbooks embedded")
	}
	for _, n := range names {
		pb, err := Load(n)
		if err != nil {
			t.Errorf("%s: %v", n, err)
			continue
		}
		if len(pb.Steps) == 0 || pb.Description == "" {
			t.Errorf("%s: %d steps, description %q", n, len(pb.Steps), pb.Description)
		}
	}
	if _, err := Load("nope"); err == nil || !strings.Contains(err.Error(), "check") {
		t.Errorf("unknown playbook: %v", err)
	}
}

func TestParseRejects(t *testing.T) {
	for name, data := range map[string]string{
		"unknown field":          "name: x\ndescription: d\nsteps:\n  - phase: a\n    hosts: all\n    paralel: true\n",
		"unknown selector":       "name: x\ndescription: d\nsteps:\n  - phase: a\n    hosts: masters\n",
		"duplicate phase":        "name: x\ndescription: d\nsteps:\n  - phase: a\n    hosts: all\n  - phase: a\n    hosts: all\n",
		"wrong name":             "name: y\ndescription: d\nsteps: []\n",
		"waits for itself":       "name: x\ndescription: d\nsteps:\n  - phase: a\n    hosts: all\n    after: [a]\n",
		"waits for a later step": "name: x\ndescription: d\nsteps:\n  - phase: a\n    hosts: all\n    after: [b]\n  - phase: b\n    hosts: all\n",
		"waits for no step":      "name: x\ndescription: d\nsteps:\n  - phase: a\n    hosts: all\n  - phase: b\n    hosts: all\n    after: [c]\n",
	} {
		if _, err := parse("x", []byte(data)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestSelectors(t *testing.T) {
	c := &config.Cluster{Spec: config.Spec{Hosts: []config.Host{
		{Name: "w1", Roles: []config.Role{config.RoleWorker}},
		{Name: "cp1", Roles: []config.Role{config.RoleControlPlane, config.RoleEtcd}},
		{Name: "cp2", Roles: []config.Role{config.RoleControlPlane, config.RoleEtcd, config.RoleWorker}},
		{Name: "e1", Roles: []config.Role{config.RoleEtcd}},
	}}}
	for sel, want := range map[Selector]string{
		All:                "w1,cp1,cp2,e1",
		ControlPlane:       "cp1,cp2",
		FirstControlPlane:  "cp1",
		OtherControlPlanes: "cp2",
		Workers:            "w1",
		Etcd:               "cp1,cp2,e1",
	} {
		var got []string
		for _, h := range sel.Select(c) {
			got = append(got, h.Name)
		}
		if strings.Join(got, ",") != want {
			t.Errorf("%s: %v, want %s", sel, got, want)
		}
	}
}

func TestStepSelectNarrowsToTargets(t *testing.T) {
	c := &config.Cluster{Spec: config.Spec{Hosts: []config.Host{
		{Name: "cp1", Roles: []config.Role{config.RoleControlPlane, config.RoleEtcd}},
		{Name: "cp2", Roles: []config.Role{config.RoleControlPlane, config.RoleEtcd}},
		{Name: "w1", Roles: []config.Role{config.RoleWorker}},
		{Name: "w2", Roles: []config.Role{config.RoleWorker}},
	}}}
	names := func(hs []*config.Host) string {
		var out []string
		for _, h := range hs {
			out = append(out, h.Name)
		}
		return strings.Join(out, ",")
	}
	for _, tc := range []struct {
		step    Step
		targets []string
		want    string
	}{
		{Step{Hosts: All}, nil, "cp1,cp2,w1,w2"},
		{Step{Hosts: All}, []string{"w2", "cp2"}, "cp2,w2"},
		{Step{Hosts: Etcd}, []string{"w2"}, ""},
		{Step{Hosts: ControlPlane, Cluster: true}, []string{"w2"}, "cp1,cp2"},
		{Step{Hosts: Admin}, nil, ""},
	} {
		if got := names(tc.step.Select(c, tc.targets)); got != tc.want {
			t.Errorf("%s %v: %s, want %s", tc.step.Hosts, tc.targets, got, tc.want)
		}
	}
}

func TestDeps(t *testing.T) {
	pb, err := parse("x", []byte(`name: x
description: d
steps:
  - phase: a
    hosts: all
  - phase: b
    hosts: all
    after: [a]
  - phase: c
    hosts: all
    after: [a]
  - phase: d
    hosts: all
    after: [b, c]
  - phase: e
    hosts: all
`))
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(pb.Deps())
	if want := "[[] [0] [0] [1 2] [3]]"; got != want {
		t.Errorf("deps %s, want %s (no after: the step before)", got, want)
	}
}
