package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"

	"github.com/kubeforge/kubeforge/certs"
	"github.com/kubeforge/kubeforge/internal/bootstraptoken"
	"github.com/kubeforge/kubeforge/internal/cluster"
	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/internal/discovery"
	"github.com/kubeforge/kubeforge/internal/host"
	"github.com/kubeforge/kubeforge/internal/joinnode"
	"github.com/kubeforge/kubeforge/internal/statedir"
	"github.com/kubeforge/kubeforge/phases"
	"github.com/kubeforge/kubeforge/playbooks"
)

// JoinOptions are join's own flags, for the machine joining itself
// (kubeadm's flags).
type JoinOptions struct {
	Endpoint       string
	Token          string
	CACertHashes   []string
	ControlPlane   bool
	CertificateKey string
	NodeName       string
	Address        string
}

// NewCmdJoin builds `kubeforge join`.
func NewCmdJoin(deps *Deps, runF func(*ActionOptions, []string) error) *cobra.Command {
	opts := &JoinOptions{}
	var ao *ActionOptions
	return newActionCmd(deps, action{
		playbook: "join",
		use:      "join (-f CLUSTER_FILE [--host NAME,...] | ENDPOINT --token TOKEN --discovery-token-ca-cert-hash sha256:HASH)",
		short:    "Add workers and control planes to a running cluster",
		long: `Add hosts to a cluster that 'kubeforge init' made, in one of two ways.

From the admin machine, over SSH: list the new hosts in the cluster file and run
'kubeforge join -f FILE --host NAME'. Without --host, every host of the file that is
not a node yet joins. Nothing else restarts: a new control plane gets its own API server
certificate and joins etcd as a learner (promoted once caught up); the other control
planes' keepalived learns its address and reloads, keeping the VIP where it is.

On the new machine itself, kubeadm-style, with the kubeforge binary and the bundle
copied there (--bundle, default: next to the binary): 'kubeforge join ENDPOINT --token
T --discovery-token-ca-cert-hash sha256:H', as printed by init or by 'kubeforge token
create --print-join-command'. The machine fetches the cluster's public cluster-info,
checks its signature with the token and pins the CA by its hash before it trusts
anything, reads the cluster's settings with the token, and joins by TLS bootstrap.
With --control-plane --certificate-key K it also fetches the CAs that 'init
--upload-certs' stored encrypted, issues its own certificates, joins etcd and runs the
control plane. A wrong token, hash or key, or a name already taken, is refused before
anything on the machine changes. Such a control plane does not hold the VIP until it is
in the cluster file: run 'kubeforge join -f FILE --host NAME' from the admin machine.

Joining again is safe: what is in place stays as it is.`,
		example: `  # Over SSH, hosts newly listed in the cluster file
  kubeforge join -f cluster.yaml --host worker4
  kubeforge join -f cluster.yaml --host cp4,worker5 --dry-run

  # On the new machine
  kubeforge join 10.0.0.100:6443 --token abcdef.0123456789abcdef \
      --discovery-token-ca-cert-hash sha256:2f8a...
  kubeforge join 10.0.0.100:6443 --token abcdef.0123456789abcdef \
      --discovery-token-ca-cert-hash sha256:2f8a... --control-plane --certificate-key 5d1c...`,
		args:      cobra.ArbitraryArgs,
		hosts:     "hosts of the cluster file to join (default: those that are not nodes yet)",
		preflight: true,
		flags: func(f *pflag.FlagSet) {
			f.StringVar(&opts.Token, "token", "", "bootstrap token (on the machine itself)")
			f.StringSliceVar(&opts.CACertHashes, "discovery-token-ca-cert-hash", nil, "sha256 of the cluster CA's public key, sha256:HEX (on the machine itself)")
			f.BoolVar(&opts.ControlPlane, "control-plane", false, "join as a control plane: etcd member, API server, controller-manager, scheduler")
			f.StringVar(&opts.CertificateKey, "certificate-key", "", "the key the CAs were uploaded with ('init --upload-certs'), with --control-plane")
			f.StringVar(&opts.NodeName, "node-name", "", "this machine's node name (default: its host name)")
			f.StringVar(&opts.Address, "address", "", "this machine's address on the cluster network (default: the one it reaches ENDPOINT from)")
		},
		check: func(a *ActionOptions, args []string) error {
			ao = a
			switch {
			case len(args) > 1:
				return usageError{fmt.Errorf("join takes at most one argument, the API server endpoint; got %q", args)}
			case len(args) == 1 && a.File != "":
				return usageError{errors.New("give either -f CLUSTER_FILE (join over SSH) or ENDPOINT (join this machine), not both")}
			case len(args) == 0 && a.File == "":
				if a.Phase != "" {
					return usageError{errors.New("no cluster file: pass -f cluster.yaml")}
				}
				return usageError{errors.New("give -f CLUSTER_FILE to join hosts over SSH, or ENDPOINT --token ... to join this machine")}
			case len(args) == 0 && (opts.Token != "" || len(opts.CACertHashes) > 0 || opts.ControlPlane):
				return usageError{errors.New("--token, --discovery-token-ca-cert-hash and --control-plane join this machine: give the ENDPOINT too")}
			case len(args) == 1 && len(a.Hosts) > 0:
				return usageError{errors.New("--host names hosts of a cluster file (join over SSH); on the machine itself use --node-name")}
			case len(args) == 1:
				opts.Endpoint = args[0]
			}
			return nil
		},
		local:  func(ctx context.Context, _ []string) error { return runJoinNode(ctx, deps, opts, ao) },
		bundle: bundleRequired,
		setup: func(ctx context.Context, _ *Deps, run *actionRun) error {
			if err := setupPKIAndToken(run.Env, run.Opts.DryRun); err != nil {
				return err
			}
			if err := phases.CheckBundleMatchesCluster(ctx, run.Env); err != nil {
				return err
			}
			if len(run.Runner.Targets) > 0 {
				return nil
			}
			targets, err := notYetNodes(ctx, run)
			if err != nil {
				return err
			}
			if len(targets) == 0 {
				return nothingToDo{"Every host of the cluster file is a node already: nothing to join (name one with --host to check it again)."}
			}
			run.Runner.Targets = targets
			return nil
		},
		after: func(ctx context.Context, deps *Deps, run *actionRun) error {
			if run.Env.DryRun || run.Runner.Only != "" {
				return nil
			}
			nodes, err := phases.NodesTable(ctx, run.Env)
			if err != nil {
				return err
			}
			fmt.Fprintf(run.Out, "\nJoined %s to cluster %q.\n\n%s", strings.Join(run.Runner.Targets, ", "), run.Cluster.Metadata.Name, nodes)
			return nil
		},
	}, runF)
}

// notYetNodes are the hosts of the cluster file that have no Node object.
func notYetNodes(ctx context.Context, run *actionRun) ([]string, error) {
	nodes, err := run.Env.Client.Nodes(ctx)
	if err != nil {
		return nil, fmt.Errorf("list the cluster's nodes: %w", err)
	}
	var missing []string
	for _, h := range run.Cluster.Spec.Hosts {
		if !slices.ContainsFunc(nodes, func(n corev1.Node) bool { return n.Name == h.Name }) {
			missing = append(missing, h.Name)
		}
	}
	return missing, nil
}

// JoinStateDir is where a machine joining on its own keeps its state
// (the cluster CA, a control plane's PKI, logs), root only.
const JoinStateDir statedir.Dir = "/var/lib/kubeforge/join"

// runJoinNode joins the machine kubeforge runs on, with a bootstrap token.
// Everything that can refuse the join is checked before the machine is
// changed in any way: the flags, the bundle, the token and CA hash against
// the cluster, the node name, the certificate key.
func runJoinNode(ctx context.Context, deps *Deps, opts *JoinOptions, ao *ActionOptions) error {
	pb, err := playbooks.Load("join-node")
	if err != nil {
		return err
	}
	if err := checkActionOptions(pb, ao); err != nil {
		return err
	}
	req, err := joinRequest(deps, opts)
	if err != nil {
		return err
	}
	var b loadedBundle
	if b.dir, b.manifest, err = loadBundle(deps.Global.Bundle); err != nil {
		return err
	}
	req.StateDir = JoinStateDir
	if deps.Global.StateDir != "" {
		req.StateDir = statedir.Dir(deps.Global.StateDir)
	}
	req.Out = deps.IO.Out
	plan, err := joinnode.Prepare(ctx, req)
	if err != nil {
		return err
	}
	c, name := plan.Cluster, plan.Self.Name

	// From here on the machine changes.
	if deps.Global.LogFile == "" && !ao.DryRun {
		if err := deps.useLogFile(defaultLogFile(req.StateDir, "join")); err != nil {
			return err
		}
	}
	// A control plane has the CAs: it is the cluster's admin, through its
	// own API server. A worker asks as the node it becomes.
	client := cluster.Options{Through: plan.Self, Kubeconfig: phases.NodeKubeconfig, Endpoint: true}
	if opts.ControlPlane {
		client = adminClient(req.StateDir)
		client.Through = plan.Self
	}
	run := newRun(deps, c, req.StateDir, b, ao, func(ctx context.Context, spec *config.Host) (*host.Host, error) {
		return host.Connect(ctx, spec, envSecrets{deps: deps}, nil, deps.Log)
	}, client)
	defer run.Pool.Close()
	run.Env.Token = req.Token
	if run.Env.PKI, err = certs.SpecFromCluster(c); err != nil {
		return err
	}
	run.Runner.Targets = []string{name}
	run.Runner.AdminLabel = "this machine"
	run.Runner.NewPhase = phases.Builder(map[string]func(*phases.Env) phases.Phase{
		"certs": func(env *phases.Env) phases.Phase { return phases.NewNodeCerts(env, name, plan.CAPEM, plan.Shared) },
	})
	a := action{after: func(ctx context.Context, deps *Deps, run *actionRun) error {
		if ao.DryRun || ao.Phase != "" {
			return nil
		}
		role := "worker"
		if opts.ControlPlane {
			role = "control plane"
		}
		fmt.Fprintf(deps.IO.Out, "\nThis machine joined cluster %q as %s, a %s.\n", c.Metadata.Name, name, role)
		if opts.ControlPlane && c.Spec.ControlPlane.VIP != "" {
			fmt.Fprintf(deps.IO.Out, "Its API server answers at %s. To let it hold the VIP %s too, add it to the cluster file\n"+
				"(name %s, address %s, roles [control-plane]) and run on the admin machine:\n  kubeforge join -f <cluster file> --host %s\n",
				c.LocalAPIServerURL(plan.Self), c.Spec.ControlPlane.VIP, name, plan.Self.Address, name)
		}
		if !run.Env.Client.Admin() {
			fmt.Fprint(deps.IO.Out, servingApprovalNote(name, plan.Self.Address))
		}
		return nil
	}}
	return play(ctx, deps, a, pb, run)
}

// servingApprovalNote tells a node that joined with only a token that its
// kubelet's serving certificate waits for an admin: it has no right to
// approve its own, and the API servers reach only kubelets whose
// certificate the cluster CA signed (--kubelet-certificate-authority).
func servingApprovalNote(name, address string) string {
	return fmt.Sprintf(`
Its kubelet asked for a serving certificate from the cluster CA, which waits for an admin's approval:
until then the API server cannot reach this kubelet (kubectl logs, exec, port-forward; the node runs
pods and is Ready all the same). On the admin machine, either add this machine to the cluster file
(name %[1]s, address %[2]s, roles [worker]) and run
  kubeforge join -f <cluster file> --host %[1]s
which approves the request once it names only %[1]s and its addresses ('kubeforge certs renew ... -f'
then approves the ones its kubelet makes later, as it does for every node of the file), or check and
approve it yourself:
  kubectl get csr --field-selector spec.signerName=kubernetes.io/kubelet-serving
  kubectl certificate approve <name>
`, name, address)
}

// joinRequest checks join's own flags and turns them into a request.
func joinRequest(deps *Deps, opts *JoinOptions) (joinnode.Request, error) {
	tok, err := bootstraptoken.Parse(opts.Token)
	if err != nil {
		return joinnode.Request{}, usageError{fmt.Errorf("--token: %w", err)}
	}
	deps.redact.add(tok.String())
	if len(opts.CACertHashes) == 0 {
		return joinnode.Request{}, usageError{errors.New("--discovery-token-ca-cert-hash is required: it is how this machine knows it talks to your cluster (init and 'kubeforge token create --print-join-command' print it)")}
	}
	req := joinnode.Request{Endpoint: opts.Endpoint, Token: tok, ControlPlane: opts.ControlPlane, NodeName: opts.NodeName, Address: opts.Address}
	for _, h := range opts.CACertHashes {
		canon, err := bootstraptoken.ParseCAHash(h)
		if err != nil {
			return req, usageError{fmt.Errorf("--discovery-token-ca-cert-hash: %w", err)}
		}
		req.CACertHashes = append(req.CACertHashes, canon)
	}
	switch {
	case opts.ControlPlane && opts.CertificateKey == "":
		return req, usageError{errors.New("--control-plane needs --certificate-key: the key 'kubeforge init --upload-certs' (or 'init phase upload-certs') printed")}
	case opts.ControlPlane:
		if req.CertificateKey, err = certs.ParseCertificateKey(opts.CertificateKey); err != nil {
			return req, usageError{fmt.Errorf("--certificate-key: %w", err)}
		}
		deps.redact.add(opts.CertificateKey)
	case opts.CertificateKey != "":
		return req, usageError{errors.New("--certificate-key is for a control plane: add --control-plane")}
	}
	if _, _, err := discovery.ParseEndpoint(opts.Endpoint); err != nil {
		return req, usageError{err}
	}
	return req, nil
}
