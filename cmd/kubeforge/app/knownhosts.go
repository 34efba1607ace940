package app

import (
	"fmt"
	"regexp"

	"github.com/spf13/cobra"

	"github.com/kubeforge/kubeforge/internal/ssh"
)

// KnownHostsAcceptOptions are the options of `known-hosts accept`.
type KnownHostsAcceptOptions struct {
	File        string
	Host        string
	Fingerprint string
}

// fingerprintFormat is what ssh-keygen -l prints for a SHA256 fingerprint.
var fingerprintFormat = regexp.MustCompile(`^SHA256:[A-Za-z0-9+/]{43}$`)

// NewCmdKnownHosts builds `kubeforge known-hosts`.
func NewCmdKnownHosts(deps *Deps) *cobra.Command {
	cmd := groupCmd("known-hosts", "Manage the SSH host keys kubeforge trusts", `kubeforge checks every host's SSH key against known_hosts in the cluster's state
directory. A key seen for the first time is trusted and recorded; a changed key is
refused until you accept it here, deliberately.`)
	opts := &KnownHostsAcceptOptions{}
	accept := &cobra.Command{
		Use:   "accept HOST --fingerprint SHA256:... -f CLUSTER_FILE",
		Short: "Trust a host's new SSH key, after you checked its fingerprint on the host",
		Example: `  # on the host: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub
  kubeforge known-hosts accept lab2 --fingerprint SHA256:3b0... -f cluster.yaml`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{fmt.Errorf("name one host of the cluster file")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Host = args[0]
			if opts.Fingerprint == "" {
				return usageError{fmt.Errorf("--fingerprint is required: the SHA256 fingerprint you checked on the host")}
			}
			if !fingerprintFormat.MatchString(opts.Fingerprint) {
				return usageError{fmt.Errorf("--fingerprint %q is not a SHA256 fingerprint: it looks like SHA256:<43 characters>, as 'ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub' prints it on the host", opts.Fingerprint)}
			}
			c, err := loadCluster(deps, opts.File)
			if err != nil {
				return err
			}
			spec := c.Host(opts.Host)
			if spec == nil {
				return usageError{fmt.Errorf("no host %q in %s", opts.Host, opts.File)}
			}
			state, err := stateDir(deps, c.Metadata.Name)
			if err != nil {
				return err
			}
			key, err := ssh.PresentedKey(cmd.Context(), ssh.Config{Host: spec.Name, Addr: spec.Address, Port: spec.SSH.Port, User: spec.SSH.User})
			if err != nil {
				return err
			}
			if got := ssh.Fingerprint(key); got != opts.Fingerprint {
				return fmt.Errorf("host %s presents %s, not %s: nothing changed", spec.Name, got, opts.Fingerprint)
			}
			known := &ssh.KnownHosts{Path: state.KnownHosts()}
			addr := fmt.Sprintf("%s:%d", spec.Address, spec.SSH.Port)
			if err := known.Replace(addr, key); err != nil {
				return err
			}
			fmt.Fprintf(deps.IO.Out, "host %s (%s): now trusting %s in %s\n", spec.Name, addr, opts.Fingerprint, known.Path)
			return nil
		},
	}
	accept.Flags().StringVarP(&opts.File, clusterFileFlag, "f", "", "cluster file")
	accept.Flags().StringVar(&opts.Fingerprint, "fingerprint", "", "the new key's SHA256 fingerprint, as ssh-keygen -l prints it")
	cmd.AddCommand(accept)
	return cmd
}
