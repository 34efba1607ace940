package app

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"

	"github.com/kubeforge/kubeforge/certs"
	"github.com/kubeforge/kubeforge/internal/bootstraptoken"
	"github.com/kubeforge/kubeforge/internal/cluster"
	"github.com/kubeforge/kubeforge/internal/wait"
	"github.com/kubeforge/kubeforge/phases"
)

// TokenOptions are the own flags of `kubeforge token`.
type TokenOptions struct {
	TTL              time.Duration
	Description      string
	PrintJoinCommand bool
	CertificateKey   string
	Output           string
}

// NewCmdToken builds `kubeforge token`.
func NewCmdToken(deps *Deps) *cobra.Command {
	opts := &TokenOptions{}
	cmd := groupCmd("token", "Create, list and delete the bootstrap tokens nodes join with", `Bootstrap tokens let a machine join the cluster on its own ('kubeforge join ENDPOINT
--token ...'): kubeadm's format and semantics. They are Secrets in kube-system; the
cluster deletes them when they expire. These commands talk to the cluster as its
admin (the state directory's super-admin, through a control plane).`)
	create := newActionCmd(deps, action{
		name:  "token-create",
		use:   "create -f CLUSTER_FILE",
		short: "Create a bootstrap token",
		example: `  kubeforge token create -f cluster.yaml --print-join-command
  kubeforge token create -f cluster.yaml --ttl 2h --description "rack 4"
  kubeforge token create -f cluster.yaml --print-join-command --certificate-key 5d1c...`,
		flags: func(f *pflag.FlagSet) {
			f.DurationVar(&opts.TTL, "ttl", bootstraptoken.DefaultTTL, "how long the token is valid (0: forever, not recommended)")
			f.StringVar(&opts.Description, "description", "", "what the token is for")
			f.BoolVar(&opts.PrintJoinCommand, "print-join-command", false, "print the whole join command, not only the token")
			f.StringVar(&opts.CertificateKey, "certificate-key", "", "with --print-join-command: a control plane's join command, with this key")
		},
		check: func(*ActionOptions, []string) error {
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
			return nil
		},
		after: func(ctx context.Context, deps *Deps, run *actionRun) error { return tokenCreate(ctx, deps, run, opts) },
	}, nil)
	list := newActionCmd(deps, action{
		name:  "token-list",
		use:   "list -f CLUSTER_FILE",
		short: "List the bootstrap tokens",
		flags: func(f *pflag.FlagSet) {
			f.StringVarP(&opts.Output, "output", "o", "table", "table or json")
		},
		check: func(*ActionOptions, []string) error { return checkOutput(opts.Output) },
		after: func(ctx context.Context, deps *Deps, run *actionRun) error { return tokenList(ctx, deps, run, opts) },
	}, nil)
	del := newActionCmd(deps, action{
		name:    "token-delete",
		use:     "delete -f CLUSTER_FILE TOKEN_OR_ID...",
		short:   "Delete bootstrap tokens: nodes can no longer join with them",
		example: `  kubeforge token delete -f cluster.yaml abcdef`,
		args: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError{errors.New("name the tokens to delete, by ID (abcdef) or whole")}
			}
			for _, a := range args {
				if _, err := bootstraptoken.Parse(a); err != nil && (len(a) != 6 || strings.Trim(a, "abcdefghijklmnopqrstuvwxyz0123456789") != "") {
					return usageError{fmt.Errorf("%q is neither a token nor a token ID ([a-z0-9]{6})", a)}
				}
			}
			return nil
		},
		after: tokenDelete,
	}, nil)
	cmd.AddCommand(create, list, del)
	return cmd
}

func tokenCreate(ctx context.Context, deps *Deps, run *actionRun, opts *TokenOptions) error {
	tok := bootstraptoken.New(time.Now(), opts.TTL)
	deps.redact.add(tok.String())
	desc := opts.Description
	if desc == "" {
		desc = "kubeforge token create: joins nodes to cluster " + run.Cluster.Metadata.Name
	}
	if run.Env.DryRun {
		fmt.Fprintf(run.Out, "would create a bootstrap token valid for %s\n", opts.TTL)
		return nil
	}
	if err := run.Env.Client.CreateSecret(ctx, phases.TokenSecret(tok, desc, true)); err != nil {
		return fmt.Errorf("create the token: %w", err)
	}
	// The join command works once the cluster has signed cluster-info
	// with the new token (the bootstrapsigner, within seconds).
	if err := waitSigned(ctx, run.Env.Client, tok.ID); err != nil {
		return err
	}
	if !opts.PrintJoinCommand {
		fmt.Fprintln(run.Out, tok)
		return nil
	}
	caPEM, err := run.Env.StateDir.ReadCA()
	if err != nil {
		return err
	}
	hash, err := bootstraptoken.CACertHash(caPEM)
	if err != nil {
		return err
	}
	line := fmt.Sprintf("kubeforge join %s --token %s --discovery-token-ca-cert-hash %s", run.Cluster.Spec.ControlPlane.Endpoint, tok, hash)
	if opts.CertificateKey != "" {
		line += " --control-plane --certificate-key " + opts.CertificateKey
	}
	fmt.Fprintln(run.Out, line)
	return nil
}

func waitSigned(ctx context.Context, client *cluster.Client, id string) error {
	var last error
	err := wait.For(ctx, 30*time.Second, func() (bool, error) {
		cm, err := client.ConfigMap(ctx, metav1.NamespacePublic, bootstrapapi.ConfigMapClusterInfo)
		last = err
		if err != nil {
			return false, nil
		}
		_, ok := cm.Data[bootstrapapi.JWSSignatureKeyPrefix+id]
		return ok, nil
	})
	if err != nil {
		return fmt.Errorf("the cluster did not sign cluster-info with the new token within 30s (is kube-controller-manager running with the bootstrapsigner?): %v", last)
	}
	return nil
}

// tokenRow is one token as list shows it.
type tokenRow struct {
	Token       string    `json:"token"`
	Expires     time.Time `json:"expires,omitempty"`
	Usages      []string  `json:"usages"`
	Description string    `json:"description"`
	Groups      string    `json:"extraGroups,omitempty"`
}

func tokenList(ctx context.Context, deps *Deps, run *actionRun, opts *TokenOptions) error {
	list, err := run.Env.Client.Secrets(ctx, "kube-system", corev1.SecretTypeBootstrapToken)
	if err != nil {
		return fmt.Errorf("list the tokens: %w", err)
	}
	rows := []tokenRow{}
	for _, s := range list {
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
		return writeJSON(run.Out, rows)
	}
	tw := tabwriter.NewWriter(run.Out, 0, 4, 2, ' ', 0)
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

func tokenDelete(ctx context.Context, _ *Deps, run *actionRun) error {
	for _, a := range run.Args {
		id := a
		if t, err := bootstraptoken.Parse(a); err == nil {
			id = t.ID
		}
		name := bootstraptoken.SecretName(id)
		if _, err := run.Env.Client.Secret(ctx, "kube-system", name); errors.Is(err, cluster.ErrNotFound) {
			return inputError{fmt.Errorf("no token %s in the cluster", id)}
		} else if err != nil {
			return fmt.Errorf("delete token %s: %w", id, err)
		}
		if run.Env.DryRun {
			fmt.Fprintf(run.Out, "would delete token %s\n", id)
			continue
		}
		if err := run.Env.Client.DeleteSecret(ctx, "kube-system", name); err != nil {
			return fmt.Errorf("delete token %s: %w", id, err)
		}
		fmt.Fprintf(run.Out, "token %s deleted\n", id)
	}
	return nil
}
