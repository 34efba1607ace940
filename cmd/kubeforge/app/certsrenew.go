package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kubeforge/kubeforge/certs"
	"github.com/kubeforge/kubeforge/phases"
	"github.com/kubeforge/kubeforge/playbooks"
)

// runCertsRenewCluster is `certs renew NAMES -f FILE`: renewal on every
// node, rolling, or a recovery when certificates already expired.
func runCertsRenewCluster(ctx context.Context, deps *Deps, opts *CertsRenewOptions) error {
	c, err := loadCluster(deps, opts.File)
	if err != nil {
		return err
	}
	state, err := stateDir(deps, c.Metadata.Name)
	if err != nil {
		return err
	}
	playbook := "renew"
	expired, err := expiredLeaves(state)
	if err != nil {
		return err
	}
	if len(expired) > 0 {
		playbook = "renew-recover"
		fmt.Fprintf(deps.IO.Out, "certs renew: %s expired, so the cluster cannot take new certificates one control plane at a time:\n"+
			"recovering instead: every component restarts on its new certificates at once, and the kubelets whose\n"+
			"certificate expired join again with a fresh bootstrap token.\n", strings.Join(expired, ", "))
	}
	pb, err := playbooks.Load(playbook)
	if err != nil {
		return err
	}
	stamp := phases.BackupStamp(time.Now())
	a := action{
		playbook:    playbook,
		needsBundle: true,
		setup: func(_ context.Context, _ *Deps, run *actionRun, ao *ActionOptions) error {
			if err := setupPKIAndToken(run.Env, ao.DryRun); err != nil {
				return err
			}
			run.Runner.NewPhase = phases.Builder(map[string]func(*phases.Env) phases.Phase{
				"certs-renew":  func(env *phases.Env) phases.Phase { return phases.NewCertsRenew(env, opts.Names) },
				"certs-backup": func(env *phases.Env) phases.Phase { return phases.NewCertsBackup(env, stamp) },
			})
			return nil
		},
		afterOnFailure: true,
		after: func(_ context.Context, deps *Deps, run *actionRun) error {
			if run.Env.DryRun {
				return nil
			}
			fmt.Fprintf(deps.IO.Out, "\nEvery host keeps its certificates from before in %s/certs-%s.tar.gz.\n", phases.HostBackupDir, stamp)
			return nil
		},
	}
	err = runAction(ctx, deps, a, pb, &ActionOptions{File: opts.File, DryRun: opts.DryRun, Concurrency: opts.Concurrency})
	if err == nil && !opts.DryRun {
		fmt.Fprintf(deps.IO.Out, "Renewed: every component serves its new certificate.\n")
	}
	var se *phases.StepError
	again := fmt.Sprintf("'kubeforge certs renew %s -f %s'", strings.Join(opts.Names, " "), opts.File)
	switch {
	case err == nil || opts.DryRun:
	case errors.As(err, &se) && slices.Contains([]string{"connect", "facts", "renew-preflight"}, se.Phase):
		err = fmt.Errorf("%w\nNothing was renewed and no host changed: fix what the error names, then run %s again", err, again)
	default:
		err = fmt.Errorf("%w\nThe renewal stopped: each host is on its old or its new certificates, and the cluster works with both; "+
			"fix what the error names, then run %s again to finish", err, again)
	}
	return err
}

// expiredLeaves names the certificates of the state directory that have
// expired (CAs aside): then nothing is healthy to roll through.
func expiredLeaves(state string) ([]string, error) {
	entries, err := certs.Check(certs.Dir(state), time.Now())
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if !e.IsCA && e.Expired() {
			out = append(out, e.Name)
		}
	}
	return out, nil
}
