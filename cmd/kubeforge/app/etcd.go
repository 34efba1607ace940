package app

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/kubeforge/kubeforge/internal/statedir"
	"github.com/kubeforge/kubeforge/phases"
)

// SnapshotOptions are the own flags of `kubeforge etcd snapshot`.
type SnapshotOptions struct {
	Output       string
	Yes          bool
	InstallTimer bool
	RemoveTimer  bool
	Keep         int
	Schedule     string
}

// NewCmdEtcd builds `kubeforge etcd`.
func NewCmdEtcd(deps *Deps) *cobra.Command {
	cmd := groupCmd("etcd", "Back up and restore the cluster's etcd", "")
	snap := groupCmd("snapshot", "Save an etcd snapshot to this machine, or restore one", "")
	snap.AddCommand(NewCmdSnapshotSave(deps, nil), NewCmdSnapshotRestore(deps, nil))
	cmd.AddCommand(snap)
	return cmd
}

// NewCmdSnapshotSave builds `kubeforge etcd snapshot save`.
func NewCmdSnapshotSave(deps *Deps, runF func(*ActionOptions, []string) error) *cobra.Command {
	opts := &SnapshotOptions{}
	s := &snapshotSave{opts: opts}
	return newActionCmd(deps, action{
		playbook: "etcd-snapshot",
		choose:   s.choose,
		use:      "save -f CLUSTER_FILE [-o FILE]",
		short:    "Take a snapshot on a healthy etcd member and bring it here",
		long: `Take an etcd snapshot on the first etcd member that is healthy, copy it to this machine
(default: the state directory's backups/), check it with etcdutl (it must restore), and
record its sha256 beside it (FILE.sha256). Nothing stops: the cluster keeps serving.

With --install-timer, every etcd member instead takes its own snapshots on a schedule
(a systemd timer, kubeforge-etcd-snapshot.timer) into ` + phases.ScheduledSnapshots + `, checked
and with their sha256, keeping the --keep newest. A reset leaves them there.`,
		example: `  kubeforge etcd snapshot save -f cluster.yaml
  kubeforge etcd snapshot save -f cluster.yaml -o /backups/prod-$(date +%F).db

  # A snapshot every day on every member, the last 14 kept
  kubeforge etcd snapshot save -f cluster.yaml --install-timer --keep 14`,
		flags: func(f *pflag.FlagSet) {
			f.StringVarP(&opts.Output, "output", "o", "", "the snapshot file to write (default: <state dir>/backups/etcd-<cluster>-<time>.db)")
			f.BoolVar(&opts.InstallTimer, "install-timer", false, "take snapshots on a schedule on every etcd member instead (into "+phases.ScheduledSnapshots+")")
			f.BoolVar(&opts.RemoveTimer, "remove-timer", false, "stop the scheduled snapshots (the files stay)")
			f.IntVar(&opts.Keep, "keep", phases.DefaultSnapshotKeep, "with --install-timer: how many snapshots each member keeps")
			f.StringVar(&opts.Schedule, "schedule", "daily", "with --install-timer: "+strings.Join(phases.SnapshotSchedules, ", "))
		},
		check:  s.check,
		bundle: bundleIfThere,
		setup:  s.setup,
		after:  s.after,
	}, runF)
}

// snapshotSave is `etcd snapshot save`: a snapshot brought here, or the
// scheduled snapshots installed or removed.
type snapshotSave struct {
	opts  *SnapshotOptions
	timer bool
	save  *phases.SnapshotSavePhase // built in setup, read for the report
}

func (s *snapshotSave) check(ao *ActionOptions, _ []string) error {
	o := s.opts
	s.timer = o.InstallTimer || o.RemoveTimer
	switch {
	case !s.timer:
		return nil
	case o.InstallTimer && o.RemoveTimer:
		return usageError{errors.New("--install-timer and --remove-timer: give one")}
	case o.Output != "":
		return usageError{errors.New("--output: the timer's snapshots stay on the members (" + phases.ScheduledSnapshots + "); save one here without --install-timer")}
	case o.InstallTimer && (o.Keep < 1 || o.Keep > 1000):
		return usageError{fmt.Errorf("--keep %d: give how many snapshots each member keeps, 1 to 1000", o.Keep)}
	case o.InstallTimer && !slices.Contains(phases.SnapshotSchedules, o.Schedule):
		return usageError{fmt.Errorf("--schedule %q: give one of %s", o.Schedule, strings.Join(phases.SnapshotSchedules, ", "))}
	}
	return nil
}

func (s *snapshotSave) choose(*Deps, statedir.Dir) (string, error) {
	if s.timer {
		return "etcd-snapshot-timer", nil
	}
	return "etcd-snapshot", nil
}

func (s *snapshotSave) setup(_ context.Context, deps *Deps, run *actionRun) error {
	if s.timer {
		keep := s.opts.Keep
		if s.opts.RemoveTimer {
			keep = 0
		}
		run.Runner.NewPhase = phases.Builder(map[string]func(*phases.Env) phases.Phase{
			"snapshot-timer": func(env *phases.Env) phases.Phase { return phases.NewSnapshotTimer(env, keep, s.opts.Schedule) },
		})
		return nil
	}
	if run.Env.Bundle == nil { // etcdutl checks the snapshot
		_, _, err := loadBundle(deps.Global.Bundle)
		return err
	}
	out := s.opts.Output
	if out == "" {
		out = run.Env.StateDir.Snapshot(run.Cluster.Metadata.Name, time.Now())
	} else if abs, err := filepath.Abs(out); err == nil {
		out = abs
	}
	s.save = phases.NewSnapshotSave(run.Env, out)
	run.Runner.NewPhase = phases.Builder(map[string]func(*phases.Env) phases.Phase{
		"snapshot-save": func(*phases.Env) phases.Phase { return s.save },
	})
	return nil
}

func (s *snapshotSave) after(_ context.Context, _ *Deps, run *actionRun) error {
	out := run.Out
	switch {
	case !s.timer:
		if i := s.save.Info; i != nil {
			fmt.Fprintf(out, "\nSnapshot of %s's etcd (from %s): revision %d, %d keys, %d bytes\n  %s\n  sha256 %s (in %s.sha256)\n",
				run.File, i.Member, i.Revision, i.TotalKey, i.TotalSize, i.File, i.SHA256, i.File)
		}
	case run.Env.DryRun:
	case s.opts.RemoveTimer:
		fmt.Fprintf(out, "\nThe snapshot timer is gone; the snapshots it took stay in %s.\n", phases.ScheduledSnapshots)
	default:
		fmt.Fprintf(out, "\nEvery etcd member now saves a snapshot %s into %s, keeping the %d newest\n"+
			"(systemctl list-timers %s.timer; journalctl -u %s says what it saved).\n",
			s.opts.Schedule, phases.ScheduledSnapshots, s.opts.Keep, phases.SnapshotTimerUnit, phases.SnapshotTimerUnit)
	}
	return nil
}

// NewCmdSnapshotRestore builds `kubeforge etcd snapshot restore`.
func NewCmdSnapshotRestore(deps *Deps, runF func(*ActionOptions, []string) error) *cobra.Command {
	opts := &SnapshotOptions{}
	var abs, stamp string
	var start time.Time
	return newActionCmd(deps, action{
		playbook: "etcd-restore",
		use:      "restore SNAPSHOT -f CLUSTER_FILE [--yes]",
		short:    "Restore every etcd member from a snapshot (the cluster goes back to that moment)",
		long: `Restore the cluster's etcd from a snapshot. The file is checked first (it must restore with
etcdutl, and match the sha256 recorded beside it): a truncated or corrupt snapshot is
refused before anything stops. Then the API servers and every etcd member stop, each
member's data directory is kept aside (/var/lib/etcd.before-restore-<time>) and replaced
by the snapshot (the same member names, a new cluster), etcd starts on every member at
once, the control planes one at a time, and the nodes are Ready again.

Everything written to the cluster after the snapshot is lost: it asks first, unless --yes.`,
		example: `  kubeforge etcd snapshot restore ~/.kubeforge/prod/backups/etcd-prod-20261122T061404Z.db -f cluster.yaml`,
		args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{errors.New("name the snapshot file to restore")}
			}
			return nil
		},
		flags: func(f *pflag.FlagSet) {
			f.BoolVar(&opts.Yes, "yes", false, "do not ask before restoring")
		},
		check: func(ao *ActionOptions, args []string) error {
			var err error
			if abs, err = filepath.Abs(args[0]); err != nil {
				return err
			}
			switch fi, err := os.Stat(abs); {
			case err != nil:
				return usageError{fmt.Errorf("snapshot %s: %w", args[0], err)}
			case fi.IsDir():
				return usageError{fmt.Errorf("%s is a directory: name the snapshot file", args[0])}
			}
			if !opts.Yes && !ao.DryRun {
				return confirm(deps, fmt.Sprintf("Restore %s? Everything written to the cluster since it was taken is lost, and the API is down meanwhile.", args[0]))
			}
			return nil
		},
		bundle: bundleRequired,
		setup: func(_ context.Context, _ *Deps, run *actionRun) error {
			if err := setupPKIAndToken(run.Env, run.Opts.DryRun); err != nil {
				return err
			}
			stamp, start = statedir.Stamp(time.Now()), time.Now()
			run.Runner.NewPhase = phases.Builder(map[string]func(*phases.Env) phases.Phase{
				"snapshot-check":   func(env *phases.Env) phases.Phase { return phases.NewSnapshotCheck(env, abs) },
				"snapshot-restore": func(env *phases.Env) phases.Phase { return phases.NewSnapshotRestore(env, abs, stamp) },
			})
			return nil
		},
		after: func(_ context.Context, _ *Deps, run *actionRun) error {
			if !run.Env.DryRun {
				fmt.Fprintf(run.Out, "\nRestored %s in %s. Each member keeps its data from before in %s.before-restore-%s.\n",
					run.Args[0], time.Since(start).Round(100*time.Millisecond), phases.EtcdDataDir, stamp)
			}
			return nil
		},
	}, runF)
}

// confirm asks a yes/no question on the terminal; without one, it refuses
// (pass --yes).
func confirm(deps *Deps, question string) error {
	f, ok := deps.IO.In.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return usageError{errors.New(question + " There is no terminal to ask on: pass --yes")}
	}
	fmt.Fprintf(deps.IO.ErrOut, "%s [y/N] ", question)
	line, _ := bufio.NewReader(f).ReadString('\n')
	if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
		return usageError{errors.New("not confirmed: nothing changed")}
	}
	return nil
}
