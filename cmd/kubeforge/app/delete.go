package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/phases"
)

// DeleteNodeOptions are the flags of `kubeforge delete node`.
type DeleteNodeOptions struct {
	Force bool
	Yes   bool
	// KeepHost skips the reset of the host.
	KeepHost bool
}

// NewCmdDelete builds `kubeforge delete`.
func NewCmdDelete(deps *Deps) *cobra.Command {
	cmd := groupCmd("delete", "Take things out of a running cluster", "")
	cmd.AddCommand(NewCmdDeleteNode(deps, nil))
	return cmd
}

// NewCmdDeleteNode builds `kubeforge delete node`.
func NewCmdDeleteNode(deps *Deps, runF func(*ActionOptions, []string) error) *cobra.Command {
	opts := &DeleteNodeOptions{}
	d := &deleteNode{deps: deps, opts: opts}
	return newActionCmd(deps, action{
		playbook: "remove-node",
		use:      "node NAME -f CLUSTER_FILE [--force] [--yes]",
		short:    "Take a host out of the cluster: drain it, remove its etcd member, delete the Node, reset it",
		long: `Take a host of the cluster file out of the running cluster, then reset it:

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
		example: `  kubeforge delete node worker3 -f cluster.yaml
  kubeforge delete node cp3 -f cluster.yaml --yes`,
		args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{errors.New("name the host to take out (its name in the cluster file)")}
			}
			return nil
		},
		flags: func(f *pflag.FlagSet) {
			f.BoolVar(&opts.Force, "force", false, "drain pods no controller manages too, and allow leaving a single etcd member")
			f.BoolVar(&opts.Yes, "yes", false, "do not ask first")
			f.BoolVar(&opts.KeepHost, "keep-host", false, "do not reset the host afterwards")
		},
		setup: d.setup,
		after: d.after,
	}, runF)
}

// deleteNode is one `delete node`: pass 1 takes the node out of the
// cluster that stays, pass 2 resets its host.
type deleteNode struct {
	deps   *Deps
	opts   *DeleteNodeOptions
	target *config.Host
	start  time.Time
}

func (d *deleteNode) setup(_ context.Context, deps *Deps, run *actionRun) error {
	name := run.Args[0]
	d.start = time.Now()
	if d.target = run.Cluster.Host(name); d.target == nil {
		return usageError{fmt.Errorf("%s: the cluster file %s has no such host", name, run.File)}
	}
	if !d.opts.Yes && !run.Opts.DryRun {
		if err := confirm(deps, fmt.Sprintf("Take %s out of cluster %s? Its pods move to other nodes, then the host is reset.", name, run.Cluster.Metadata.Name)); err != nil {
			return err
		}
	}
	// The run sees what stays; the target is reached on its own.
	run.seeOnly(run.Cluster.Without(name))
	run.Runner.NewPhase = phases.Builder(map[string]func(*phases.Env) phases.Phase{
		"remove-node": func(env *phases.Env) phases.Phase { return phases.NewRemoveNode(env, d.target, d.opts.Force) },
	})
	return nil
}

// after resets the host, when it can be reached, in the same log.
func (d *deleteNode) after(ctx context.Context, deps *Deps, run *actionRun) error {
	name, file, out := d.target.Name, run.File, run.Out
	_, reachErr := run.Pool.Get(ctx, d.target)
	switch {
	case run.Opts.DryRun:
		if !d.opts.KeepHost {
			fmt.Fprintf(out, "\nThen %s would be reset ('kubeforge reset -f %s --host %s --dry-run' shows what that does).\n", name, file, name)
		}
		return nil
	case d.opts.KeepHost:
		fmt.Fprintf(out, "\n%s is out of the cluster; its host was not reset (--keep-host).\n", name)
	case reachErr != nil:
		fmt.Fprintf(out, "\n%s is out of the cluster, but its host cannot be reached to reset it: when it is back,\n  kubeforge reset -f %s --host %s\n", name, file, name)
	default:
		fmt.Fprintln(out)
		deps.Global.LogFile = deps.LogPath // one log for the whole removal
		reset := &ActionOptions{File: file, Concurrency: run.Opts.Concurrency, Hosts: []string{name}}
		if err := runAction(ctx, deps, resetAction(deps, &ResetOptions{Yes: true}), reset, nil); err != nil {
			return fmt.Errorf("%s is out of the cluster, but resetting its host failed: %w (run 'kubeforge reset -f %s --host %s' again)", name, err, file, name)
		}
	}
	fmt.Fprintf(out, "\n%s is out of the cluster (%s). The cluster file %s still lists it: remove its entry under spec.hosts,\n"+
		"or a later init, join or certs renew will reach for it again.\n", name, time.Since(d.start).Round(100*time.Millisecond), file)
	return nil
}
