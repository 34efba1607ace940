package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/kubeforge/kubeforge/certs"
	"github.com/kubeforge/kubeforge/internal/statedir"
	"github.com/kubeforge/kubeforge/phases"
)

// certsRenewRun is `certs renew ... -f FILE`: a renewal on every node,
// rolling; a recovery when certificates already expired; or the renewal
// timer installed or removed.
type certsRenewRun struct {
	opts     *CertsRenewOptions
	playbook string
	stamp    string
	binary   string // the kubeforge binary the timer runs
}

// choose picks the playbook: the timer's, or a recovery when the state
// directory's certificates have expired (nothing is healthy to roll
// through), else the rolling renewal.
func (r *certsRenewRun) choose(deps *Deps, state statedir.Dir) (string, error) {
	switch {
	case r.opts.InstallTimer || r.opts.RemoveTimer:
		r.playbook = "renew-timer"
		return r.playbook, nil
	}
	r.playbook = "renew"
	expired, err := expiredLeaves(state)
	if err != nil {
		return "", err
	}
	if len(expired) > 0 {
		r.playbook = "renew-recover"
		fmt.Fprintf(deps.IO.Out, "certs renew: %s expired, so the cluster cannot take new certificates one control plane at a time:\n"+
			"recovering instead: every component restarts on its new certificates at once, and the kubelets whose\n"+
			"certificate expired join again with a fresh bootstrap token.\n", strings.Join(expired, ", "))
	}
	return r.playbook, nil
}

func (r *certsRenewRun) setup(_ context.Context, deps *Deps, run *actionRun) error {
	if r.playbook == "renew-timer" {
		if r.opts.InstallTimer {
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("find this kubeforge binary to install it: %w", err)
			}
			r.binary = exe
		}
		run.Runner.NewPhase = phases.Builder(map[string]func(*phases.Env) phases.Phase{
			"renew-timer": func(env *phases.Env) phases.Phase { return phases.NewRenewTimer(env, r.binary) },
		})
		return nil
	}
	if run.Env.Bundle == nil {
		_, _, err := loadBundle(deps.Global.Bundle) // the renewal restarts components from the bundle: say why it is missing
		return err
	}
	if err := setupPKIAndToken(run.Env, run.Opts.DryRun); err != nil {
		return err
	}
	r.stamp = statedir.Stamp(time.Now())
	run.Runner.NewPhase = phases.Builder(map[string]func(*phases.Env) phases.Phase{
		"certs-renew":  func(env *phases.Env) phases.Phase { return phases.NewCertsRenew(env, r.opts.Names) },
		"certs-backup": func(env *phases.Env) phases.Phase { return phases.NewCertsBackup(env, r.stamp) },
	})
	return nil
}

// after reports the run, and on failure says what state the hosts are in
// and what to run again.
func (r *certsRenewRun) after(_ context.Context, deps *Deps, run *actionRun) error {
	err, out := run.Err, run.Out
	if r.playbook == "renew-timer" {
		switch {
		case err != nil || run.Env.DryRun:
		case r.binary == "":
			fmt.Fprintln(out, "\nThe renewal timer is gone from every control plane.")
		default:
			fmt.Fprintf(out, "\nEvery control plane now checks its certificates daily (systemctl list-timers %s.timer) and renews\n"+
				"them when less than %s remain, one control plane at a time; journalctl -u %s says what it did.\n"+
				"Each control plane now holds the etcd and front-proxy CA keys, as kubeadm's do.\n",
				phases.TimerUnit, humanDuration(phases.DefaultRenewWindow), phases.TimerUnit)
		}
		return err
	}
	if run.Env.DryRun {
		return err
	}
	fmt.Fprintf(out, "\nEvery host keeps its certificates from before in %s/certs-%s.tar.gz.\n", phases.HostBackupDir, r.stamp)
	if err == nil {
		fmt.Fprintf(out, "Renewed: every component serves its new certificate.\n")
		return nil
	}
	var se *phases.StepError
	again := fmt.Sprintf("'kubeforge certs renew %s -f %s'", strings.Join(r.opts.Names, " "), run.File)
	if errors.As(err, &se) && slices.Contains([]string{"connect", "facts", "renew-preflight"}, se.Phase) {
		return fmt.Errorf("%w\nNothing was renewed and no host changed: fix what the error names, then run %s again", err, again)
	}
	return fmt.Errorf("%w\nThe renewal stopped: each host is on its old or its new certificates, and the cluster works with both; "+
		"fix what the error names, then run %s again to finish", err, again)
}

// expiredLeaves names the certificates of the state directory that have
// expired (CAs aside): then nothing is healthy to roll through.
func expiredLeaves(state statedir.Dir) ([]string, error) {
	entries, err := certs.Check(state.PKI(), time.Now())
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
