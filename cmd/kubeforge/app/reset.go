package app

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kubeforge/kubeforge/phases"
)

// ResetOptions are reset's own flags.
type ResetOptions struct {
	Yes   bool
	Purge bool
}

// NewCmdReset builds `kubeforge reset`.
func NewCmdReset(deps *Deps, runF func(*ActionOptions, []string) error) *cobra.Command {
	return newActionCmd(deps, resetAction(deps, &ResetOptions{}), runF)
}

// resetAction is `kubeforge reset`, also the second pass of `delete node`.
func resetAction(deps *Deps, opts *ResetOptions) action {
	return action{
		playbook: "reset",
		use:      "reset -f CLUSTER_FILE [--host NAME,...] [--yes]",
		short:    "Undo init and join on hosts (all of them by default)",
		long: `Take kubeforge off hosts, so they can be initialised or joined again: stop and remove its
services and timers; stop the pods' containers, unmount their volumes, remove their
network namespaces and images; remove the pod network's interfaces (cni0, flannel.1)
and the firewall chains of kube-proxy, flanneld, the kubelet and the CNI plugins (and
put back the rules from before init); remove /etc/kubernetes, /var/lib/etcd,
/var/lib/kubelet, the bundle and its links, and every other file kubeforge wrote; set
the kernel settings it changed back to what they were. The OS packages it installed
(containerd, keepalived...) stay, unless --purge-packages; the etcd system user stays.

This destroys the cluster's data on those hosts: it asks first, unless --yes. To take
one node out of a running cluster, 'kubeforge delete node' drains it first.`,
		example: `  kubeforge reset -f cluster.yaml --host worker3
  kubeforge reset -f cluster.yaml --yes --purge-packages`,
		hosts: "hosts of the cluster file to reset (default: all)",
		flags: func(f *pflag.FlagSet) {
			f.BoolVar(&opts.Yes, "yes", false, "do not ask first")
			f.BoolVar(&opts.Purge, "purge-packages", false, "also purge the OS packages kubeforge installed")
		},
		setup: func(_ context.Context, deps *Deps, run *actionRun) error {
			targets := run.Opts.Hosts
			if len(targets) == 0 {
				for _, h := range run.Cluster.Spec.Hosts {
					targets = append(targets, h.Name)
				}
			}
			if !opts.Yes && !run.Opts.DryRun {
				if err := confirm(deps, fmt.Sprintf("Reset %s? Everything kubeforge put there goes, the cluster's data on them too.", strings.Join(targets, ", "))); err != nil {
					return err
				}
			}
			run.Runner.NewPhase = phases.Builder(map[string]func(*phases.Env) phases.Phase{
				"reset": func(env *phases.Env) phases.Phase { return phases.NewReset(env, opts.Purge) },
			})
			return nil
		},
	}
}
