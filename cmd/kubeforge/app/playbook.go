package app

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

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
	// after runs when the playbook succeeded (print a report).
	after func(deps *Deps, run *actionRun) error
	// afterOnFailure runs after too when a step failed (a partial report).
	afterOnFailure bool
	// setup completes the phases' environment before the run.
	setup func(ctx context.Context, deps *Deps, env *phases.Env, opts *ActionOptions, pool *phases.Pool) error
	// preflightFlag adds --ignore-preflight-errors.
	preflightFlag bool
}

// actionRun is one execution: the cluster and the connected hosts.
type actionRun struct {
	Cluster *config.Cluster
	Pool    *phases.Pool
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

	phaseCmd := &cobra.Command{
		Use:   "phase NAME",
		Short: "Run one phase of " + a.playbook + " (and the read-only ones it needs)",
		Args:  noArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	for _, step := range pb.Steps {
		phase, _ := phases.New(step.Phase, &phases.Env{})
		name := step.Phase
		sub := &cobra.Command{
			Use:   name,
			Short: phase.Title() + " (on " + string(step.Hosts) + " hosts)",
			Args:  noArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				opts.Phase = name
				return run(cmd)
			},
		}
		addActionFlags(sub, opts, false)
		phaseCmd.AddCommand(sub)
	}
	cmd.AddCommand(phaseCmd)
	return cmd
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

func runAction(ctx context.Context, deps *Deps, a action, pb *playbooks.Playbook, opts *ActionOptions) error {
	c, err := loadCluster(deps, opts.File)
	if err != nil {
		return err
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
	env := &phases.Env{Cluster: c, StateDir: state, Log: deps.Log, Out: deps.IO.Out, DryRun: opts.DryRun, IgnorePreflight: opts.IgnorePreflight}
	if a.needsBundle {
		dir, m, err := loadBundle(deps.Global.Bundle)
		if err != nil {
			return err
		}
		env.BundleDir, env.Bundle = dir, m
	}
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
	env.ControlHost = func(ctx context.Context) (*host.Host, error) {
		first := c.FirstControlPlane()
		if first == nil {
			return nil, fmt.Errorf("the cluster file has no control plane")
		}
		return pool.Get(ctx, first)
	}
	if a.setup != nil {
		if err := a.setup(ctx, deps, env, opts, pool); err != nil {
			return err
		}
	}
	fmt.Fprintf(deps.IO.Out, "%s: cluster %s, %d hosts, state in %s, log in %s\n",
		a.playbook, c.Metadata.Name, len(c.Spec.Hosts), state, deps.LogPath)
	runner := &phases.Runner{
		Env:         env,
		Pool:        pool,
		Concurrency: opts.Concurrency,
		DryRun:      opts.DryRun,
		Skip:        opts.SkipPhases,
		Only:        opts.Phase,
		Out:         deps.IO.Out,
		Log:         deps.Log,
	}
	_, err = runner.Run(ctx, pb)
	if a.after != nil && (err == nil || a.afterOnFailure) {
		if aerr := a.after(deps, &actionRun{Cluster: c, Pool: pool}); err == nil {
			err = aerr
		}
	}
	return err
}
