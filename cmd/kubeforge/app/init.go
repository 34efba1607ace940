package app

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kubeforge/kubeforge/certs"
	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/phases"
)

// InitOptions are init's own flags.
type InitOptions struct {
	// UploadCerts stores the CAs, encrypted, in the cluster for control
	// planes that join on their own.
	UploadCerts    bool
	CertificateKey string
}

// NewCmdInit builds `kubeforge init`.
func NewCmdInit(deps *Deps, runF func(*ActionOptions, []string) error) *cobra.Command {
	io := &InitOptions{}
	return newActionCmd(deps, action{
		playbook: "init",
		use:      "init -f CLUSTER_FILE",
		short:    "Bring up a Kubernetes cluster on the hosts of the cluster file",
		long: `Bring up a cluster on the hosts of the cluster file, from the bundle, without any
registry: preflight checks, the PKI (in the state directory), containerd and the
offline images, etcd, the control plane, the keepalived VIP, the bootstrap token and
RBAC, kubelet (TLS bootstrap), kube-proxy, flannel and CoreDNS, each a systemd service.

With several control planes, the first starts etcd and the others join it one at a
time (as etcd learners, promoted once caught up); each control plane is ready before
the next one starts or restarts; then every worker joins in parallel.

Running init again is safe and quick: each phase compares the hosts with what they
should be and changes only the difference (a missing or changed file, a stopped
service), restarting only the services whose inputs changed. --dry-run prints
those differences and changes nothing. New hosts in the cluster file join.

--upload-certs stores the CAs in the cluster for two hours, encrypted under a
certificate key that init prints, so a control plane can join on its own with
'kubeforge join ENDPOINT ... --control-plane --certificate-key KEY'.`,
		example: `  kubeforge init -f cluster.yaml
  kubeforge init -f cluster.yaml --dry-run
  kubeforge init -f cluster.yaml --skip-phases addons
  kubeforge init -f cluster.yaml --upload-certs
  kubeforge init phase preflight -f cluster.yaml
  kubeforge init phase upload-certs -f cluster.yaml
  kubeforge init -f cluster.yaml --ignore-preflight-errors Swap`,
		bundle:    bundleRequired,
		preflight: true,
		flags: func(f *pflag.FlagSet) {
			f.BoolVar(&io.UploadCerts, "upload-certs", false, "store the CAs, encrypted, in the cluster for control planes joining on their own (2 hours)")
			f.StringVar(&io.CertificateKey, "certificate-key", "", "the key to encrypt them with, 64 hex digits (default: a new one, printed)")
		},
		setup: func(ctx context.Context, deps *Deps, run *actionRun) error {
			return setupInit(ctx, deps, run, io)
		},
		after: func(ctx context.Context, deps *Deps, run *actionRun) error {
			return reportInit(ctx, deps, run, io)
		},
	}, runF)
}

// setupInit adds to the run what init needs: the PKI spec, the bootstrap
// token, and the certificate key for --upload-certs.
func setupInit(_ context.Context, deps *Deps, run *actionRun, io *InitOptions) error {
	opts := run.Opts
	if err := setupPKIAndToken(run.Env, opts.DryRun); err != nil {
		return err
	}
	c := run.Cluster
	if n := len(c.HostsWith(config.RoleControlPlane)); n > 1 && c.Spec.ControlPlane.VIP == "" {
		fmt.Fprintf(deps.IO.ErrOut, "Warning: %d control planes but no spec.controlPlane.vip: clients use %s, a single point of failure; "+
			"set a free address of the control planes' network as the VIP (or an endpoint behind your own load balancer)\n",
			n, c.Spec.ControlPlane.Endpoint)
	}
	if io.CertificateKey != "" || opts.Phase == "upload-certs" {
		io.UploadCerts = true
	}
	if !io.UploadCerts {
		return nil
	}
	if io.CertificateKey == "" {
		k, err := certs.NewCertificateKey()
		if err != nil {
			return err
		}
		io.CertificateKey = k
	}
	key, err := certs.ParseCertificateKey(io.CertificateKey)
	if err != nil {
		return usageError{fmt.Errorf("--certificate-key: %w", err)}
	}
	deps.redact.add(io.CertificateKey)
	run.Runner.NewPhase = phases.Builder(map[string]func(*phases.Env) phases.Phase{
		"upload-certs": func(env *phases.Env) phases.Phase { return phases.NewUploadCerts(env, key) },
	})
	return nil
}

// setupPKIAndToken: every action that issues certificates and joins
// nodes needs the PKI spec and the cluster's bootstrap token.
func setupPKIAndToken(env *phases.Env, dryRun bool) error {
	spec, err := certs.SpecFromCluster(env.Cluster)
	if err != nil {
		return err
	}
	env.PKI = spec
	now := time.Now()
	if dryRun {
		// Do not write a new token on a dry run; show one that would do.
		env.Token, err = phases.PeekToken(env.StateDir, now)
		return err
	}
	env.Token, err = phases.LoadOrCreateToken(env.StateDir, now)
	return err
}

// reportInit tells the user how to use the cluster and add nodes.
func reportInit(ctx context.Context, deps *Deps, run *actionRun, io *InitOptions) error {
	if run.Env.DryRun || run.Runner.Only != "" && run.Runner.Only != "upload-certs" {
		return nil
	}
	env := run.Env
	caPEM, err := env.StateDir.ReadCA()
	if err != nil {
		return err
	}
	hash, err := phases.CACertHash(caPEM)
	if err != nil {
		return err
	}
	endpoint := run.Cluster.Spec.ControlPlane.Endpoint
	join := fmt.Sprintf("kubeforge join %s --token %s --discovery-token-ca-cert-hash %s", endpoint, env.Token, hash)
	out := deps.IO.Out
	if run.Runner.Only == "upload-certs" {
		fmt.Fprintf(out, "\nThe CAs are in the cluster, encrypted, until %s. Certificate key:\n%s\n\nA control plane joins with:\n  %s --control-plane --certificate-key %s\n",
			time.Now().Add(phases.CertsTTL).Format("2006-01-02 15:04 MST"), io.CertificateKey, join, io.CertificateKey)
		return nil
	}
	nodes, err := phases.NodesTable(ctx, env)
	if err != nil {
		return err
	}
	admin := env.StateDir.AdminConf()
	file := run.File
	fmt.Fprintf(out, `
Your Kubernetes cluster %q is up.

%s
Use it with the bundled kubectl, or any kubectl v1.34-1.36:
  kubeforge kubectl -f %s -- get pods -A
  export KUBECONFIG=%s

To add a host over SSH, list it in the cluster file and run:
  kubeforge join -f %s --host NAME

Or, on the new machine itself, with kubeforge and the bundle copied next to it
(the token is valid until %s; 'kubeforge token create --print-join-command' makes another):
  %s
`, run.Cluster.Metadata.Name, strings.TrimRight(nodes, "\n")+"\n", file, admin, file,
		env.Token.Expires.Format("2006-01-02 15:04 MST"), join)
	if io.UploadCerts {
		fmt.Fprintf(out, `
A control plane can join on its own until %s (the CAs are stored encrypted in the
cluster under this certificate key; 'kubeforge init phase upload-certs' stores them again):
  %s --control-plane --certificate-key %s
`, time.Now().Add(phases.CertsTTL).Format("2006-01-02 15:04 MST"), join, io.CertificateKey)
	}
	return nil
}
