package app

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/spf13/cobra"
)

// commandExit carries a child process's exit code through to Main.
type commandExit struct{ code int }

func (e *commandExit) Error() string { return fmt.Sprintf("exit status %d", e.code) }
func (e *commandExit) ExitCode() int { return e.code }
func (e *commandExit) Silent() bool  { return true }

// NewCmdKubectl builds `kubeforge kubectl`.
func NewCmdKubectl(deps *Deps) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "kubectl -f CLUSTER_FILE -- ARGS...",
		Short: "Run the bundled kubectl against the cluster, as its admin",
		Example: `  kubeforge kubectl -f cluster.yaml -- get nodes -o wide
  kubeforge kubectl -f cluster.yaml -- -n kube-system logs deploy/coredns`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := loadCluster(deps, file)
			if err != nil {
				return err
			}
			state, err := stateDir(deps, c.Metadata.Name)
			if err != nil {
				return err
			}
			dir, m, err := loadBundle(deps.Global.Bundle)
			if err != nil {
				return err
			}
			f, _, ok := m.Program("kubectl")
			if !ok {
				return fmt.Errorf("the bundle in %s has no kubectl", dir)
			}
			admin := state.AdminConf()
			if _, err := os.Stat(admin); err != nil {
				return fmt.Errorf("%w: run 'kubeforge init -f %s' first", err, file)
			}
			kc := exec.CommandContext(cmd.Context(), filepath.Join(dir, f.Path), append([]string{"kubectl", "--kubeconfig=" + admin}, args...)...)
			kc.Stdin, kc.Stdout, kc.Stderr = deps.IO.In, deps.IO.Out, deps.IO.ErrOut
			err = kc.Run()
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				return &commandExit{code: exit.ExitCode()}
			}
			return err
		},
	}
	cmd.Flags().StringVarP(&file, clusterFileFlag, "f", "", "cluster file")
	return cmd
}
