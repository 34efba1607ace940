package app

import (
	"errors"
	"os"

	"github.com/spf13/cobra"

	"github.com/kubeforge/kubeforge/components/bundle/untar"
)

// NewCmdBundleUnpack builds `kubeforge bundle unpack -C DIR < ARCHIVE`
// (phases.LocalUnpackCommand): the bundle phase runs it on the machine
// kubeforge runs on, which has no kube-unpack when it joins on its own.
// Hidden: it is kube-unpack's code, for kubeforge's own use.
func NewCmdBundleUnpack() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:    "unpack -C DIR < ARCHIVE",
		Short:  "Unpack a bundle archive (zstd or gzip) from stdin into DIR",
		Hidden: true,
		Args:   noArgs,
		RunE: func(*cobra.Command, []string) error {
			if dir == "" {
				return usageError{errors.New("-C DIR is required: the directory to extract into")}
			}
			return untar.Unpack(os.Stdin, dir)
		},
	}
	cmd.Flags().StringVarP(&dir, "directory", "C", "", "extract into this directory")
	return cmd
}
