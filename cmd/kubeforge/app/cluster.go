package app

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kubeforge/kubeforge/internal/config"
)

// clusterFileFlag is the flag every command that reads a cluster file has.
const clusterFileFlag = "file"

// loadCluster reads the cluster file and logs its warnings.
func loadCluster(deps *Deps, path string) (*config.Cluster, error) {
	if path == "" {
		return nil, usageError{errors.New("no cluster file: pass -f cluster.yaml ('kubeforge config example' prints one)")}
	}
	c, warnings, err := config.Load(path)
	for _, w := range warnings {
		deps.Log.Warn(w, "file", path)
		fmt.Fprintf(deps.IO.ErrOut, "Warning: %s: %s\n", path, w)
	}
	if err != nil {
		return nil, err
	}
	// Key paths: ~ is the user's home, relative paths are relative to the
	// cluster file, so the file works from any directory.
	base := filepath.Dir(path)
	home, _ := os.UserHomeDir()
	for i := range c.Spec.Hosts {
		s := &c.Spec.Hosts[i].SSH
		s.KeyPath = expandPath(s.KeyPath, base, home)
		s.BastionKeyPath = expandPath(s.BastionKeyPath, base, home)
	}
	return c, nil
}

func expandPath(p, base, home string) string {
	switch {
	case p == "":
		return ""
	case p == "~" || strings.HasPrefix(p, "~/"):
		return filepath.Join(home, strings.TrimPrefix(p, "~"))
	case filepath.IsAbs(p):
		return p
	default:
		return filepath.Join(base, p)
	}
}

// stateDir is where kubeforge keeps a cluster's PKI, known_hosts,
// admin.conf and logs: --state-dir, else ~/.kubeforge/<cluster name>.
func stateDir(deps *Deps, clusterName string) (string, error) {
	if deps.Global.StateDir != "" {
		return filepath.Abs(deps.Global.StateDir)
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no home directory for the state directory: pass --state-dir: %w", err)
	}
	return filepath.Join(home, ".kubeforge", clusterName), nil
}
