package app

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kubeforge/kubeforge/components/bundle"
	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/internal/host"
	"github.com/kubeforge/kubeforge/internal/ssh"
	"github.com/kubeforge/kubeforge/phases"
	"github.com/kubeforge/kubeforge/playbooks"
)

// ActionOptions are the flags of every command that plays a playbook.
type ActionOptions struct {
	File        string
	DryRun      bool
	SkipPhases  []string
	Concurrency int
	// Phase is set by `kubeforge <action> phase <name>`.
	Phase string
	// IgnorePreflight lists preflight checks to downgrade to warnings.
	IgnorePreflight []string
}

// action describes a command that plays a playbook.
type action struct {
	playbook string
	use      string
	short    string
	long     string
	example  string
	// needsBundle loads the bundle manifest for the phases.
	needsBundle bool
	// flags adds the action's own flags, to the command and to each of
	// its phase commands.
	flags func(f *pflag.FlagSet)
	// setup completes the run before it starts: the phases' environment,
	// the hosts (runner.Targets), phases built with the action's own data
	// (runner.NewPhase).
	setup func(ctx context.Context, deps *Deps, run *actionRun, opts *ActionOptions) error
	// after runs when the playbook succeeded (print a report).
	after func(ctx context.Context, deps *Deps, run *actionRun) error
	// afterOnFailure runs after too when a step failed (a partial report).
	afterOnFailure bool
	// preflightFlag adds --ignore-preflight-errors.
	preflightFlag bool
}

// actionRun is one execution: the cluster, the connected hosts, the
// phases' environment and the runner.
type actionRun struct {
	Cluster *config.Cluster
	Pool    *phases.Pool
	Env     *phases.Env
	Runner  *phases.Runner
	// File is the cluster file, as given.
	File string
}

// newActionCmd builds the cobra command of an action, with a `phase
// <name>` subcommand per step of its playbook (kubeadm's phase tree).
func newActionCmd(deps *Deps, a action, runF func(*ActionOptions) error) *cobra.Command {
	opts := &ActionOptions{}
	pb, err := playbooks.Load(a.playbook)
	if err != nil {
		panic(err) // the embedded playbooks are checked by tests
	}
	run := func(cmd *cobra.Command) error {
		if runF != nil {
			return runF(opts)
		}
		return runAction(cmd.Context(), deps, a, pb, opts)
	}
	cmd := &cobra.Command{
		Use:     a.use,
		Short:   a.short,
		Long:    a.long + "\n\nPhases: " + strings.Join(pb.Phases(), ", ") + ".",
		Example: a.example,
		Args:    noArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return run(cmd) },
	}
	addActionFlags(cmd, opts, true)
	if a.preflightFlag {
		cmd.Flags().StringSliceVar(&opts.IgnorePreflight, "ignore-preflight-errors", nil,
			"preflight checks whose failure is only a warning, e.g. Swap,Port-6443 (all: every check)")
	}
	if a.flags != nil {
		a.flags(cmd.Flags())
	}
	cmd.AddCommand(phaseCommands(pb, func(sub *cobra.Command, name string) {
		addActionFlags(sub, opts, false)
		if a.flags != nil {
			a.flags(sub.Flags())
		}
		sub.RunE = func(cmd *cobra.Command, _ []string) error {
			opts.Phase = name
			return run(cmd)
		}
	}))
	return cmd
}

// phaseCommands is `<action> phase NAME`, one subcommand per step;
// complete adds each one's flags and RunE.
func phaseCommands(pb *playbooks.Playbook, complete func(sub *cobra.Command, name string)) *cobra.Command {
	phaseCmd := &cobra.Command{
		Use:   "phase NAME",
		Short: "Run one phase of " + pb.Name + " (and the read-only ones it needs)",
		Args:  noArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	for _, step := range pb.Steps {
		phase, _ := phases.New(step.Phase, &phases.Env{})
		where := "on " + string(step.Hosts) + " hosts"
		if step.Hosts == playbooks.Admin {
			where = "on the admin machine"
		}
		sub := &cobra.Command{
			Use:   step.Phase,
			Short: phase.Title() + " (" + where + ")",
			Args:  noArgs,
		}
		complete(sub, step.Phase)
		phaseCmd.AddCommand(sub)
	}
	return phaseCmd
}

func addActionFlags(cmd *cobra.Command, opts *ActionOptions, withSkip bool) {
	f := cmd.Flags()
	f.StringVarP(&opts.File, clusterFileFlag, "f", "", "cluster file")
	f.BoolVar(&opts.DryRun, "dry-run", false, "print what each phase would change on each host, and change nothing")
	f.IntVar(&opts.Concurrency, "parallel", 10, "hosts worked on at once")
	if withSkip {
		f.StringSliceVar(&opts.SkipPhases, "skip-phases", nil, "phases not to run (comma-separated)")
	}
}

// runAction plays an action's playbook over the hosts of a cluster file.
func runAction(ctx context.Context, deps *Deps, a action, pb *playbooks.Playbook, opts *ActionOptions) error {
	if err := checkActionOptions(pb, opts); err != nil {
		return err
	}
	c, err := loadCluster(deps, opts.File)
	if err != nil {
		return err
	}
	if err := checkLocal(c); err != nil {
		return err
	}
	var b loadedBundle
	if a.needsBundle {
		if b.dir, b.manifest, err = loadBundle(deps.Global.Bundle); err != nil {
			return err
		}
	}
	state, err := stateDir(deps, c.Metadata.Name)
	if err != nil {
		return err
	}
	if deps.Global.LogFile == "" {
		if err := deps.useLogFile(defaultLogFile(state, a.playbook)); err != nil {
			return err
		}
	}
	env := &phases.Env{Cluster: c, StateDir: state, BundleDir: b.dir, Bundle: b.manifest, Log: deps.Log, Out: deps.IO.Out,
		DryRun: opts.DryRun, IgnorePreflight: opts.IgnorePreflight}
	known := &ssh.KnownHosts{
		Path: filepath.Join(state, "known_hosts"),
		OnNewKey: func(hostName, addr, fp string) {
			fmt.Fprintf(deps.IO.Out, "host %s (%s): new SSH host key %s, trusted on first use and recorded in %s\n",
				hostName, addr, fp, filepath.Join(state, "known_hosts"))
		},
	}
	secrets := envSecrets{deps: deps}
	pool := phases.NewPool(func(ctx context.Context, spec *config.Host) (*host.Host, error) {
		return host.Connect(ctx, spec, secrets, known, deps.Log)
	})
	defer pool.Close()
	env.ControlHost = phases.ControlHostFrom(pool, c)
	env.Connect = pool.Get
	run := &actionRun{Cluster: c, Pool: pool, Env: env, Runner: newRunner(deps, env, pool, opts), File: opts.File}
	if a.setup != nil {
		if err := a.setup(ctx, deps, run, opts); err != nil {
			return err
		}
	}
	return play(ctx, deps, a, pb, run)
}

// checkActionOptions checks the flags a playbook run reads, before the
// banner, the log file or any host.
func checkActionOptions(pb *playbooks.Playbook, opts *ActionOptions) error {
	if opts.Concurrency < 1 {
		return usageError{fmt.Errorf("--parallel %d: give 1 or more (hosts worked on at once)", opts.Concurrency)}
	}
	for _, s := range opts.SkipPhases {
		if !slices.Contains(pb.Phases(), s) {
			return usageError{fmt.Errorf("--skip-phases: %s has no phase %q (its phases: %s)", pb.Name, s, strings.Join(pb.Phases(), ", "))}
		}
	}
	return nil
}

// loadedBundle is the bundle a run installs from.
type loadedBundle struct {
	dir      string
	manifest *bundle.Manifest
}

func newRunner(deps *Deps, env *phases.Env, pool *phases.Pool, opts *ActionOptions) *phases.Runner {
	return &phases.Runner{
		Env:         env,
		Pool:        pool,
		Concurrency: opts.Concurrency,
		DryRun:      opts.DryRun,
		Skip:        opts.SkipPhases,
		Only:        opts.Phase,
		Out:         deps.IO.Out,
		Log:         deps.Log,
	}
}

// play prints the banner, runs the playbook and the action's report.
func play(ctx context.Context, deps *Deps, a action, pb *playbooks.Playbook, run *actionRun) error {
	hosts := fmt.Sprintf("%d hosts", len(run.Cluster.Spec.Hosts))
	if t := run.Runner.Targets; len(t) > 0 {
		hosts = fmt.Sprintf("%d of %d hosts (%s)", len(t), len(run.Cluster.Spec.Hosts), strings.Join(t, ", "))
	}
	fmt.Fprintf(deps.IO.Out, "%s: cluster %s, %s, state in %s, log in %s\n",
		pb.Name, run.Cluster.Metadata.Name, hosts, run.Env.StateDir, deps.LogPath)
	_, err := run.Runner.Run(ctx, pb)
	if a.after != nil && (err == nil || a.afterOnFailure) {
		if aerr := a.after(ctx, deps, run); err == nil {
			err = aerr
		}
	}
	return err
}
