package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"

	"github.com/kubeforge/kubeforge/certs"
	"github.com/kubeforge/kubeforge/internal/bootstraptoken"
	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/phases"
)

// TokenOptions are the flags of `kubeforge token`.
type TokenOptions struct {
	File             string
	TTL              time.Duration
	Description      string
	PrintJoinCommand bool
	CertificateKey   string
	Output           string
}

// NewCmdToken builds `kubeforge token`.
func NewCmdToken(deps *Deps) *cobra.Command {
	opts := &TokenOptions{}
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, list and delete the bootstrap tokens nodes join with",
		Long: `Bootstrap tokens let a machine join the cluster on its own ('kubeforge join ENDPOINT
--token ...'): kubeadm's format and semantics. They are Secrets in kube-system; the
cluster deletes them when they expire. These commands talk to the cluster as its
admin (the state directory's admin.conf).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	create := &cobra.Command{
		Use:   "create -f CLUSTER_FILE",
		Short: "Create a bootstrap token",
		Example: `  kubeforge token create -f cluster.yaml --print-join-command
  kubeforge token create -f cluster.yaml --ttl 2h --description "rack 4"
  kubeforge token create -f cluster.yaml --print-join-command --certificate-key 5d1c...`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runTokenCreate(cmd.Context(), deps, opts) },
	}
	create.Flags().DurationVar(&opts.TTL, "ttl", bootstraptoken.DefaultTTL, "how long the token is valid (0: forever, not recommended)")
	create.Flags().StringVar(&opts.Description, "description", "", "what the token is for")
	create.Flags().BoolVar(&opts.PrintJoinCommand, "print-join-command", false, "print the whole join command, not only the token")
	create.Flags().StringVar(&opts.CertificateKey, "certificate-key", "", "with --print-join-command: a control plane's join command, with this key")
	list := &cobra.Command{
		Use:   "list -f CLUSTER_FILE",
		Short: "List the bootstrap tokens",
		Args:  noArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runTokenList(cmd.Context(), deps, opts) },
	}
	list.Flags().StringVarP(&opts.Output, "output", "o", "table", "table or json")
	del := &cobra.Command{
		Use:     "delete -f CLUSTER_FILE TOKEN_OR_ID...",
		Short:   "Delete bootstrap tokens: nodes can no longer join with them",
		Example: `  kubeforge token delete -f cluster.yaml abcdef`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError{errors.New("name the tokens to delete, by ID (abcdef) or whole")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error { return runTokenDelete(cmd.Context(), deps, opts, args) },
	}
	for _, c := range []*cobra.Command{create, list, del} {
		c.Flags().StringVarP(&opts.File, clusterFileFlag, "f", "", "cluster file")
		cmd.AddCommand(c)
	}
	return cmd
}

// adminClient is the cluster, as its admin from the state directory.
func adminClient(deps *Deps, file string) (kubernetes.Interface, *config.Cluster, string, error) {
	c, err := loadCluster(deps, file)
	if err != nil {
		return nil, nil, "", err
	}
	state, err := stateDir(deps, c.Metadata.Name)
	if err != nil {
		return nil, nil, "", err
	}
	admin := filepath.Join(state, certs.AdminConf)
	if _, err := os.Stat(admin); err != nil {
		return nil, nil, "", fmt.Errorf("%w: run 'kubeforge init -f %s' first", err, file)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", admin)
	if err != nil {
		return nil, nil, "", fmt.Errorf("%s: %w", admin, err)
	}
	cfg.Timeout = 15 * time.Second
	client, err := kubernetes.NewForConfig(cfg)
	return client, c, state, err
}

func runTokenCreate(ctx context.Context, deps *Deps, opts *TokenOptions) error {
	if opts.TTL < 0 {
		return usageError{fmt.Errorf("--ttl %s: negative", opts.TTL)}
	}
	if opts.CertificateKey != "" {
		if !opts.PrintJoinCommand {
			return usageError{errors.New("--certificate-key goes with --print-join-command")}
		}
		if _, err := certs.ParseCertificateKey(opts.CertificateKey); err != nil {
			return usageError{fmt.Errorf("--certificate-key: %w", err)}
		}
	}
	client, c, state, err := adminClient(deps, opts.File)
	if err != nil {
		return err
	}
	tok := bootstraptoken.New(time.Now(), opts.TTL)
	deps.redact.add(tok.String())
	desc := opts.Description
	if desc == "" {
		desc = "kubeforge token create: joins nodes to cluster " + c.Metadata.Name
	}
	if _, err := client.CoreV1().Secrets("kube-system").Create(ctx, phases.TokenSecret(tok, desc, true), metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create the token: %w", err)
	}
	// The join command works once the cluster has signed cluster-info
	// with the new token (the bootstrapsigner, within seconds).
	if err := waitSigned(ctx, client, tok.ID); err != nil {
		return err
	}
	if !opts.PrintJoinCommand {
		fmt.Fprintln(deps.IO.Out, tok)
		return nil
	}
	caPEM, err := os.ReadFile(filepath.Join(state, "pki", "ca.crt"))
	if err != nil {
		return err
	}
	hash, err := bootstraptoken.CACertHash(caPEM)
	if err != nil {
		return err
	}
	line := fmt.Sprintf("kubeforge join %s --token %s --discovery-token-ca-cert-hash %s", c.Spec.ControlPlane.Endpoint, tok, hash)
	if opts.CertificateKey != "" {
		line += " --control-plane --certificate-key " + opts.CertificateKey
	}
	fmt.Fprintln(deps.IO.Out, line)
	return nil
}

func waitSigned(ctx context.Context, client kubernetes.Interface, id string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		cm, err := client.CoreV1().ConfigMaps(metav1.NamespacePublic).Get(ctx, bootstrapapi.ConfigMapClusterInfo, metav1.GetOptions{})
		if err == nil {
			if _, ok := cm.Data[bootstrapapi.JWSSignatureKeyPrefix+id]; ok {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the cluster did not sign cluster-info with the new token within 30s (is kube-controller-manager running with the bootstrapsigner?): %v", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// tokenRow is one token as list shows it.
type tokenRow struct {
	Token       string    `json:"token"`
	Expires     time.Time `json:"expires,omitempty"`
	Usages      []string  `json:"usages"`
	Description string    `json:"description"`
	Groups      string    `json:"extraGroups,omitempty"`
}

func runTokenList(ctx context.Context, deps *Deps, opts *TokenOptions) error {
	if opts.Output != "table" && opts.Output != "json" {
		return usageError{fmt.Errorf("-o %q: table or json", opts.Output)}
	}
	client, _, _, err := adminClient(deps, opts.File)
	if err != nil {
		return err
	}
	list, err := client.CoreV1().Secrets("kube-system").List(ctx, metav1.ListOptions{FieldSelector: "type=" + string(corev1.SecretTypeBootstrapToken)})
	if err != nil {
		return fmt.Errorf("list the tokens: %w", err)
	}
	rows := []tokenRow{}
	for _, s := range list.Items {
		d := s.Data
		r := tokenRow{Token: string(d[bootstrapapi.BootstrapTokenIDKey]) + "." + string(d[bootstrapapi.BootstrapTokenSecretKey]),
			Description: string(d[bootstrapapi.BootstrapTokenDescriptionKey]), Groups: string(d[bootstrapapi.BootstrapTokenExtraGroupsKey])}
		deps.redact.add(r.Token)
		if e, err := time.Parse(time.RFC3339, string(d[bootstrapapi.BootstrapTokenExpirationKey])); err == nil {
			r.Expires = e
		}
		for k, v := range d {
			if u, ok := strings.CutPrefix(k, bootstrapapi.BootstrapTokenUsagePrefix); ok && string(v) == "true" {
				r.Usages = append(r.Usages, u)
			}
		}
		sort.Strings(r.Usages)
		rows = append(rows, r)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Expires.Before(rows[j].Expires) })
	if opts.Output == "json" {
		enc := json.NewEncoder(deps.IO.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	tw := tabwriter.NewWriter(deps.IO.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOKEN\tTTL\tEXPIRES\tUSAGES\tDESCRIPTION")
	for _, r := range rows {
		ttl, exp := "<forever>", "<never>"
		if !r.Expires.IsZero() {
			ttl, exp = time.Until(r.Expires).Round(time.Second).String(), r.Expires.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Token, ttl, exp, strings.Join(r.Usages, ","), r.Description)
	}
	return tw.Flush()
}

func runTokenDelete(ctx context.Context, deps *Deps, opts *TokenOptions, args []string) error {
	client, _, _, err := adminClient(deps, opts.File)
	if err != nil {
		return err
	}
	for _, a := range args {
		id := a
		if t, err := bootstraptoken.Parse(a); err == nil {
			id = t.ID
		} else if len(a) != 6 || strings.Trim(a, "abcdefghijklmnopqrstuvwxyz0123456789") != "" {
			return usageError{fmt.Errorf("%q is neither a token nor a token ID ([a-z0-9]{6})", a)}
		}
		err := client.CoreV1().Secrets("kube-system").Delete(ctx, bootstraptoken.SecretName(id), metav1.DeleteOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return inputError{fmt.Errorf("no token %s in the cluster", id)}
		case err != nil:
			return fmt.Errorf("delete token %s: %w", id, err)
		}
		fmt.Fprintf(deps.IO.Out, "token %s deleted\n", id)
	}
	return nil
}
