package app

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/kubeforge/kubeforge/certs"
	"github.com/kubeforge/kubeforge/phases"
)

// NewCmdSecrets builds `kubeforge secrets`.
func NewCmdSecrets(deps *Deps) *cobra.Command {
	cmd := groupCmd("secrets", "Manage the encryption of the cluster's Secrets at rest", "")
	cmd.AddCommand(NewCmdRotateKey(deps, nil))
	return cmd
}

// NewCmdRotateKey builds `kubeforge secrets rotate-key`.
func NewCmdRotateKey(deps *Deps, runF func(*ActionOptions, []string) error) *cobra.Command {
	var start time.Time
	return newActionCmd(deps, action{
		playbook: "rotate-key",
		use:      "rotate-key -f CLUSTER_FILE",
		short:    "Encrypt the cluster's Secrets with a new key, without downtime",
		long: `The API servers encrypt Secrets in etcd with secretbox (XSalsa20-Poly1305), with a key
kubeforge made at init and keeps in the state directory (` + certs.EncryptionConfigPath() + `), copied to
` + phases.EncryptionConfigFile + ` (0600) on every control plane.

rotate-key replaces it. Nothing changes unless every control plane is healthy. A new key is
made and every API server learns to read with it; then every API server writes with it; then
every Secret is written again through the API and etcd is checked to hold none under another
key; only then is the old key dropped. The API servers reload the file without a restart
(each one's metrics confirm it loaded the new file before the next step), so no request
fails; one whose unit must change first (a cluster made before encryption) restarts, one
control plane at a time, giving the VIP away first.

Stopped anywhere, by a failure or an interrupt, the same command finishes the rotation it
started (no other key is made until it is done). A cluster made before kubeforge encrypted
Secrets is moved to encryption by the same command: its Secrets, plaintext in etcd until
then, are rewritten encrypted.`,
		example: `  kubeforge secrets rotate-key -f cluster.yaml
  kubeforge secrets rotate-key -f cluster.yaml --dry-run`,
		bundle: bundleRequired,
		setup: func(_ context.Context, _ *Deps, run *actionRun) error {
			start = time.Now()
			return setupPKIAndToken(run.Env, run.Opts.DryRun)
		},
		after: func(_ context.Context, _ *Deps, run *actionRun) error {
			if run.Env.DryRun || run.Runner.Only != "" {
				return nil
			}
			st := phases.EncryptionStatus(run.Env)
			fmt.Fprintf(run.Out, "\nSecrets are encrypted with key %s, on every API server (%s).\n", st.Key, time.Since(start).Round(100*time.Millisecond))
			return nil
		},
	}, runF)
}
