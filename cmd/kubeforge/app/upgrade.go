package app

import (
	"context"
	"fmt"
	"io"
	"maps"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kubeforge/kubeforge/phases"
)

// NewCmdUpgrade builds `kubeforge upgrade`.
func NewCmdUpgrade(deps *Deps) *cobra.Command {
	cmd := groupCmd("upgrade", "Move the cluster to the Kubernetes of a newer bundle", "")
	cmd.AddCommand(NewCmdUpgradePlan(deps, nil), NewCmdUpgradeApply(deps, nil))
	return cmd
}

// UpgradePlanOptions are the own flags of `kubeforge upgrade plan`.
type UpgradePlanOptions struct {
	Output string
}

// NewCmdUpgradePlan builds `kubeforge upgrade plan`.
func NewCmdUpgradePlan(deps *Deps, runF func(*ActionOptions, []string) error) *cobra.Command {
	opts := &UpgradePlanOptions{}
	hosts := &upgradeHosts{}
	return newActionCmd(deps, action{
		playbook: "upgrade-plan",
		use:      "plan -f CLUSTER_FILE --bundle ARCHIVE|DIR [-o table|json]",
		short:    "Say what an upgrade to the bundle would change on which host, in which order, or why it cannot",
		long: `Read every node's versions (etcd, the API server, the kubelet, the container runtime, the
bundle it runs) and the bundle's, and print what an upgrade would change on which host, in
the order it would go: an etcd snapshot, the control planes one at a time, the workers, the
add-ons. Nothing on a host changes.

Refused, with the reason and exit code 3, is what upstream forbids or what would not
survive the way: a downgrade, a control plane that would skip a minor (1.35 to 1.37), a
kubelet newer than the target or more than three minors behind, etcd 3.7 before every
member runs 3.6.11; a node not Ready, an etcd member unhealthy or not voting, a
certificate that expires within a day (renew first), too little disk for the new bundle
on a host, a PodDisruptionBudget that allows no eviction (a drain would wait for ever),
clients using an API the target no longer serves, and a cluster file that differs from
the one the cluster was set up with.`,
		example: `  make bundle K8S=1.36
  kubeforge upgrade plan -f cluster.yaml --bundle dist-k8s-1.36
  kubeforge upgrade plan -f cluster.yaml --bundle dist -o json | jq .refused`,
		flags: func(f *pflag.FlagSet) {
			f.StringVarP(&opts.Output, "output", "o", "table", "table or json")
		},
		check:    func(*ActionOptions, []string) error { return checkOutput(opts.Output) },
		bundle:   bundleRequired,
		progress: func(d *Deps) io.Writer { return d.IO.ErrOut },
		setup: func(_ context.Context, _ *Deps, run *actionRun) error {
			run.Runner.NewPhase = phases.Builder(map[string]func(*phases.Env) phases.Phase{
				"upgrade-read": hosts.phase,
			})
			return nil
		},
		after: func(ctx context.Context, _ *Deps, run *actionRun) error {
			plan := phases.PlanUpgrade(phases.GatherUpgrade(ctx, run.Env, hosts.all(), time.Now()))
			if opts.Output == "json" {
				if err := writeJSON(run.Out, plan); err != nil {
					return err
				}
			} else {
				printUpgradePlan(run.Out, run, plan)
			}
			if len(plan.Refused) > 0 {
				return &upgradeRefused{n: len(plan.Refused)}
			}
			return nil
		},
	}, runF)
}

// upgradeHosts collects what the upgrade-read step finds on each host.
type upgradeHosts struct {
	mu    sync.Mutex
	found map[string]phases.UpgradeHost
}

func (u *upgradeHosts) phase(env *phases.Env) phases.Phase {
	return phases.NewUpgradeRead(env, func(h phases.UpgradeHost) {
		u.mu.Lock()
		defer u.mu.Unlock()
		if u.found == nil {
			u.found = map[string]phases.UpgradeHost{}
		}
		u.found[h.Name] = h
	})
}

func (u *upgradeHosts) all() map[string]phases.UpgradeHost {
	u.mu.Lock()
	defer u.mu.Unlock()
	return maps.Clone(u.found)
}

// upgradeRefused is exit 3 after the plan said why.
type upgradeRefused struct{ n int }

func (e *upgradeRefused) Error() string { return fmt.Sprintf("upgrade refused: %d reasons", e.n) }
func (e *upgradeRefused) ExitCode() int { return ExitInvalid }
func (e *upgradeRefused) Silent() bool  { return true }

func printUpgradePlan(out io.Writer, run *actionRun, p *phases.UpgradePlan) {
	from := p.From
	if from == "" {
		from = "(unknown)"
	}
	fmt.Fprintf(out, "Cluster %q: Kubernetes %s, the bundle %s\n\n", run.Cluster.Metadata.Name, from, p.To)
	if len(p.Refused) > 0 {
		fmt.Fprintln(out, "The upgrade is refused; nothing was changed:")
		for _, r := range p.Refused {
			fmt.Fprintf(out, "  - %s\n", r)
		}
		fmt.Fprintln(out)
	}
	if p.Nothing() {
		fmt.Fprintf(out, "Every host already runs what the bundle has: nothing to upgrade.\n")
		return
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tCOMPONENT\tNOW\tAFTER")
	for _, c := range p.Changes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Host, c.Component, c.From, c.To)
	}
	tw.Flush()
	fmt.Fprintf(out, "\nIn this order:\n")
	fmt.Fprintf(out, "  1. an etcd snapshot to %s\n", run.Env.StateDir.Backups())
	fmt.Fprintf(out, "  2. the control planes, one at a time, each giving the VIP away first: %s\n", strings.Join(p.ControlPlanes, ", "))
	n := 3
	if len(p.Workers) > 0 {
		fmt.Fprintf(out, "  3. the workers, each drained first: %s\n", strings.Join(p.Workers, ", "))
		n++
	}
	fmt.Fprintf(out, "  %d. the add-ons (CoreDNS) once every node runs %s and holds its images\n", n, p.To)
}

// UpgradeApplyOptions are the own flags of `kubeforge upgrade apply`.
type UpgradeApplyOptions struct {
	Yes            bool
	MaxUnavailable int
	DrainTimeout   time.Duration
}

// NewCmdUpgradeApply builds `kubeforge upgrade apply`.
func NewCmdUpgradeApply(deps *Deps, runF func(*ActionOptions, []string) error) *cobra.Command {
	opts := &UpgradeApplyOptions{}
	hosts := &upgradeHosts{}
	var start time.Time
	return newActionCmd(deps, action{
		playbook: "upgrade-apply",
		use:      "apply -f CLUSTER_FILE --bundle ARCHIVE|DIR [--yes] [--max-unavailable N]",
		short:    "Move the cluster to the bundle's Kubernetes: control planes one at a time, then the workers",
		long: `Upgrade the cluster to the Kubernetes of the bundle, with what upgrade plan prints:
first the same checks (refused, exit 3, nothing changed), then
  1. an etcd snapshot to the state directory's backups/;
  2. the new bundle unpacked beside the running one on every host;
  3. the control planes one at a time: drained, the VIP moved away, etcd (the whole
     etcd cluster healthy before the next), the API server (/readyz), controller-manager,
     scheduler and keepalived; then the runtime, kubelet, kube-proxy and flanneld, the
     node Ready and uncordoned, and the VIP back;
  4. the workers, --max-unavailable at a time: drained (PodDisruptionBudgets respected,
     the pods that cannot go named), the runtime, kubelet, kube-proxy and flanneld, Ready
     and uncordoned;
  5. the add-ons (CoreDNS, RBAC) once every node runs the new version.
Interrupted or failed at any point, the same command again resumes and converges; a
failure names the host, the unit to read and what to run.`,
		example: `  kubeforge upgrade plan -f cluster.yaml --bundle dist-k8s-1.36
  kubeforge upgrade apply -f cluster.yaml --bundle dist-k8s-1.36 --yes
  kubeforge upgrade apply -f cluster.yaml --bundle dist --max-unavailable 2`,
		flags: func(f *pflag.FlagSet) {
			f.BoolVar(&opts.Yes, "yes", false, "do not ask before upgrading")
			f.IntVar(&opts.MaxUnavailable, "max-unavailable", 1, "workers drained and upgraded at once")
			f.DurationVar(&opts.DrainTimeout, "drain-timeout", phases.DefaultDrainTimeout, "how long a node's drain may take")
		},
		check: func(ao *ActionOptions, _ []string) error {
			if opts.MaxUnavailable < 1 {
				return usageError{fmt.Errorf("--max-unavailable %d: at least 1", opts.MaxUnavailable)}
			}
			if opts.DrainTimeout <= 0 {
				return usageError{fmt.Errorf("--drain-timeout %s: give a duration such as 5m", opts.DrainTimeout)}
			}
			if !opts.Yes && !ao.DryRun {
				return confirm(deps, "Upgrade the cluster to the bundle's Kubernetes? Every node is drained in its turn.")
			}
			return nil
		},
		bundle: bundleRequired,
		setup: func(_ context.Context, _ *Deps, run *actionRun) error {
			if err := setupPKIAndToken(run.Env, run.Opts.DryRun); err != nil {
				return err
			}
			start = time.Now()
			o := phases.UpgradeOptions{MaxUnavailable: opts.MaxUnavailable, DrainTimeout: opts.DrainTimeout,
				Hosts: hosts.all}
			run.Runner.NewPhase = phases.Builder(map[string]func(*phases.Env) phases.Phase{
				"upgrade-read": hosts.phase,
				"upgrade-gate": func(env *phases.Env) phases.Phase { return phases.NewUpgradeGate(env, o) },
				"snapshot-save": func(env *phases.Env) phases.Phase {
					return phases.NewSnapshotSave(env, env.StateDir.Snapshot(env.Cluster.Metadata.Name, start))
				},
				"upgrade-control-planes": func(env *phases.Env) phases.Phase { return phases.NewUpgradeNode(env, o) },
				"upgrade-workers":        func(env *phases.Env) phases.Phase { return phases.NewUpgradeNode(env, o) },
			})
			return nil
		},
		after: func(_ context.Context, _ *Deps, run *actionRun) error {
			if !run.Env.DryRun {
				fmt.Fprintf(run.Out, "\nThe cluster runs Kubernetes %s (%s). kubeforge status -f %s shows every node's versions.\n",
					run.Env.Bundle.Kubernetes(), time.Since(start).Round(100*time.Millisecond), run.File)
			}
			return nil
		},
	}, runF)
}
