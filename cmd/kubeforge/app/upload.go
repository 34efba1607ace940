package app

import (
	"github.com/spf13/cobra"
)

// NewCmdBundle builds `kubeforge bundle`.
func NewCmdBundle(deps *Deps) *cobra.Command {
	cmd := groupCmd("bundle", "Work with the component bundle on the hosts", "")
	cmd.AddCommand(NewCmdBundleUpload(deps, nil), NewCmdBundleUnpack())
	return cmd
}

// NewCmdBundleUpload builds `kubeforge bundle upload`.
func NewCmdBundleUpload(deps *Deps, runF func(*ActionOptions, []string) error) *cobra.Command {
	return newActionCmd(deps, action{
		playbook: "upload",
		use:      "upload -f CLUSTER_FILE",
		short:    "Copy the component bundle to every host and unpack it",
		long: `Copy the compressed bundle (the binaries and offline images this kubeforge installs)
to every host and unpack it into /opt/kubeforge/<sum>, verifying every file against
the manifest. A host that already has this bundle is skipped: its archive's sha256 is
compared first, so a re-run transfers nothing. init does this too; run it alone to
stage a new bundle before a maintenance window.`,
		example: `  kubeforge bundle upload -f cluster.yaml
  kubeforge bundle upload -f cluster.yaml --dry-run`,
		bundle: bundleRequired,
	}, runF)
}
