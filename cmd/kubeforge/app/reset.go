package app

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kubeforge/kubeforge/phases"
	"github.com/kubeforge/kubeforge/playbooks"
)

// ResetOptions are the flags of `kubeforge reset`.
type ResetOptions struct {
	ActionOptions
	Hosts []string
	Yes   bool
	Purge bool
}

// NewCmdReset builds `kubeforge reset`.
func NewCmdReset(deps *Deps) *cobra.Command {
	opts := &ResetOptions{}
	cmd := &cobra.Command{
		Use:   "reset -f CLUSTER_FILE [--host NAME,...] [--yes]",
		Short: "Undo init and join on hosts (all of them by default)",
		Long: `Take kubeforge off hosts, so they can be initialised or joined again: stop and remove its
services and timers; stop the pods' containers, unmount their volumes, remove their
network namespaces and images; remove the pod network's interfaces (cni0, flannel.1)
and the firewall chains of kube-proxy, flanneld, the kubelet and the CNI plugins (and
put back the rules from before init); remove /etc/kubernetes, /var/lib/etcd,
/var/lib/kubelet, the bundle and its links, and every other file kubeforge wrote; set
the kernel settings it changed back to what they were. The OS packages it installed
(containerd, keepalived...) stay, unless --purge-packages.

This destroys the cluster's data on those hosts: it asks first, unless --yes. To take
one node out of a running cluster, 'kubeforge delete node' drains it first.`,
		Example: `  kubeforge reset -f cluster.yaml --host worker3
  kubeforge reset -f cluster.yaml --yes --purge-packages`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runReset(cmd.Context(), deps, opts) },
	}
	addActionFlags(cmd, &opts.ActionOptions, false)
	cmd.Flags().StringSliceVar(&opts.Hosts, "host", nil, "hosts of the cluster file to reset (default: all)")
	cmd.Flags().BoolVar(&opts.Yes, "yes", false, "do not ask first")
	cmd.Flags().BoolVar(&opts.Purge, "purge-packages", false, "also purge the OS packages kubeforge installed")
	return cmd
}

func runReset(ctx context.Context, deps *Deps, opts *ResetOptions) error {
	pb, err := playbooks.Load("reset")
	if err != nil {
		return err
	}
	a := action{
		playbook: "reset",
		setup: func(_ context.Context, deps *Deps, run *actionRun, ao *ActionOptions) error {
			targets := opts.Hosts
			for _, n := range targets {
				if run.Cluster.Host(n) == nil {
					return usageError{fmt.Errorf("--host %s: the cluster file has no such host", n)}
				}
			}
			if len(targets) == 0 {
				for _, h := range run.Cluster.Spec.Hosts {
					targets = append(targets, h.Name)
				}
			}
			if !opts.Yes && !ao.DryRun {
				if err := confirm(deps, fmt.Sprintf("Reset %s? Everything kubeforge put there goes, the cluster's data on them too.", strings.Join(targets, ", "))); err != nil {
					return err
				}
			}
			run.Runner.Targets = opts.Hosts
			run.Runner.NewPhase = phases.Builder(map[string]func(*phases.Env) phases.Phase{
				"reset": func(env *phases.Env) phases.Phase { return phases.NewReset(env, opts.Purge) },
			})
			return nil
		},
	}
	return runAction(ctx, deps, a, pb, &opts.ActionOptions)
}
