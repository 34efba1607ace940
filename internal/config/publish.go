package config

import (
	yaml "go.yaml.in/yaml/v3"
)

// Published is the cluster file as the cluster itself keeps it (the
// kube-system/kubeforge-config ConfigMap), for a node that joins on its
// own with a token: networking, certificates, the control plane and every
// host's name, addresses and roles, but nothing of how kubeforge reaches
// the hosts (SSH users, keys, bastions, secrets' variable names).
func Published(c *Cluster) ([]byte, error) {
	out := *c
	out.Spec.SSH = SSH{}
	out.Spec.Hosts = nil
	for _, h := range c.Spec.Hosts {
		if h.Address == "" {
			continue // a local host without an address has none to publish
		}
		h.SSH = SSH{}
		h.Local = false
		out.Spec.Hosts = append(out.Spec.Hosts, h)
	}
	return yaml.Marshal(&out)
}
