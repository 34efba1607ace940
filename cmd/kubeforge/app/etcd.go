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
	"golang.org/x/term"

	"github.com/kubeforge/kubeforge/phases"
	"github.com/kubeforge/kubeforge/playbooks"
)

// SnapshotOptions are the flags of `kubeforge etcd snapshot`.
type SnapshotOptions struct {
	File         string
	Output       string
	Yes          bool
	DryRun       bool
	InstallTimer bool
	RemoveTimer  bool
	Keep         int
	Schedule     string
}

// NewCmdEtcd builds `kubeforge etcd`.
func NewCmdEtcd(deps *Deps) *cobra.Command {
	opts := &SnapshotOptions{}
	cmd := &cobra.Command{
		Use:   "etcd",
		Short: "Back up and restore the cluster's etcd",
		Args:  noArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	snap := &cobra.Command{
		Use:   "snapshot",
		Short: "Save an etcd snapshot to this machine, or restore one",
		Args:  noArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	save := &cobra.Command{
		Use:   "save -f CLUSTER_FILE [-o FILE]",
		Short: "Take a snapshot on a healthy etcd member and bring it here",
		Long: `Take an etcd snapshot on the first etcd member that is healthy, copy it to this machine
(default: the state directory's backups/), check it with etcdutl (it must restore), and
record its sha256 beside it (FILE.sha256). Nothing stops: the cluster keeps serving.

With --install-timer, every etcd member instead takes its own snapshots on a schedule
(a systemd timer, kubeforge-etcd-snapshot.timer) into ` + phases.ScheduledSnapshots + `, checked
and with their sha256, keeping the --keep newest. A reset leaves them there.`,
		Example: `  kubeforge etcd snapshot save -f cluster.yaml
  kubeforge etcd snapshot save -f cluster.yaml -o /backups/prod-$(date +%F).db

  # A snapshot every day on every member, the last 14 kept
  kubeforge etcd snapshot save -f cluster.yaml --install-timer --keep 14`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.InstallTimer || opts.RemoveTimer {
				return runSnapshotTimer(cmd.Context(), deps, opts)
			}
			return runSnapshotSave(cmd.Context(), deps, opts)
		},
	}
	save.Flags().StringVarP(&opts.Output, "output", "o", "", "the snapshot file to write (default: <state dir>/backups/etcd-<cluster>-<time>.db)")
	save.Flags().BoolVar(&opts.InstallTimer, "install-timer", false, "take snapshots on a schedule on every etcd member instead (into "+phases.ScheduledSnapshots+")")
	save.Flags().BoolVar(&opts.RemoveTimer, "remove-timer", false, "stop the scheduled snapshots (the files stay)")
	save.Flags().IntVar(&opts.Keep, "keep", phases.DefaultSnapshotKeep, "with --install-timer: how many snapshots each member keeps")
	save.Flags().StringVar(&opts.Schedule, "schedule", "daily", "with --install-timer: "+strings.Join(phases.SnapshotSchedules, ", "))
	save.Flags().BoolVar(&opts.DryRun, "dry-run", false, "with --install-timer or --remove-timer: print what would change, and change nothing")
	restore := &cobra.Command{
		Use:   "restore SNAPSHOT -f CLUSTER_FILE [--yes]",
		Short: "Restore every etcd member from a snapshot (the cluster goes back to that moment)",
		Long: `Restore the cluster's etcd from a snapshot. The file is checked first (it must restore with
etcdutl, and match the sha256 recorded beside it): a truncated or corrupt snapshot is
refused before anything stops. Then the API servers and every etcd member stop, each
member's data directory is kept aside (/var/lib/etcd.before-restore-<time>) and replaced
by the snapshot (the same member names, a new cluster), etcd starts on every member at
once, the control planes one at a time, and the nodes are Ready again.

Everything written to the cluster after the snapshot is lost: it asks first, unless --yes.`,
		Example: `  kubeforge etcd snapshot restore ~/.kubeforge/prod/backups/etcd-prod-20261122T061404Z.db -f cluster.yaml`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{errors.New("name the snapshot file to restore")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSnapshotRestore(cmd.Context(), deps, opts, args[0])
		},
	}
	restore.Flags().BoolVar(&opts.Yes, "yes", false, "do not ask before restoring")
	restore.Flags().BoolVar(&opts.DryRun, "dry-run", false, "check the snapshot and print what would change, and change nothing")
	for _, c := range []*cobra.Command{save, restore} {
		c.Flags().StringVarP(&opts.File, clusterFileFlag, "f", "", "cluster file")
		snap.AddCommand(c)
	}
	cmd.AddCommand(snap)
	return cmd
}

func runSnapshotSave(ctx context.Context, deps *Deps, opts *SnapshotOptions) error {
	pb, err := playbooks.Load("etcd-snapshot")
	if err != nil {
		return err
	}
	var save *phases.SnapshotSavePhase // built in setup, read for the report
	a := action{
		playbook:    "etcd-snapshot",
		needsBundle: true,
		setup: func(_ context.Context, _ *Deps, run *actionRun, _ *ActionOptions) error {
			out := opts.Output
			if out == "" {
				out = filepath.Join(run.Env.StateDir, "backups", fmt.Sprintf("etcd-%s-%s.db", run.Cluster.Metadata.Name, phases.BackupStamp(time.Now())))
			} else if abs, err := filepath.Abs(out); err == nil {
				out = abs
			}
			save = phases.NewSnapshotSave(run.Env, out)
			run.Runner.NewPhase = phases.Builder(map[string]func(*phases.Env) phases.Phase{
				"snapshot-save": func(*phases.Env) phases.Phase { return save },
			})
			return nil
		},
		after: func(_ context.Context, deps *Deps, _ *actionRun) error {
			if i := save.Info; i != nil {
				fmt.Fprintf(deps.IO.Out, "\nSnapshot of %s's etcd (from %s): revision %d, %d keys, %d bytes\n  %s\n  sha256 %s (in %s.sha256)\n",
					opts.File, i.Member, i.Revision, i.TotalKey, i.TotalSize, i.File, i.SHA256, i.File)
			}
			return nil
		},
	}
	return runAction(ctx, deps, a, pb, &ActionOptions{File: opts.File, Concurrency: 10})
}

// runSnapshotTimer installs or removes the scheduled snapshots.
func runSnapshotTimer(ctx context.Context, deps *Deps, opts *SnapshotOptions) error {
	switch {
	case opts.InstallTimer && opts.RemoveTimer:
		return usageError{errors.New("--install-timer and --remove-timer: give one")}
	case opts.Output != "":
		return usageError{errors.New("--output: the timer's snapshots stay on the members (" + phases.ScheduledSnapshots + "); save one here without --install-timer")}
	case opts.InstallTimer && (opts.Keep < 1 || opts.Keep > 1000):
		return usageError{fmt.Errorf("--keep %d: give how many snapshots each member keeps, 1 to 1000", opts.Keep)}
	case opts.InstallTimer && !slices.Contains(phases.SnapshotSchedules, opts.Schedule):
		return usageError{fmt.Errorf("--schedule %q: give one of %s", opts.Schedule, strings.Join(phases.SnapshotSchedules, ", "))}
	}
	keep := opts.Keep
	if opts.RemoveTimer {
		keep = 0
	}
	pb, err := playbooks.Load("etcd-snapshot-timer")
	if err != nil {
		return err
	}
	a := action{
		playbook:    "etcd-snapshot-timer",
		needsBundle: false,
		setup: func(_ context.Context, _ *Deps, run *actionRun, _ *ActionOptions) error {
			run.Runner.NewPhase = phases.Builder(map[string]func(*phases.Env) phases.Phase{
				"snapshot-timer": func(env *phases.Env) phases.Phase { return phases.NewSnapshotTimer(env, keep, opts.Schedule) },
			})
			return nil
		},
		after: func(_ context.Context, deps *Deps, run *actionRun) error {
			switch {
			case run.Env.DryRun:
			case keep == 0:
				fmt.Fprintf(deps.IO.Out, "\nThe snapshot timer is gone; the snapshots it took stay in %s.\n", phases.ScheduledSnapshots)
			default:
				fmt.Fprintf(deps.IO.Out, "\nEvery etcd member now saves a snapshot %s into %s, keeping the %d newest\n"+
					"(systemctl list-timers %s.timer; journalctl -u %s says what it saved).\n",
					opts.Schedule, phases.ScheduledSnapshots, keep, phases.SnapshotTimerUnit, phases.SnapshotTimerUnit)
			}
			return nil
		},
	}
	return runAction(ctx, deps, a, pb, &ActionOptions{File: opts.File, DryRun: opts.DryRun, Concurrency: 10})
}

func runSnapshotRestore(ctx context.Context, deps *Deps, opts *SnapshotOptions, file string) error {
	abs, err := filepath.Abs(file)
	if err != nil {
		return err
	}
	switch fi, err := os.Stat(abs); {
	case err != nil:
		return usageError{fmt.Errorf("snapshot %s: %w", file, err)}
	case fi.IsDir():
		return usageError{fmt.Errorf("%s is a directory: name the snapshot file", file)}
	}
	if !opts.Yes && !opts.DryRun {
		if err := confirm(deps, fmt.Sprintf("Restore %s? Everything written to the cluster since it was taken is lost, and the API is down meanwhile.", file)); err != nil {
			return err
		}
	}
	pb, err := playbooks.Load("etcd-restore")
	if err != nil {
		return err
	}
	stamp := phases.BackupStamp(time.Now())
	start := time.Now()
	a := action{
		playbook:    "etcd-restore",
		needsBundle: true,
		setup: func(_ context.Context, _ *Deps, run *actionRun, ao *ActionOptions) error {
			if err := setupPKIAndToken(run.Env, ao.DryRun); err != nil {
				return err
			}
			run.Runner.NewPhase = phases.Builder(map[string]func(*phases.Env) phases.Phase{
				"snapshot-check":   func(env *phases.Env) phases.Phase { return phases.NewSnapshotCheck(env, abs) },
				"snapshot-restore": func(env *phases.Env) phases.Phase { return phases.NewSnapshotRestore(env, abs, stamp) },
			})
			return nil
		},
		after: func(_ context.Context, deps *Deps, run *actionRun) error {
			if !run.Env.DryRun {
				fmt.Fprintf(deps.IO.Out, "\nRestored %s in %s. Each member keeps its data from before in %s.before-restore-%s.\n",
					file, time.Since(start).Round(100*time.Millisecond), phases.EtcdDataDir, stamp)
			}
			return nil
		},
	}
	return runAction(ctx, deps, a, pb, &ActionOptions{File: opts.File, DryRun: opts.DryRun, Concurrency: 10})
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
