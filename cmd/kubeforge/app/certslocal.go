package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/kubeforge/kubeforge/internal/cluster"
	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/internal/host"
	"github.com/kubeforge/kubeforge/internal/statedir"
	"github.com/kubeforge/kubeforge/phases"
)

// RenewLocalOptions are the flags of `certs renew-local`.
type RenewLocalOptions struct {
	Node        string
	Within      time.Duration
	ClusterFile string
}

// NewCmdCertsRenewLocal builds `certs renew-local`, what the timer runs.
func NewCmdCertsRenewLocal(deps *Deps) *cobra.Command {
	opts := &RenewLocalOptions{Within: phases.DefaultRenewWindow, ClusterFile: phases.TimerCluster}
	cmd := &cobra.Command{
		Use:   "renew-local --node NAME",
		Short: "On a control plane: renew its certificates that expire soon (what the renewal timer runs)",
		Long: `Run on a control plane by the timer 'kubeforge certs renew --install-timer' installs:
renew this host's certificates in /etc/kubernetes that expire within --within (backed up
to /etc/kubernetes/backups/<time>/ first), restart what uses them (the VIP given away
first, etcd and the API server each healthy before going on), and approve the kubelets'
pending serving requests that name only their node. A Lease in kube-system keeps the
control planes renewing one at a time.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runRenewLocal(cmd.Context(), deps, opts) },
	}
	cmd.Flags().StringVar(&opts.Node, "node", "", "this control plane's name in the cluster file")
	cmd.Flags().Var(durationFlag{&opts.Within}, "within", "renew certificates that expire within this time")
	cmd.Flags().StringVar(&opts.ClusterFile, "cluster-file", opts.ClusterFile, "the cluster, as the timer's install left it")
	return cmd
}

func runRenewLocal(ctx context.Context, deps *Deps, opts *RenewLocalOptions) error {
	if opts.Node == "" {
		return usageError{errors.New("--node is required: this control plane's name in the cluster file")}
	}
	c, _, err := config.Load(opts.ClusterFile)
	if err != nil {
		return err
	}
	self := c.Host(opts.Node)
	if self == nil || !self.Has(config.RoleControlPlane) {
		return inputError{fmt.Errorf("%s lists no control plane %q", opts.ClusterFile, opts.Node)}
	}
	self.Local = true
	h, err := host.Connect(ctx, self, envSecrets{deps: deps}, nil, deps.Log)
	if err != nil {
		return err
	}
	defer h.Close()
	// This control plane asks its own API server and etcd member, as the
	// super-admin whose files it holds.
	local := statedir.Dir(phases.KubernetesDir)
	ca, cert, key := local.Etcd()
	pool := phases.NewPool(func(context.Context, *config.Host) (*host.Host, error) { return h, nil })
	defer pool.Close()
	env := &phases.Env{Cluster: c, StateDir: local, Log: deps.Log, Out: deps.IO.Out, Connect: pool.Get}
	env.Client = pool.Client(cluster.Options{Cluster: c, Through: self, Kubeconfig: local.SuperAdminConf(), Admin: true,
		CACert: local.CACert(), EtcdCA: ca, EtcdCert: cert, EtcdKey: key, Log: deps.Log})
	release, err := env.Client.Lock(ctx, renewLockName, opts.Node, renewLockTTL, func(holder string, err error) {
		fmt.Fprintf(deps.IO.Out, "waiting for kube-system/%s (held by %s)\n", renewLockName, holder)
	})
	switch {
	case errors.Is(err, cluster.ErrUnreachable), errors.Is(err, cluster.ErrUnavailable):
		// The API does not answer (its certificates expired, say): there is
		// nobody to take turns with.
		fmt.Fprintf(deps.IO.Out, "warning: the API does not answer (%v): renewing without the lock\n", err)
	case err != nil:
		return err
	default:
		defer release()
	}
	res, err := phases.RenewLocal(ctx, env, h, opts.Within)
	out := deps.IO.Out
	for _, r := range res.Renewed {
		fmt.Fprintf(out, "renewed %s (%s)\n", r.Path, r.Reason)
	}
	for _, s := range res.Restarted {
		fmt.Fprintf(out, "restarted %s\n", s)
	}
	for _, a := range res.Approved {
		fmt.Fprintf(out, "approved the kubelet serving request %s\n", a)
	}
	for _, r := range res.Refused {
		fmt.Fprintf(out, "warning: %v\n", r)
	}
	if err != nil {
		return err
	}
	if len(res.Renewed) == 0 {
		fmt.Fprintf(out, "nothing expires within %s on %s\n", humanDuration(opts.Within), opts.Node)
	}
	return nil
}

// renewLockName is the kube-system Lease the control planes take turns
// with; a holder that died lets it go after renewLockTTL.
const (
	renewLockName = "kubeforge-certs-renew"
	renewLockTTL  = 15 * time.Minute
)
