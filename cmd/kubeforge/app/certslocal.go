package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubeforge/kubeforge/certs"
	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/internal/host"
	"github.com/kubeforge/kubeforge/phases"
	"github.com/kubeforge/kubeforge/playbooks"
)

// runRenewTimer installs or removes the renewal timer on every control
// plane (`certs renew --install-timer|--remove-timer -f FILE`).
func runRenewTimer(ctx context.Context, deps *Deps, opts *CertsRenewOptions) error {
	binary := ""
	if opts.InstallTimer {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find this kubeforge binary to install it: %w", err)
		}
		binary = exe
	}
	pb, err := playbooks.Load("renew-timer")
	if err != nil {
		return err
	}
	a := action{
		playbook: "renew-timer",
		setup: func(_ context.Context, _ *Deps, run *actionRun, _ *ActionOptions) error {
			run.Runner.NewPhase = phases.Builder(map[string]func(*phases.Env) phases.Phase{
				"renew-timer": func(env *phases.Env) phases.Phase { return phases.NewRenewTimer(env, binary) },
			})
			return nil
		},
		after: func(_ context.Context, deps *Deps, run *actionRun) error {
			if run.Env.DryRun {
				return nil
			}
			if binary == "" {
				fmt.Fprintln(deps.IO.Out, "\nThe renewal timer is gone from every control plane.")
				return nil
			}
			fmt.Fprintf(deps.IO.Out, "\nEvery control plane now checks its certificates daily (systemctl list-timers %s.timer) and renews\n"+
				"them when less than %s remain, one control plane at a time; journalctl -u %s says what it did.\n"+
				"Each control plane now holds the etcd and front-proxy CA keys, as kubeadm's do.\n",
				phases.TimerUnit, humanDuration(phases.DefaultRenewWindow), phases.TimerUnit)
			return nil
		},
	}
	return runAction(ctx, deps, a, pb, &ActionOptions{File: opts.File, DryRun: opts.DryRun, Concurrency: opts.Concurrency})
}

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
	env := &phases.Env{Cluster: c, Log: deps.Log, Out: deps.IO.Out}
	release, err := renewLock(ctx, deps, opts.Node)
	if err != nil {
		return err
	}
	defer release()
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

// renewLock takes the Lease, waiting for another control plane's renewal
// to finish. When the API cannot be reached (its certificates expired, say)
// there is nobody to coordinate with: it goes on without the lock.
func renewLock(ctx context.Context, deps *Deps, node string) (func(), error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", phases.KubernetesDir+"/"+certs.SuperAdminConf)
	if err != nil {
		return func() {}, err
	}
	cfg.Timeout = 10 * time.Second
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return func() {}, err
	}
	leases := client.CoordinationV1().Leases(metav1.NamespaceSystem)
	ttl := int32(renewLockTTL / time.Second)
	deadline := time.Now().Add(renewLockTTL + time.Minute)
	for {
		now := metav1.NewMicroTime(time.Now())
		l, err := leases.Get(ctx, renewLockName, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			_, err = leases.Create(ctx, &coordinationv1.Lease{
				ObjectMeta: metav1.ObjectMeta{Name: renewLockName},
				Spec:       coordinationv1.LeaseSpec{HolderIdentity: &node, LeaseDurationSeconds: &ttl, AcquireTime: &now, RenewTime: &now},
			}, metav1.CreateOptions{})
		case err != nil:
			fmt.Fprintf(deps.IO.Out, "warning: the API does not answer (%v): renewing without the lock\n", err)
			return func() {}, nil
		case l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == "" || *l.Spec.HolderIdentity == node ||
			l.Spec.RenewTime == nil || time.Since(l.Spec.RenewTime.Time) > renewLockTTL:
			l.Spec.HolderIdentity, l.Spec.LeaseDurationSeconds, l.Spec.AcquireTime, l.Spec.RenewTime = &node, &ttl, &now, &now
			_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
		default:
			err = fmt.Errorf("held by %s", *l.Spec.HolderIdentity)
		}
		if err == nil {
			return func() {
				if l, err := leases.Get(context.WithoutCancel(ctx), renewLockName, metav1.GetOptions{}); err == nil && l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity == node {
					empty := ""
					l.Spec.HolderIdentity = &empty
					_, _ = leases.Update(context.WithoutCancel(ctx), l, metav1.UpdateOptions{})
				}
			}, nil
		}
		if time.Now().After(deadline) {
			return func() {}, fmt.Errorf("another control plane's renewal holds kube-system/%s: %w", renewLockName, err)
		}
		fmt.Fprintf(deps.IO.Out, "waiting for kube-system/%s (%v)\n", renewLockName, err)
		select {
		case <-ctx.Done():
			return func() {}, ctx.Err()
		case <-time.After(10 * time.Second):
		}
	}
}
