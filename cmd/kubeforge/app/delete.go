package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/phases"
	"github.com/kubeforge/kubeforge/playbooks"
)

// DeleteNodeOptions are the flags of `kubeforge delete node`.
type DeleteNodeOptions struct {
	ActionOptions
	Force bool
	Yes   bool
	// KeepHost skips the reset of the host.
	KeepHost bool
}

// NewCmdDelete builds `kubeforge delete`.
func NewCmdDelete(deps *Deps) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "delete",
		Short: "Take things out of a running cluster",
		Args:  noArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	opts := &DeleteNodeOptions{}
	node := &cobra.Command{
		Use:   "node NAME -f CLUSTER_FILE [--force] [--yes]",
		Short: "Take a host out of the cluster: drain it, remove its etcd member, delete the Node, reset it",
		Long: `Take a host of the cluster file out of the running cluster, then reset it:

  1. refuse, before anything changes, a removal that would leave no control plane or
     cost etcd its quorum (the remaining voting members must be a healthy majority);
     one that would leave a single etcd member needs --force;
  2. cordon and drain the node (PodDisruptionBudgets are respected; 5 minutes at most;
     pods that no controller manages need --force); a node that is not Ready is not
     drained: its pods are replaced once the Node is gone;
  3. for a control plane: give the VIP to another one, remove its etcd member (the
     others healthy afterwards), and take it out of the other control planes'
     keepalived peers;
  4. delete the Node;
  5. reset the host, as 'kubeforge reset --host NAME' does (skipped when it cannot be
     reached, or with --keep-host).

The cluster file still lists the host afterwards: remove its entry, or a later init or
join puts it back.`,
		Example: `  kubeforge delete node worker3 -f cluster.yaml
  kubeforge delete node cp3 -f cluster.yaml --yes`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{errors.New("name the host to take out (its name in the cluster file)")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDeleteNode(cmd.Context(), deps, opts, args[0])
		},
	}
	addActionFlags(node, &opts.ActionOptions, false)
	node.Flags().BoolVar(&opts.Force, "force", false, "drain pods no controller manages too, and allow leaving a single etcd member")
	node.Flags().BoolVar(&opts.Yes, "yes", false, "do not ask first")
	node.Flags().BoolVar(&opts.KeepHost, "keep-host", false, "do not reset the host afterwards")
	cmd.AddCommand(node)
	return cmd
}

func runDeleteNode(ctx context.Context, deps *Deps, opts *DeleteNodeOptions, name string) error {
	pb, err := playbooks.Load("remove-node")
	if err != nil {
		return err
	}
	start := time.Now()
	var target *config.Host
	reachable := false
	a := action{
		playbook: "remove-node",
		setup: func(_ context.Context, deps *Deps, run *actionRun, ao *ActionOptions) error {
			if target = run.Cluster.Host(name); target == nil {
				return usageError{fmt.Errorf("%s: the cluster file %s has no such host", name, run.File)}
			}
			if !opts.Yes && !ao.DryRun {
				if err := confirm(deps, fmt.Sprintf("Take %s out of cluster %s? Its pods move to other nodes, then the host is reset.", name, run.Cluster.Metadata.Name)); err != nil {
					return err
				}
			}
			// The run sees what stays; the target is reached on its own.
			stays := run.Cluster.Without(name)
			run.Env.Cluster = stays
			run.Env.ControlHost = phases.ControlHostFrom(run.Pool, stays)
			run.Runner.NewPhase = phases.Builder(map[string]func(*phases.Env) phases.Phase{
				"remove-node": func(env *phases.Env) phases.Phase { return phases.NewRemoveNode(env, target, opts.Force) },
			})
			return nil
		},
		after: func(ctx context.Context, _ *Deps, run *actionRun) error {
			if _, err := run.Pool.Get(ctx, target); err == nil {
				reachable = true
			}
			return nil
		},
	}
	if err := runAction(ctx, deps, a, pb, &opts.ActionOptions); err != nil {
		return err
	}
	out := deps.IO.Out
	switch {
	case opts.DryRun:
		if !opts.KeepHost {
			fmt.Fprintf(out, "\nThen %s would be reset ('kubeforge reset -f %s --host %s --dry-run' shows what that does).\n", name, opts.File, name)
		}
		return nil
	case opts.KeepHost:
		fmt.Fprintf(out, "\n%s is out of the cluster; its host was not reset (--keep-host).\n", name)
	case !reachable:
		fmt.Fprintf(out, "\n%s is out of the cluster, but its host cannot be reached to reset it: when it is back,\n  kubeforge reset -f %s --host %s\n", name, opts.File, name)
	default:
		fmt.Fprintln(out)
		deps.Global.LogFile = deps.LogPath // one log for the whole removal
		if err := runReset(ctx, deps, &ResetOptions{ActionOptions: ActionOptions{File: opts.File, Concurrency: opts.Concurrency}, Hosts: []string{name}, Yes: true}); err != nil {
			return fmt.Errorf("%s is out of the cluster, but resetting its host failed: %w (run 'kubeforge reset -f %s --host %s' again)", name, err, opts.File, name)
		}
	}
	fmt.Fprintf(out, "\n%s is out of the cluster (%s). The cluster file %s still lists it: remove its entry under spec.hosts,\n"+
		"or a later init, join or certs renew will reach for it again.\n", name, time.Since(start).Round(100*time.Millisecond), opts.File)
	return nil
}
