package host

import (
	"fmt"
	"strings"
)

// BaseTools are the commands a node needs that kubeforge does not ship:
// part of every server distribution's base system, installed from the OS's
// packages only on a host that lacks one. kube-proxy, flanneld and the
// kubelet program the firewall with iptables; kube-proxy clears
// connection-tracking entries with conntrack; kubectl port-forward runs
// socat on the node.
var BaseTools = []string{"iptables", "conntrack", "socat"}

// baseToolList is BaseTools as the facts script's loop words.
var baseToolList = strings.Join(BaseTools, " ")

// toolPackages names the package that provides a tool, by package
// manager, where it is not the tool's own name.
var toolPackages = map[string]map[string]string{
	"dnf": {"conntrack": "conntrack-tools"},
	"yum": {"conntrack": "conntrack-tools"},
}

// PackageFor is the OS package that provides tool on this host.
func (f *Facts) PackageFor(tool string) string {
	if p, ok := toolPackages[f.PackageManager][tool]; ok {
		return p
	}
	return tool
}

// MissingToolPackages are the packages of the base tools the host lacks.
func (f *Facts) MissingToolPackages() []string {
	var out []string
	for _, t := range f.MissingTools {
		out = append(out, f.PackageFor(t))
	}
	return out
}

// DescribeMissingTools says which tools are missing and what provides them:
// "iptables (package iptables), conntrack (package conntrack-tools)".
func (f *Facts) DescribeMissingTools() string {
	parts := make([]string, len(f.MissingTools))
	for i, t := range f.MissingTools {
		parts[i] = fmt.Sprintf("%s (package %s)", t, f.PackageFor(t))
	}
	return strings.Join(parts, ", ")
}
