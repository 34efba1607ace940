package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kubeforge/kubeforge/certs"
	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/internal/statedir"
	"github.com/kubeforge/kubeforge/phases"
)

// NewCmdCerts builds `kubeforge certs`.
func NewCmdCerts(deps *Deps) *cobra.Command {
	cmd := groupCmd("certs", "Generate, inspect and renew the cluster's certificates", `The cluster's PKI, in kubeadm's layout: three CAs (ca, etcd/ca, front-proxy-ca), the
service-account key pair, the leaf certificates and the kubeconfigs with embedded
client certificates. It lives in the state directory on the admin machine
(DIR/pki, DIR/*.conf, DIR/nodes/<host>/...); each host gets only what it needs.`)
	cmd.AddCommand(
		NewCmdCertsGenerate(deps, nil),
		NewCmdCertsCheckExpiration(deps, nil),
		NewCmdCertsRenew(deps, nil),
		NewCmdCertsRenewLocal(deps),
	)
	return cmd
}

// CertsGenerateOptions are the options of `certs generate`.
type CertsGenerateOptions struct {
	File string
	Dir  string
}

// NewCmdCertsGenerate builds `certs generate`.
func NewCmdCertsGenerate(deps *Deps, runF func(*CertsGenerateOptions) error) *cobra.Command {
	opts := &CertsGenerateOptions{}
	cmd := &cobra.Command{
		Use:   "generate -f CLUSTER_FILE [--dir DIR]",
		Short: "Create the cluster's PKI, or bring an existing one in line with the cluster file",
		Long: `Create every CA, key pair, certificate and kubeconfig the cluster file calls for.

Re-running is safe: valid files are kept; a certificate whose names or subject no
longer match the cluster file, that no longer chains to its CA, or that expired is
issued again; an existing CA is never replaced. Damaged files stop it with an error
naming them, before anything is written.`,
		Example: `  kubeforge certs generate -f cluster.yaml
  kubeforge certs generate -f cluster.yaml --dir /tmp/pki`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(opts)
			}
			return runCertsGenerate(deps, opts)
		},
	}
	cmd.Flags().StringVarP(&opts.File, clusterFileFlag, "f", "", "cluster file")
	cmd.Flags().StringVar(&opts.Dir, "dir", "", "PKI directory (default: the state directory)")
	return cmd
}

func runCertsGenerate(deps *Deps, opts *CertsGenerateOptions) error {
	if opts.File == "" {
		return usageError{fmt.Errorf("no cluster file: pass -f cluster.yaml ('kubeforge config example' prints one)")}
	}
	dir, c, err := pkiTarget(deps, opts.Dir, opts.File)
	if err != nil {
		return err
	}
	spec, err := certs.SpecFromCluster(c)
	if err != nil {
		return err
	}
	start := time.Now()
	results, err := certs.Generate(spec, dir.PKI(), certs.Options{})
	printResults(deps, results)
	if err != nil {
		return err
	}
	fmt.Fprintf(deps.IO.Out, "PKI in %s (%s)\n", dir, time.Since(start).Round(time.Millisecond))
	return nil
}

func printResults(deps *Deps, results []certs.Result) {
	tw := tabwriter.NewWriter(deps.IO.Out, 0, 4, 2, ' ', 0)
	for _, r := range results {
		line := fmt.Sprintf("%s\t%s\t%s", r.Action, r.Name, r.Path)
		if r.Reason != "" {
			line += "\t(" + r.Reason + ")"
		}
		fmt.Fprintln(tw, line)
		deps.Log.Info("certs", "action", r.Action, "name", r.Name, "path", r.Path, "reason", r.Reason)
	}
	tw.Flush()
}

// pkiTarget resolves the PKI directory a certs command works on: --dir,
// else --state-dir, else the state directory of the cluster file. It
// returns the cluster too when a file is given.
func pkiTarget(deps *Deps, dir, file string) (statedir.Dir, *config.Cluster, error) {
	var c *config.Cluster
	if file != "" {
		var err error
		if c, err = loadCluster(deps, file); err != nil {
			return "", nil, err
		}
	}
	switch {
	case dir != "":
		return statedir.Dir(dir), c, nil
	case c != nil:
		d, err := stateDir(deps, c.Metadata.Name)
		return d, c, err
	case deps.Global.StateDir != "":
		d, err := stateDir(deps, "")
		return d, nil, err
	}
	return "", nil, usageError{fmt.Errorf("which PKI? pass --dir DIR or -f CLUSTER_FILE")}
}

// CertsCheckOptions are the options of `certs check-expiration`.
type CertsCheckOptions struct {
	Dir        string
	Output     string
	WarnWithin time.Duration
}

// NewCmdCertsCheckExpiration builds `certs check-expiration`.
func NewCmdCertsCheckExpiration(deps *Deps, runF func(*ActionOptions, []string) error) *cobra.Command {
	opts := &CertsCheckOptions{WarnWithin: 30 * 24 * time.Hour}
	var ao *ActionOptions
	found := map[string][]certs.HostCert{}
	return newActionCmd(deps, action{
		playbook: "certs-check",
		use:      "check-expiration (-f CLUSTER_FILE | --dir DIR)",
		short:    "Show when every certificate expires; exit 1 if one has expired or expires soon",
		long: `With -f, read every node of the cluster over SSH: the PKI files, the client certificate in
every kubeconfig, the kubelet's client and serving certificates, etcd's, and the CAs
(certificates only: no private key leaves a host); plus the admin machine's admin.conf
and the kubelet certificate requests nobody approved yet. One row per node and
certificate: when it expires, how long is left, which CA signed it, and who renews it
(kubeforge certs renew, the kubelet itself, or nobody: a CA).

With --dir, list the certificates of a PKI directory on this machine instead (the state
directory, or a copy).

The exit code is 1 when any certificate has expired, expires within --warn-within, or
cannot be read, or a node cannot be reached, so this can run from cron or a monitoring
check.`,
		example: `  kubeforge certs check-expiration -f cluster.yaml
  kubeforge certs check-expiration -f cluster.yaml -o json --warn-within 60d
  kubeforge certs check-expiration --dir ~/.kubeforge/prod -o json
  kubeforge certs check-expiration --dir DIR --warn-within 60d || mail -s "renew certificates" ops`,
		flags: func(f *pflag.FlagSet) {
			f.StringVar(&opts.Dir, "dir", "", "a PKI directory on this machine to check instead")
			f.StringVarP(&opts.Output, "output", "o", "table", "output format: table or json")
			f.Var(durationFlag{&opts.WarnWithin}, "warn-within", "warn about certificates that expire within this time (e.g. 30d, 72h)")
		},
		check: func(a *ActionOptions, _ []string) error {
			ao = a
			if opts.Output != "" && opts.Output != "table" && opts.Output != "json" {
				return usageError{fmt.Errorf("--output %q: use table or json", opts.Output)}
			}
			return nil
		},
		isLocal: func(a *ActionOptions) bool { return a.File == "" || opts.Dir != "" },
		local:   func(context.Context, []string) error { return runCertsCheck(deps, opts, ao.File) },
		// With -o json, progress goes to stderr: stdout is the report.
		progress: func(deps *Deps) io.Writer {
			if opts.Output == "json" {
				return deps.IO.ErrOut
			}
			return deps.IO.Out
		},
		setup: func(_ context.Context, _ *Deps, run *actionRun) error {
			run.Runner.NewPhase = phases.Builder(map[string]func(*phases.Env) phases.Phase{
				"certs-inventory": func(env *phases.Env) phases.Phase {
					return phases.NewCertInventory(env, func(node string, hc []certs.HostCert) { found[node] = hc })
				},
			})
			return nil
		},
		afterOnFailure: true,
		after: func(ctx context.Context, _ *Deps, run *actionRun) error {
			pending, pendingErr := phases.PendingCSRs(ctx, run.Env)
			return reportClusterCerts(deps, opts, run, found, pending, pendingErr)
		},
	}, runF)
}

// expiryProblem is the error check-expiration returns after printing its
// report: exit code 1, nothing more to print but the summary.
type expiryProblem struct{ summary string }

func (e *expiryProblem) Error() string { return e.summary }
func (e *expiryProblem) ExitCode() int { return ExitFailure }

func runCertsCheck(deps *Deps, opts *CertsCheckOptions, file string) error {
	dir, _, err := pkiTarget(deps, opts.Dir, file)
	if err != nil {
		return err
	}
	now := time.Now()
	entries, err := certs.Check(dir.PKI(), now)
	if err != nil {
		return err
	}
	if len(entries) == 0 {
		return fmt.Errorf("%s holds no certificates: is it the PKI directory? ('kubeforge certs generate' creates one)", dir)
	}
	var expired, soon, broken int
	status := make([]string, len(entries))
	for i, e := range entries {
		switch {
		case e.Error != "":
			broken++
			status[i] = "unreadable"
		case e.Expired():
			expired++
			status[i] = "EXPIRED"
		case e.Residual < opts.WarnWithin:
			soon++
			status[i] = "expires soon"
		default:
			status[i] = "ok"
		}
	}
	if opts.Output == "json" {
		type row struct {
			certs.Expiry
			ResidualText string `json:"residualText,omitempty"`
			Status       string `json:"status"`
		}
		report := struct {
			Dir          string `json:"dir"`
			WarnWithin   string `json:"warnWithin"`
			Certificates []row  `json:"certificates"`
		}{Dir: dir.Path(), WarnWithin: opts.WarnWithin.String()}
		for i, e := range entries {
			report.Certificates = append(report.Certificates, row{Expiry: e, Status: status[i], ResidualText: residualText(e.Error, e.Residual)})
		}
		if err := writeJSON(deps.IO.Out, report); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(deps.IO.Out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CERTIFICATE\tEXPIRES\tRESIDUAL TIME\tSIGNED BY\tCA\tSTATUS\tFILE")
		for i, e := range entries {
			if e.Error != "" {
				fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t%s: %s\t%s\n", e.Name, status[i], e.Error, e.Path)
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Name, e.NotAfter.Format("Jan 02, 2006 15:04 MST"),
				humanDuration(e.Residual), e.CA, yesNo(e.IsCA), status[i], e.Path)
		}
		tw.Flush()
	}
	if expired+soon+broken == 0 {
		return nil
	}
	return &expiryProblem{summary: fmt.Sprintf("certificates in %s: %s; renew with 'kubeforge certs renew all --dir %s'",
		dir, expiryCounts(expired, soon, broken, opts.WarnWithin), dir)}
}

// expiryCounts says how many certificates expired, expire soon and could
// not be read: "2 expired, 1 cannot be read".
func expiryCounts(expired, soon, broken int, within time.Duration) string {
	var parts []string
	if expired > 0 {
		parts = append(parts, fmt.Sprintf("%d expired", expired))
	}
	if soon > 0 {
		parts = append(parts, fmt.Sprintf("%d expire within %s", soon, humanDuration(within)))
	}
	if broken > 0 {
		parts = append(parts, fmt.Sprintf("%d cannot be read", broken))
	}
	return strings.Join(parts, ", ")
}

// CertsRenewOptions are the options of `certs renew`.
type CertsRenewOptions struct {
	Names        []string
	Dir          string
	InstallTimer bool
	RemoveTimer  bool
}

// NewCmdCertsRenew builds `certs renew`.
func NewCmdCertsRenew(deps *Deps, runF func(*ActionOptions, []string) error) *cobra.Command {
	opts := &CertsRenewOptions{}
	r := &certsRenewRun{opts: opts}
	var ao *ActionOptions
	return newActionCmd(deps, action{
		playbook: "renew",
		choose:   r.choose,
		use:      "renew all|NAME... (-f CLUSTER_FILE | --dir DIR)",
		short:    "Renew certificates on every node, one control plane at a time, without downtime",
		long: `Issue each named certificate again, signed by the existing CA, with the subject, names
and usages of the current certificate (plus any names the cluster file adds) and a
new key. CAs are never renewed here.

With -f, the whole cluster: nothing changes unless every host answers and every control
plane is healthy. The certificates are renewed in the state directory (backed up to
backups/<time>/ there), each host archives its own to
/var/lib/kubeforge/backups/certs-<time>.tar.gz, then the control planes take the new
ones one at a time: each gives the VIP to a healthy peer first, restarts etcd (the etcd
cluster healthy before going on) and the API server (/readyz before going on), the
controller-manager and scheduler, and takes its place back. Then the kubelets' pending
serving certificate requests are approved (when they name only their node), and every
API server, etcd member and kubelet is checked, over TLS, to serve its new certificate.
The kubelets renew their client certificates themselves.

When certificates have already expired (the API is down, the kubelets unauthorized),
-f recovers the cluster instead: every component restarts on its new certificates at
once, and the kubelets join again with a fresh bootstrap token.

A renewal stopped by a failure leaves each host on its old or its new certificates
(a host's files change together), names the host and what to do; run it again to
finish.

--install-timer puts a systemd timer on every control plane (kubeforge-certs-renew.timer,
daily) that renews that host's certificates when less than 30 days remain, one control
plane at a time, restarting what uses them with the same health gates, and approves the
kubelets' serving requests; it copies this kubeforge binary and the etcd and
front-proxy CA keys there. --remove-timer removes it all.

With --dir, renew the files of a PKI directory on this machine only.

Names: all, ` + strings.Join(certs.LeafNames(), ", "),
		example: `  kubeforge certs renew all -f cluster.yaml
  kubeforge certs renew all -f cluster.yaml --dry-run
  kubeforge certs renew admin.conf -f cluster.yaml
  kubeforge certs renew --install-timer -f cluster.yaml
  kubeforge certs renew apiserver admin.conf --dir ~/.kubeforge/prod`,
		args: cobra.ArbitraryArgs,
		flags: func(f *pflag.FlagSet) {
			f.StringVar(&opts.Dir, "dir", "", "a PKI directory on this machine to renew instead")
			f.BoolVar(&opts.InstallTimer, "install-timer", false, "with -f: install a daily timer on every control plane that renews its certificates when less than 30 days remain")
			f.BoolVar(&opts.RemoveTimer, "remove-timer", false, "with -f: remove that timer")
		},
		check: func(a *ActionOptions, args []string) error {
			ao, opts.Names = a, args
			timer := opts.InstallTimer || opts.RemoveTimer
			switch {
			case opts.InstallTimer && opts.RemoveTimer:
				return usageError{errors.New("--install-timer or --remove-timer, not both")}
			case timer && (len(args) > 0 || a.File == "" || opts.Dir != ""):
				return usageError{errors.New("--install-timer and --remove-timer take -f CLUSTER_FILE and no certificate names")}
			case !timer && len(args) == 0:
				return usageError{fmt.Errorf("name what to renew: all, or certificate names")}
			case !timer:
				return checkRenewNames(opts.Names)
			}
			return nil
		},
		isLocal: func(a *ActionOptions) bool { return a.File == "" || opts.Dir != "" },
		local:   func(context.Context, []string) error { return runCertsRenew(deps, opts, ao.File) },
		bundle:  bundleIfThere,
		setup:   r.setup,
		after:   r.after,
		// The note on the hosts' backups, and what to do next, also after
		// a failure.
		afterOnFailure: true,
		reports:        true,
	}, runF)
}

// checkRenewNames refuses unknown names (a usage error, with a
// suggestion) and CAs, before anything is read.
func checkRenewNames(names []string) error {
	known := append([]string{"all"}, certs.LeafNames()...)
	for _, n := range names {
		switch {
		case certs.IsCAName(n):
			return &certs.CARenewalError{Name: n}
		case !slices.Contains(known, n):
			msg := fmt.Sprintf("unknown certificate %q", n)
			if close := config.Closest(n, known); close != "" {
				msg += fmt.Sprintf(": did you mean %q?", close)
			}
			return usageError{fmt.Errorf("%s (names: %s)", msg, strings.Join(known, ", "))}
		}
	}
	return nil
}

func runCertsRenew(deps *Deps, opts *CertsRenewOptions, file string) error {
	dir, c, err := pkiTarget(deps, opts.Dir, file)
	if err != nil {
		return err
	}
	ro := certs.RenewOptions{}
	if c != nil {
		spec, err := certs.SpecFromCluster(c)
		if err != nil {
			return err
		}
		ro.Spec = &spec
	}
	backup, results, err := certs.Renew(dir.PKI(), opts.Names, ro)
	if backup != "" {
		fmt.Fprintf(deps.IO.Out, "backup of the previous files: %s\n", backup)
	}
	printResults(deps, results)
	if err != nil {
		return err
	}
	fmt.Fprintf(deps.IO.Out, "%d certificates renewed in %s. The components read them at start: restart the ones that use them on every host.\n",
		len(results), dir)
	return nil
}

// durationFlag is a time.Duration flag that also takes days ("30d").
type durationFlag struct{ d *time.Duration }

func (f durationFlag) String() string {
	if f.d == nil {
		return ""
	}
	return humanDuration(*f.d)
}
func (f durationFlag) Type() string { return "duration" }
func (f durationFlag) Set(s string) error {
	var d config.Duration
	if err := d.UnmarshalText([]byte(s)); err != nil {
		return err
	}
	*f.d = d.Duration
	return nil
}

// humanDuration prints a duration the way kubeadm's expiry table does.
func humanDuration(d time.Duration) string {
	neg := d < 0
	if neg {
		d = -d
	}
	var s string
	switch {
	case d < time.Minute:
		s = fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		s = fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		s = fmt.Sprintf("%dh", int(d.Hours()))
	case d < 2*365*24*time.Hour:
		s = fmt.Sprintf("%dd", int(d.Hours()/24))
	default:
		s = fmt.Sprintf("%dy", int(d.Hours()/24/365))
	}
	if neg {
		return "-" + s
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// residualText is a certificate's time left, for a readable one.
func residualText(readErr string, d time.Duration) string {
	if readErr != "" {
		return ""
	}
	return humanDuration(d)
}
