package app

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/kubeforge/kubeforge/certs"
	"github.com/kubeforge/kubeforge/phases"
)

// NewCmdInit builds `kubeforge init`.
func NewCmdInit(deps *Deps, runF func(*ActionOptions) error) *cobra.Command {
	return newActionCmd(deps, action{
		playbook: "init",
		use:      "init -f CLUSTER_FILE",
		short:    "Bring up a Kubernetes cluster on the hosts of the cluster file",
		long: `Bring up a cluster on the hosts of the cluster file, from the bundle, without any
registry: preflight checks, the PKI (in the state directory), containerd and the
offline images, etcd, the control plane, the bootstrap token and RBAC, kubelet (TLS
bootstrap), kube-proxy, flannel and CoreDNS, each a systemd service.

Running init again is safe and quick: each phase compares the hosts with what they
should be and changes only the difference (a missing or changed file, a stopped
service), restarting only the services whose inputs changed. --dry-run prints
those differences and changes nothing. New hosts in the cluster file join.`,
		example: `  kubeforge init -f cluster.yaml
  kubeforge init -f cluster.yaml --dry-run
  kubeforge init -f cluster.yaml --skip-phases addons
  kubeforge init phase preflight -f cluster.yaml
  kubeforge init -f cluster.yaml --ignore-preflight-errors Swap`,
		needsBundle:   true,
		preflightFlag: true,
		setup:         setupInit,
	}, runF)
}

// setupInit adds to the phases' environment what init needs: the PKI spec
// and the bootstrap token.
func setupInit(_ context.Context, _ *Deps, env *phases.Env, opts *ActionOptions, _ *phases.Pool) error {
	spec, err := certs.SpecFromCluster(env.Cluster)
	if err != nil {
		return err
	}
	env.PKI = spec
	now := time.Now()
	if opts.DryRun {
		// Do not write a new token on a dry run; show one that would do.
		env.Token, err = phases.PeekToken(env.StateDir, now)
		return err
	}
	env.Token, err = phases.LoadOrCreateToken(env.StateDir, now)
	return err
}
