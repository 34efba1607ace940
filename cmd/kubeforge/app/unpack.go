package app

import (
	"errors"
	"os"

	"github.com/spf13/cobra"

	"github.com/kubeforge/kubeforge/components/bundle/untar"
)

// NewCmdBundleUnpack builds `kubeforge bundle unpack -C DIR [--sha256
// SUM] [--check SUMS] [--keep PATH] < ARCHIVE` (phases.LocalUnpackCommand): the bundle
// phase runs it on the machine kubeforge runs on, which has no
// kube-unpack when it joins on its own. Hidden: it is kube-unpack's
// code, for kubeforge's own use.
func NewCmdBundleUnpack() *cobra.Command {
	var dir, archive, check, keep string
	cmd := &cobra.Command{
		Use:    "unpack -C DIR [--sha256 SUM] [--check SUMS] [--keep PATH] < ARCHIVE",
		Short:  "Unpack a bundle archive (zstd or gzip) from stdin into DIR, checking its sums",
		Hidden: true,
		Args:   noArgs,
		RunE: func(*cobra.Command, []string) error {
			if dir == "" {
				return usageError{errors.New("-C DIR is required: the directory to extract into")}
			}
			return untar.UnpackAndKeep(os.Stdin, dir, archive, check, keep)
		},
	}
	cmd.Flags().StringVarP(&dir, "directory", "C", "", "extract into this directory")
	cmd.Flags().StringVar(&archive, "sha256", "", "the archive's sha256 (hex): refuse a stream with another")
	cmd.Flags().StringVar(&check, "check", "", "a file of sums (sha256sum's format) the extracted files must match")
	cmd.Flags().StringVar(&keep, "keep", "", "also write the archive to this path, once its sum matched")
	return cmd
}
