package app

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kubeforge/kubeforge/internal/config"
)

// NewCmdConfig builds `kubeforge config`.
func NewCmdConfig(deps *Deps) *cobra.Command {
	cmd := groupCmd("config", "Write and check cluster files", "")
	cmd.AddCommand(&cobra.Command{
		Use:     "example",
		Short:   "Print a commented example cluster file",
		Example: "  kubeforge config example > cluster.yaml",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprint(deps.IO.Out, config.Example)
			return err
		},
	})
	var file string
	validate := &cobra.Command{
		Use:     "validate -f CLUSTER_FILE",
		Short:   "Check a cluster file without contacting any host",
		Example: "  kubeforge config validate -f cluster.yaml",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := loadCluster(deps, file)
			if err != nil {
				return err
			}
			fmt.Fprintf(deps.IO.Out, "%s: cluster %s, %d hosts, endpoint %s: valid\n", file, c.Metadata.Name, len(c.Spec.Hosts), c.Spec.ControlPlane.Endpoint)
			return nil
		},
	}
	validate.Flags().StringVarP(&file, clusterFileFlag, "f", "", "cluster file")
	cmd.AddCommand(validate)
	return cmd
}
