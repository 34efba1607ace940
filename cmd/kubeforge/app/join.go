package app

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubeforge/kubeforge/certs"
	"github.com/kubeforge/kubeforge/internal/bootstraptoken"
	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/internal/discovery"
	"github.com/kubeforge/kubeforge/internal/host"
	"github.com/kubeforge/kubeforge/phases"
	"github.com/kubeforge/kubeforge/playbooks"
)

// JoinOptions are join's flags, for both ways of joining.
type JoinOptions struct {
	ActionOptions
	// Hosts to join over SSH (--host); none: every host of the cluster
	// file that is not a node yet.
	Hosts []string

	// On the machine itself, kubeadm's flags.
	Endpoint       string
	Token          string
	CACertHashes   []string
	ControlPlane   bool
	CertificateKey string
	NodeName       string
	Address        string
}

// NewCmdJoin builds `kubeforge join`.
func NewCmdJoin(deps *Deps, runF func(*JoinOptions) error) *cobra.Command {
	opts := &JoinOptions{}
	pb, err := playbooks.Load("join")
	if err != nil {
		panic(err)
	}
	run := func(cmd *cobra.Command, args []string) error {
		if len(args) == 1 {
			opts.Endpoint = args[0]
		}
		if runF != nil {
			return runF(opts)
		}
		if opts.Endpoint != "" {
			return runJoinNode(cmd.Context(), deps, opts)
		}
		return runJoinSSH(cmd.Context(), deps, pb, opts)
	}
	cmd := &cobra.Command{
		Use:   "join (-f CLUSTER_FILE [--host NAME,...] | ENDPOINT --token TOKEN --discovery-token-ca-cert-hash sha256:HASH)",
		Short: "Add workers and control planes to a running cluster",
		Long: `Add hosts to a cluster that 'kubeforge init' made, in one of two ways.

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

Joining again is safe: what is in place stays as it is.

Phases (over SSH): ` + strings.Join(pb.Phases(), ", ") + ".",
		Example: `  # Over SSH, hosts newly listed in the cluster file
  kubeforge join -f cluster.yaml --host worker4
  kubeforge join -f cluster.yaml --host cp4,worker5 --dry-run

  # On the new machine
  kubeforge join 10.0.0.100:6443 --token abcdef.0123456789abcdef \
      --discovery-token-ca-cert-hash sha256:2f8a...
  kubeforge join 10.0.0.100:6443 --token abcdef.0123456789abcdef \
      --discovery-token-ca-cert-hash sha256:2f8a... --control-plane --certificate-key 5d1c...`,
		Args: func(cmd *cobra.Command, args []string) error {
			switch {
			case len(args) > 1:
				return usageError{fmt.Errorf("join takes at most one argument, the API server endpoint; got %q", args)}
			case len(args) == 1 && opts.File != "":
				return usageError{errors.New("give either -f CLUSTER_FILE (join over SSH) or ENDPOINT (join this machine), not both")}
			case len(args) == 0 && opts.File == "":
				return usageError{errors.New("give -f CLUSTER_FILE to join hosts over SSH, or ENDPOINT --token ... to join this machine")}
			case len(args) == 0 && (opts.Token != "" || len(opts.CACertHashes) > 0 || opts.ControlPlane):
				return usageError{errors.New("--token, --discovery-token-ca-cert-hash and --control-plane join this machine: give the ENDPOINT too")}
			case len(args) == 1 && len(opts.Hosts) > 0:
				return usageError{errors.New("--host names hosts of a cluster file (join over SSH); on the machine itself use --node-name")}
			}
			return nil
		},
		RunE: run,
	}
	addActionFlags(cmd, &opts.ActionOptions, true)
	f := cmd.Flags()
	f.StringSliceVar(&opts.IgnorePreflight, "ignore-preflight-errors", nil,
		"preflight checks whose failure is only a warning, e.g. Swap,Port-6443 (all: every check)")
	f.StringSliceVar(&opts.Hosts, "host", nil, "hosts of the cluster file to join (default: those that are not nodes yet)")
	f.StringVar(&opts.Token, "token", "", "bootstrap token (on the machine itself)")
	f.StringSliceVar(&opts.CACertHashes, "discovery-token-ca-cert-hash", nil, "sha256 of the cluster CA's public key, sha256:HEX (on the machine itself)")
	f.BoolVar(&opts.ControlPlane, "control-plane", false, "join as a control plane: etcd member, API server, controller-manager, scheduler")
	f.StringVar(&opts.CertificateKey, "certificate-key", "", "the key the CAs were uploaded with ('init --upload-certs'), with --control-plane")
	f.StringVar(&opts.NodeName, "node-name", "", "this machine's node name (default: its host name)")
	f.StringVar(&opts.Address, "address", "", "this machine's address on the cluster network (default: the one it reaches ENDPOINT from)")
	cmd.AddCommand(phaseCommands(pb, func(sub *cobra.Command, name string) {
		addActionFlags(sub, &opts.ActionOptions, false)
		sub.Flags().StringSliceVar(&opts.Hosts, "host", nil, "hosts of the cluster file to join")
		sub.RunE = func(cmd *cobra.Command, _ []string) error {
			opts.Phase = name
			if opts.File == "" {
				return usageError{errors.New("no cluster file: pass -f cluster.yaml")}
			}
			return run(cmd, nil)
		}
	}))
	return cmd
}

// runJoinSSH joins hosts of the cluster file over SSH.
func runJoinSSH(ctx context.Context, deps *Deps, pb *playbooks.Playbook, opts *JoinOptions) error {
	a := action{
		playbook:    "join",
		needsBundle: true,
		setup: func(ctx context.Context, deps *Deps, run *actionRun, ao *ActionOptions) error {
			for _, n := range opts.Hosts {
				if run.Cluster.Host(n) == nil {
					var names []string
					for _, h := range run.Cluster.Spec.Hosts {
						names = append(names, h.Name)
					}
					return usageError{fmt.Errorf("--host %s: the cluster file has no such host (it has %s): add it to the file first", n, strings.Join(names, ", "))}
				}
			}
			if err := setupPKIAndToken(run.Env, ao.DryRun); err != nil {
				return err
			}
			targets := opts.Hosts
			if len(targets) == 0 {
				var err error
				if targets, err = notYetNodes(ctx, run); err != nil {
					return err
				}
				if len(targets) == 0 {
					return errNothingToJoin
				}
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
			fmt.Fprintf(deps.IO.Out, "\nJoined %s to cluster %q.\n\n%s", strings.Join(run.Runner.Targets, ", "), run.Cluster.Metadata.Name, nodes)
			return nil
		},
	}
	err := runAction(ctx, deps, a, pb, &opts.ActionOptions)
	if errors.Is(err, errNothingToJoin) {
		fmt.Fprintln(deps.IO.Out, "Every host of the cluster file is a node already: nothing to join (name one with --host to check it again).")
		return nil
	}
	return err
}

var errNothingToJoin = errors.New("nothing to join")

// notYetNodes are the hosts of the cluster file that have no Node object.
func notYetNodes(ctx context.Context, run *actionRun) ([]string, error) {
	ctl, err := run.Env.ControlHost(ctx)
	if err != nil {
		return nil, err
	}
	out, err := ctl.Run(ctx, phases.KubectlLocal(run.Cluster.Spec.ControlPlane.Port, "get nodes -o jsonpath={.items[*].metadata.name}"))
	if err != nil {
		return nil, fmt.Errorf("list the cluster's nodes: %w", err)
	}
	have := strings.Fields(out)
	var missing []string
	for _, h := range run.Cluster.Spec.Hosts {
		if !slices.Contains(have, h.Name) {
			missing = append(missing, h.Name)
		}
	}
	return missing, nil
}

// JoinStateDir is where a machine joining on its own keeps its state
// (the cluster CA, a control plane's PKI, logs), root only.
const JoinStateDir = "/var/lib/kubeforge/join"

// runJoinNode joins the machine kubeforge runs on, with a bootstrap token.
// Everything that can refuse the join is checked before the machine is
// changed in any way: the flags, the bundle, the token and CA hash against
// the cluster, the node name, the certificate key.
func runJoinNode(ctx context.Context, deps *Deps, opts *JoinOptions) error {
	pb, err := playbooks.Load("join-node")
	if err != nil {
		return err
	}
	if err := checkActionOptions(pb, &opts.ActionOptions); err != nil {
		return err
	}
	tok, err := bootstraptoken.Parse(opts.Token)
	if err != nil {
		return usageError{fmt.Errorf("--token: %w", err)}
	}
	deps.redact.add(tok.String())
	if len(opts.CACertHashes) == 0 {
		return usageError{errors.New("--discovery-token-ca-cert-hash is required: it is how this machine knows it talks to your cluster (init and 'kubeforge token create --print-join-command' print it)")}
	}
	var hashes []string
	for _, h := range opts.CACertHashes {
		canon, err := bootstraptoken.ParseCAHash(h)
		if err != nil {
			return usageError{fmt.Errorf("--discovery-token-ca-cert-hash: %w", err)}
		}
		hashes = append(hashes, canon)
	}
	var certKey []byte
	switch {
	case opts.ControlPlane && opts.CertificateKey == "":
		return usageError{errors.New("--control-plane needs --certificate-key: the key 'kubeforge init --upload-certs' (or 'init phase upload-certs') printed")}
	case opts.ControlPlane:
		if certKey, err = certs.ParseCertificateKey(opts.CertificateKey); err != nil {
			return usageError{fmt.Errorf("--certificate-key: %w", err)}
		}
		deps.redact.add(opts.CertificateKey)
	case opts.CertificateKey != "":
		return usageError{errors.New("--certificate-key is for a control plane: add --control-plane")}
	}
	name := opts.NodeName
	if name == "" {
		hn, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("this machine's host name: %w: pass --node-name", err)
		}
		name = strings.ToLower(strings.SplitN(hn, ".", 2)[0])
	}
	if _, _, err := discovery.ParseEndpoint(opts.Endpoint); err != nil {
		return usageError{err}
	}
	bundleDir, manifest, err := loadBundle(deps.Global.Bundle)
	if err != nil {
		return err
	}

	// The cluster, as the token shows it.
	res, err := discover(ctx, deps, opts.Endpoint, tok, hashes)
	if err != nil {
		return err
	}
	client, err := tokenClient(opts.Endpoint, tok, res.CAPEM)
	if err != nil {
		return err
	}
	c, err := publishedCluster(ctx, client, tok)
	if err != nil {
		return err
	}
	addr, err := joinAddress(opts.Address, opts.Endpoint)
	if err != nil {
		return err
	}
	rerun, err := checkNodeName(ctx, client, c, name, addr, res.CAPEM)
	if err != nil {
		return err
	}
	state := JoinStateDir
	if deps.Global.StateDir != "" {
		state = deps.Global.StateDir
	}
	var shared map[string][]byte
	if opts.ControlPlane && !(rerun && hasLocalCAs(state)) {
		if shared, err = fetchSharedCerts(ctx, client, certKey, res.CAPEM); err != nil {
			return err
		}
	}
	self := config.Host{Name: name, Address: addr.String(), Roles: []config.Role{config.RoleWorker}, Local: true}
	if opts.ControlPlane {
		self.Roles = []config.Role{config.RoleControlPlane}
		if stackedEtcd(c) {
			self.Roles = append(self.Roles, config.RoleEtcd)
		}
	}
	if i := slices.IndexFunc(c.Spec.Hosts, func(h config.Host) bool { return h.Name == name }); i >= 0 {
		c.Spec.Hosts[i] = self // listed in the cluster file too: this machine is that host
	} else {
		c.Spec.Hosts = append(c.Spec.Hosts, self)
	}
	if _, err := config.Check("the cluster with this machine", c); err != nil {
		return err
	}

	// From here on the machine changes.
	if deps.Global.LogFile == "" && !opts.DryRun {
		if err := deps.useLogFile(defaultLogFile(state, "join")); err != nil {
			return err
		}
	}
	env := &phases.Env{Cluster: c, StateDir: state, BundleDir: bundleDir, Bundle: manifest, Log: deps.Log, Out: deps.IO.Out,
		DryRun: opts.DryRun, IgnorePreflight: opts.IgnorePreflight, Token: tok}
	if env.PKI, err = certs.SpecFromCluster(c); err != nil {
		return err
	}
	pool := phases.NewPool(func(ctx context.Context, spec *config.Host) (*host.Host, error) {
		return host.Connect(ctx, spec, envSecrets{deps: deps}, nil, deps.Log)
	})
	defer pool.Close()
	if opts.ControlPlane {
		// A control plane has the CAs: it is the cluster's admin, through
		// its own API server.
		env.ControlHost = func(ctx context.Context) (*host.Host, error) { return pool.Get(ctx, c.Host(name)) }
	}
	runner := newRunner(deps, env, pool, &opts.ActionOptions)
	runner.Targets = []string{name}
	runner.AdminLabel = "this machine"
	runner.NewPhase = phases.Builder(map[string]func(*phases.Env) phases.Phase{
		"certs": func(env *phases.Env) phases.Phase { return phases.NewNodeCerts(env, name, res.CAPEM, shared) },
	})
	run := &actionRun{Cluster: c, Pool: pool, Env: env, Runner: runner}
	a := action{after: func(ctx context.Context, deps *Deps, run *actionRun) error {
		if opts.DryRun || opts.Phase != "" {
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
				c.LocalAPIServerURL(c.Host(name)), c.Spec.ControlPlane.VIP, name, addr, name)
		}
		return nil
	}}
	return play(ctx, deps, a, pb, run)
}

// discover is discovery.Discover, waiting a little for a token created
// moments ago: the cluster signs cluster-info with it within seconds.
func discover(ctx context.Context, deps *Deps, endpoint string, tok bootstraptoken.Token, hashes []string) (*discovery.Result, error) {
	deadline := time.Now().Add(15 * time.Second)
	for {
		res, err := discovery.Discover(ctx, discovery.Request{Endpoint: endpoint, Token: tok, CACertHashes: hashes})
		var de *discovery.Error
		if err == nil || !errors.As(err, &de) || de.Reason != discovery.UnknownToken || time.Now().After(deadline) {
			if err == nil {
				fmt.Fprintf(deps.IO.Out, "join: the cluster at %s presents the CA %s; it publishes %s\n", endpoint, res.CAHash, res.Server)
			}
			return res, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// tokenClient talks to the cluster as the bootstrap token, trusting only
// the pinned CA.
func tokenClient(endpoint string, tok bootstraptoken.Token, caPEM []byte) (kubernetes.Interface, error) {
	return kubernetes.NewForConfig(&rest.Config{
		Host:            "https://" + endpoint,
		BearerToken:     tok.String(),
		TLSClientConfig: rest.TLSClientConfig{CAData: caPEM},
		Timeout:         15 * time.Second,
		UserAgent:       "kubeforge-join",
	})
}

// refusedToken explains a 401: the token is not (or no longer) valid.
func refusedToken(tok bootstraptoken.Token, err error) error {
	return inputError{fmt.Errorf("the cluster refused token %q (%v): it expired or was deleted; create a new one with 'kubeforge token create --print-join-command' on the admin machine", tok.ID, err)}
}

// publishedCluster reads the cluster's description (kube-system/
// kubeforge-config) with the token.
func publishedCluster(ctx context.Context, client kubernetes.Interface, tok bootstraptoken.Token) (*config.Cluster, error) {
	cm, err := client.CoreV1().ConfigMaps("kube-system").Get(ctx, phases.ConfigMapName, metav1.GetOptions{})
	switch {
	case apierrors.IsUnauthorized(err):
		return nil, refusedToken(tok, err)
	case apierrors.IsNotFound(err), apierrors.IsForbidden(err):
		return nil, fmt.Errorf("the cluster has no readable kube-system/%s (%v): it was set up by another tool or an older kubeforge; run 'kubeforge init -f FILE' on the admin machine to publish it", phases.ConfigMapName, err)
	case err != nil:
		return nil, fmt.Errorf("read kube-system/%s: %w", phases.ConfigMapName, err)
	}
	c, _, err := config.Parse("kube-system/"+phases.ConfigMapName, []byte(cm.Data["cluster.yaml"]))
	return c, err
}

// joinAddress is --address, else the address this machine reaches the
// endpoint from (a UDP "connection" sends nothing).
func joinAddress(flag, endpoint string) (netip.Addr, error) {
	if flag != "" {
		a, err := netip.ParseAddr(flag)
		if err != nil {
			return a, usageError{fmt.Errorf("--address %q: not an IP address", flag)}
		}
		return a, nil
	}
	conn, err := net.Dial("udp", endpoint)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("find this machine's address toward %s: %w: pass --address", endpoint, err)
	}
	defer conn.Close()
	ua, ok := conn.LocalAddr().(*net.UDPAddr)
	if !ok {
		return netip.Addr{}, fmt.Errorf("find this machine's address toward %s: pass --address", endpoint)
	}
	a, _ := netip.AddrFromSlice(ua.IP)
	return a.Unmap(), nil
}

var nodeName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

func validNodeName(s string) bool { return len(s) <= 63 && nodeName.MatchString(s) }

// localNodeName is the node this machine already is in the cluster whose
// CA is caPEM: the kubelet's client certificate, if it chains to that CA.
func localNodeName(caPEM []byte) string {
	cfg, err := clientcmd.LoadFromFile(phases.KubeletKubeconfig)
	if err != nil {
		return ""
	}
	for _, ai := range cfg.AuthInfos {
		data := ai.ClientCertificateData
		if ai.ClientCertificate != "" {
			if data, err = os.ReadFile(ai.ClientCertificate); err != nil {
				return ""
			}
		}
		block, _ := pem.Decode(data)
		if block == nil {
			return ""
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return ""
		}
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(caPEM)
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			return ""
		}
		return strings.TrimPrefix(cert.Subject.CommonName, certs.NodeCNPrefix)
	}
	return ""
}

// hasLocalCAs: a control plane joined before keeps the CAs in its state
// directory; a second join needs no certificate key.
func hasLocalCAs(state string) bool {
	_, err := os.Stat(filepath.Join(state, "pki", "ca.key"))
	return err == nil
}

// checkNodeName refuses a name or address another node has. It reports
// rerun when this machine is that node already (a second join).
func checkNodeName(ctx context.Context, client kubernetes.Interface, c *config.Cluster, name string, addr netip.Addr, caPEM []byte) (bool, error) {
	if !validNodeName(name) {
		return false, usageError{fmt.Errorf("node name %q is not a lowercase DNS label (a-z, 0-9, '-'): pass --node-name", name)}
	}
	mine := localNodeName(caPEM)
	for _, h := range c.Spec.Hosts {
		switch {
		case h.Name == name && h.ClusterAddress() != addr:
			return false, inputError{fmt.Errorf("the cluster lists host %s with address %s, but this machine is %s: pass --node-name for another name, or --address", name, h.ClusterAddress(), addr)}
		case h.Name != name && h.ClusterAddress() == addr:
			return false, inputError{fmt.Errorf("the cluster lists address %s as host %s: pass --node-name %s, or check --address", addr, h.Name, h.Name)}
		}
	}
	_, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	switch {
	case err == nil && mine == name:
		return true, nil
	case err == nil:
		return false, inputError{fmt.Errorf("a node named %s is already in the cluster: pass --node-name with another name, or remove that node first (kubectl delete node %s)", name, name)}
	case apierrors.IsNotFound(err):
		if mine != "" && mine != name {
			return false, inputError{fmt.Errorf("this machine is node %s of this cluster already: pass --node-name %s to check it again", mine, mine)}
		}
		return false, nil
	case apierrors.IsUnauthorized(err):
		return false, inputError{fmt.Errorf("the cluster refused the token: %w", err)}
	default:
		return false, fmt.Errorf("look up node %s: %w", name, err)
	}
}

// stackedEtcd: every control plane runs an etcd member.
func stackedEtcd(c *config.Cluster) bool {
	for _, h := range c.HostsWith(config.RoleControlPlane) {
		if !h.Has(config.RoleEtcd) {
			return false
		}
	}
	return true
}

// fetchSharedCerts reads and decrypts the CAs 'init --upload-certs'
// stored.
func fetchSharedCerts(ctx context.Context, client kubernetes.Interface, key, caPEM []byte) (map[string][]byte, error) {
	s, err := client.CoreV1().Secrets("kube-system").Get(ctx, phases.CertsSecretName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err), apierrors.IsForbidden(err):
		return nil, inputError{fmt.Errorf("the cluster holds no uploaded certificates (kube-system/%s: %v): they are deleted %s after upload; "+
			"run 'kubeforge init phase upload-certs -f FILE' on the admin machine and use the key it prints", phases.CertsSecretName, err, phases.CertsTTL)}
	case err != nil:
		return nil, fmt.Errorf("read kube-system/%s: %w", phases.CertsSecretName, err)
	}
	out := map[string][]byte{}
	for k, sealed := range s.Data {
		rel, ok := certs.SharedPath(k)
		if !ok {
			continue
		}
		data, err := certs.Open(key, sealed)
		if err != nil {
			return nil, inputError{fmt.Errorf("--certificate-key: %w: it is not the key the certificates were uploaded with; "+
				"use the key 'kubeforge init phase upload-certs' printed (run it again for a new one)", err)}
		}
		out[rel] = data
	}
	for _, rel := range certs.SharedFiles() {
		if _, ok := out[rel]; !ok {
			return nil, fmt.Errorf("kube-system/%s lacks %s: upload the certificates again", phases.CertsSecretName, rel)
		}
	}
	if string(out[certs.ClusterCA().CertPath()]) != string(caPEM) {
		return nil, fmt.Errorf("kube-system/%s holds another CA than the one this machine pinned: upload the certificates again", phases.CertsSecretName)
	}
	return out, nil
}
