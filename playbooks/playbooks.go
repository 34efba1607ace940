// Package playbooks holds the ordered steps of each kubeforge action as
// plain data: embedded YAML files, one per action, loaded and checked
// here. Which code runs a step is the phases package's business.
package playbooks

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"

	yaml "go.yaml.in/yaml/v3"

	"github.com/kubeforge/kubeforge/internal/config"
)

//go:embed *.yaml
var files embed.FS

// Selector picks the hosts a step runs on.
type Selector string

const (
	All                Selector = "all"
	ControlPlane       Selector = "control-plane"
	FirstControlPlane  Selector = "first-control-plane"
	OtherControlPlanes Selector = "other-control-planes"
	Workers            Selector = "workers"
	Etcd               Selector = "etcd"
	// Admin is the machine kubeforge runs on: the step's phase prepares
	// there (the PKI in the state directory) and touches no host.
	Admin Selector = "admin"
)

var selectors = []Selector{All, ControlPlane, FirstControlPlane, OtherControlPlanes, Workers, Etcd, Admin}

// Step is one phase run on a set of hosts.
type Step struct {
	Phase string   `yaml:"phase"`
	Hosts Selector `yaml:"hosts"`
	// Serial runs the hosts one by one, in file order, instead of in
	// parallel (rolling restarts, etcd members joining one at a time).
	Serial bool `yaml:"serial,omitempty"`
	// Cluster keeps the step on every host its selector picks when a run
	// is narrowed to some hosts (join --host): what the others must learn
	// of a new member (keepalived's peers), or cluster-wide objects.
	Cluster bool `yaml:"cluster,omitempty"`
	// After names the earlier steps this one waits for. Without it, a step
	// waits for the one before it. Steps whose waits are over run at the
	// same time (the runtime's packages while the bundle uploads).
	After []string `yaml:"after,omitempty"`
}

// Playbook is an action's steps.
type Playbook struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	Steps       []Step `yaml:"steps"`
}

// Load returns the named playbook.
func Load(name string) (*Playbook, error) {
	data, err := files.ReadFile(name + ".yaml")
	if err != nil {
		return nil, fmt.Errorf("no playbook %q (have %s)", name, strings.Join(Names(), ", "))
	}
	return parse(name, data)
}

// Names lists the playbooks.
func Names() []string {
	entries, _ := fs.ReadDir(files, ".")
	var out []string
	for _, e := range entries {
		out = append(out, strings.TrimSuffix(e.Name(), path.Ext(e.Name())))
	}
	sort.Strings(out)
	return out
}

func parse(name string, data []byte) (*Playbook, error) {
	var pb Playbook
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&pb); err != nil {
		return nil, fmt.Errorf("playbook %s: %w", name, err)
	}
	if pb.Name != name {
		return nil, fmt.Errorf("playbook %s: names itself %q", name, pb.Name)
	}
	seen := map[string]bool{}
	for i, s := range pb.Steps {
		if s.Phase == "" {
			return nil, fmt.Errorf("playbook %s: step %d has no phase", name, i+1)
		}
		if seen[s.Phase] {
			return nil, fmt.Errorf("playbook %s: phase %q appears twice (steps are addressed by phase name)", name, s.Phase)
		}
		seen[s.Phase] = true
		if !validSelector(s.Hosts) {
			return nil, fmt.Errorf("playbook %s: step %s: unknown hosts %q (%v)", name, s.Phase, s.Hosts, selectors)
		}
		for _, a := range s.After {
			// Only earlier steps: the order of the file stays a valid order
			// to run them in, and there can be no cycle.
			if !slices.Contains(pb.Phases()[:i], a) {
				return nil, fmt.Errorf("playbook %s: step %s waits for %q, which is not a step before it", name, s.Phase, a)
			}
		}
	}
	return &pb, nil
}

// Deps lists, for each step, the indexes of the steps it waits for.
func (p *Playbook) Deps() [][]int {
	out := make([][]int, len(p.Steps))
	for i, s := range p.Steps {
		switch {
		case s.After != nil:
			for _, a := range s.After {
				out[i] = append(out[i], slices.Index(p.Phases(), a))
			}
		case i > 0:
			out[i] = []int{i - 1}
		}
	}
	return out
}

func validSelector(s Selector) bool {
	for _, x := range selectors {
		if s == x {
			return true
		}
	}
	return false
}

// Select returns the hosts of the cluster the selector picks, in file order.
// Admin picks none: its phase runs on the admin machine.
func (s Selector) Select(c *config.Cluster) []*config.Host {
	var out []*config.Host
	first := c.FirstControlPlane()
	for i := range c.Spec.Hosts {
		h := &c.Spec.Hosts[i]
		var pick bool
		switch s {
		case All:
			pick = true
		case ControlPlane:
			pick = h.Has(config.RoleControlPlane)
		case FirstControlPlane:
			pick = h == first
		case OtherControlPlanes:
			pick = h.Has(config.RoleControlPlane) && h != first
		case Workers:
			pick = h.Has(config.RoleWorker) && !h.Has(config.RoleControlPlane)
		case Etcd:
			pick = h.Has(config.RoleEtcd)
		}
		if pick {
			out = append(out, h)
		}
	}
	return out
}

// Select returns the hosts a step runs on. targets, when not empty, narrows
// the run to those host names; a Cluster step keeps its whole selection.
func (s Step) Select(c *config.Cluster, targets []string) []*config.Host {
	hosts := s.Hosts.Select(c)
	if len(targets) == 0 || s.Cluster {
		return hosts
	}
	var out []*config.Host
	for _, h := range hosts {
		if slices.Contains(targets, h.Name) {
			out = append(out, h)
		}
	}
	return out
}

// Phases lists the step names in order.
func (p *Playbook) Phases() []string {
	out := make([]string, len(p.Steps))
	for i, s := range p.Steps {
		out[i] = s.Phase
	}
	return out
}
