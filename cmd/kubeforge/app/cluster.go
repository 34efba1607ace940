package app

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/internal/statedir"
)

// clusterFileFlag is the flag every command that reads a cluster file has.
const clusterFileFlag = "file"

// loadCluster reads the cluster file and logs its warnings.
func loadCluster(deps *Deps, path string) (*config.Cluster, error) {
	if path == "" {
		return nil, usageError{errors.New("no cluster file: pass -f cluster.yaml ('kubeforge config example' prints one)")}
	}
	switch fi, err := os.Stat(path); {
	case errors.Is(err, os.ErrNotExist):
		return nil, usageError{fmt.Errorf("cluster file %s does not exist: check the path given to -f ('kubeforge config example' prints one)", path)}
	case err != nil:
		return nil, inputError{fmt.Errorf("cluster file: %w", err)}
	case fi.IsDir():
		return nil, usageError{fmt.Errorf("%s is a directory: -f takes the cluster file itself", path)}
	}
	c, warnings, err := config.Load(path)
	for _, w := range warnings {
		deps.Log.Warn(w, "file", path)
		fmt.Fprintf(deps.IO.ErrOut, "Warning: %s: %s\n", path, w)
	}
	if err != nil {
		var invalid *config.InvalidError
		if !errors.As(err, &invalid) {
			err = inputError{err} // unreadable
		}
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
func stateDir(deps *Deps, clusterName string) (statedir.Dir, error) {
	if deps.Global.StateDir != "" {
		abs, err := filepath.Abs(deps.Global.StateDir)
		return statedir.Dir(abs), err
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no home directory for the state directory: pass --state-dir: %w", err)
	}
	return statedir.Dir(filepath.Join(home, ".kubeforge", clusterName)), nil
}

// checkLocal checks what can be checked on this machine before any host
// is contacted: the key files exist and can be read, and the environment
// variables the cluster file names for secrets are set. Each problem
// names the field, once, and what to do.
func checkLocal(c *config.Cluster) error {
	var problems []string
	seen := map[string]bool{}
	say := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		if !seen[msg] {
			seen[msg] = true
			problems = append(problems, msg)
		}
	}
	for _, h := range c.Spec.Hosts {
		if h.Local {
			continue
		}
		s := h.SSH
		for field, p := range map[string]string{"keyPath": s.KeyPath, "bastionKeyPath": s.BastionKeyPath} {
			if p == "" {
				continue
			}
			if f, err := os.Open(p); err != nil {
				say("ssh.%s %s: %v", field, p, errors.Unwrap(err))
			} else {
				f.Close()
			}
		}
		for field, name := range map[string]string{"passphraseEnv": s.PassphraseEnv, "passwordEnv": s.PasswordEnv, "sudoPasswordEnv": s.SudoPasswordEnv} {
			if _, ok := os.LookupEnv(name); name != "" && !ok {
				say("ssh.%s names %s, which is not set: export it before running kubeforge", field, name)
			}
		}
	}
	if len(problems) == 0 {
		return nil
	}
	sort.Strings(problems)
	return inputError{fmt.Errorf("before connecting to any host:\n  %s", strings.Join(problems, "\n  "))}
}
