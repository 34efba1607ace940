package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kubeforge/kubeforge/components/bundle"
	"github.com/kubeforge/kubeforge/internal/cluster"
	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/internal/host"
	"github.com/kubeforge/kubeforge/internal/ssh"
	"github.com/kubeforge/kubeforge/internal/statedir"
	"github.com/kubeforge/kubeforge/phases"
	"github.com/kubeforge/kubeforge/playbooks"
)

// ActionOptions are the flags every action has. They are parsed by
// addActionFlags and checked by checkActionOptions, for every action.
type ActionOptions struct {
	File   string
	DryRun bool
	// SkipPhases lists phases not to run.
	SkipPhases  []string
	Concurrency int
	// Hosts narrows the run to these hosts of the cluster file (--host),
	// for the actions that have the flag.
	Hosts []string
	// Phase is set by `kubeforge <action> phase <name>`.
	Phase string
	// IgnorePreflight lists preflight checks to downgrade to warnings.
	IgnorePreflight []string
}

// bundleUse is what an action needs of the bundle.
type bundleUse int

const (
	noBundle       bundleUse = iota
	bundleIfThere            // read when found (versions in a report)
	bundleRequired           // the phases install from it
)

// action declares a command that works on a cluster file's hosts: every
// such command (init, join, check, upload, status, reset, delete node,
// certs, etcd, token) is one of these, built by newActionCmd and run by
// runAction, so the common flags and the run's set-up (cluster file, state
// directory, log file, connections, the cluster client) have one owner.
type action struct {
	// playbook is what the action plays; its phases become `<action>
	// phase NAME` commands. "" plays nothing: the action's after does its
	// work with the run's cluster client (token).
	playbook string
	// choose picks another playbook at run time, from the action's flags
	// or the state directory (certs renew: the timer's, or a recovery).
	choose func(deps *Deps, state statedir.Dir) (string, error)
	// name names the log file of an action that plays nothing.
	name string

	use, short, long, example string
	// args checks the positional arguments (default: none); the run has
	// them in actionRun.Args.
	args cobra.PositionalArgs
	// local runs the command on this machine instead when isLocal says so
	// (by default: no cluster file given): certs --dir, join ENDPOINT.
	// Without it, -f is required.
	local   func(ctx context.Context, args []string) error
	isLocal func(opts *ActionOptions) bool
	// flags adds the action's own flags, to the command and to each of
	// its phase commands; check validates them first, before anything
	// is read (a usage error).
	flags func(f *pflag.FlagSet)
	check func(opts *ActionOptions, args []string) error

	bundle bundleUse
	// hosts is --host's help text; "" for an action without the flag.
	hosts string
	// preflight adds --ignore-preflight-errors.
	preflight bool
	// progress is where the progress lines go when not to the output:
	// the report is the output (status: io.Discard, the log has them;
	// -o json: stderr).
	progress func(deps *Deps) io.Writer

	// setup completes the run before it starts: the phases' environment,
	// the hosts (runner.Targets), phases built with the action's own data
	// (runner.NewPhase).
	setup func(ctx context.Context, deps *Deps, run *actionRun) error
	// after runs when the playbook succeeded (print a report);
	// afterOnFailure: also when a step failed (a partial report), and
	// reports: its result is the command's, the failure included (the
	// report said what failed: status, certs check-expiration).
	after          func(ctx context.Context, deps *Deps, run *actionRun) error
	afterOnFailure bool
	reports        bool
}

// actionRun is one execution: the cluster, the connected hosts, the
// phases' environment and the runner.
type actionRun struct {
	Cluster *config.Cluster
	Pool    *phases.Pool
	Env     *phases.Env
	Runner  *phases.Runner
	Opts    *ActionOptions
	// File is the cluster file, as given; Args the positional arguments.
	File string
	Args []string
	// Out is where the action's report goes (deps.IO.Out, also when the
	// progress is quiet).
	Out io.Writer
	// Err is the playbook's error, for an after that runs on failure.
	Err error
	// client is how Env.Client was made (see seeOnly).
	client cluster.Options
}

// seeOnly makes the run's phases see c, a part of the cluster file (what
// stays when a node is taken out), and ask the cluster about it alone.
func (r *actionRun) seeOnly(c *config.Cluster) {
	o := r.client
	o.Cluster = c
	r.Env.Cluster, r.Env.Client = c, r.Pool.Client(o)
}

// newActionCmd builds the cobra command of an action, with a `phase
// <name>` subcommand per step of its playbook (kubeadm's phase tree).
// runF replaces the run in tests, with the parsed options.
func newActionCmd(deps *Deps, a action, runF func(*ActionOptions, []string) error) *cobra.Command {
	opts := &ActionOptions{}
	var pb *playbooks.Playbook
	if a.playbook != "" {
		var err error
		if pb, err = playbooks.Load(a.playbook); err != nil {
			panic(err) // the embedded playbooks are checked by tests
		}
	}
	run := func(cmd *cobra.Command, args []string) error {
		if a.check != nil {
			if err := a.check(opts, args); err != nil {
				return err
			}
		}
		if runF != nil {
			return runF(opts, args)
		}
		if a.local != nil && (a.isLocal == nil && opts.File == "" || a.isLocal != nil && a.isLocal(opts)) {
			return a.local(cmd.Context(), args)
		}
		return runAction(cmd.Context(), deps, a, opts, args)
	}
	long := a.long
	if pb != nil {
		long += "\n\nPhases: " + strings.Join(pb.Phases(), ", ") + "."
	}
	args := a.args
	if args == nil {
		args = noArgs
	}
	cmd := &cobra.Command{
		Use:     a.use,
		Short:   a.short,
		Long:    long,
		Example: a.example,
		Args:    args,
		RunE:    run,
	}
	addActionFlags(cmd, opts, a, true)
	if pb != nil {
		cmd.AddCommand(phaseCommands(pb, func(sub *cobra.Command, name string) {
			addActionFlags(sub, opts, a, false)
			sub.RunE = func(cmd *cobra.Command, args []string) error {
				opts.Phase = name
				return run(cmd, args)
			}
		}))
	}
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

// addActionFlags adds the flags every action has, and the action's own.
func addActionFlags(cmd *cobra.Command, opts *ActionOptions, a action, top bool) {
	f := cmd.Flags()
	file := "cluster file"
	if a.local != nil {
		file = "cluster file (without it: " + localHelp(a) + ")"
	}
	f.StringVarP(&opts.File, clusterFileFlag, "f", "", file)
	f.BoolVar(&opts.DryRun, "dry-run", false, "print what each phase would change on each host, and change nothing")
	f.IntVar(&opts.Concurrency, "parallel", 10, "hosts worked on at once (serial steps: one at a time)")
	if top && a.playbook != "" {
		f.StringSliceVar(&opts.SkipPhases, "skip-phases", nil, "phases not to run (comma-separated)")
	}
	if a.hosts != "" {
		f.StringSliceVar(&opts.Hosts, "host", nil, a.hosts)
	}
	if a.preflight {
		f.StringSliceVar(&opts.IgnorePreflight, "ignore-preflight-errors", nil,
			"preflight checks whose failure is only a warning, e.g. Swap,Port-6443 (all: every check)")
	}
	if a.flags != nil {
		a.flags(f)
	}
}

func localHelp(a action) string {
	if strings.HasPrefix(a.use, "join") {
		return "join this machine"
	}
	return "work on this machine"
}

// runAction plays an action over the hosts of its cluster file.
func runAction(ctx context.Context, deps *Deps, a action, opts *ActionOptions, args []string) error {
	if err := checkActionOptions(nil, opts); err != nil {
		return err
	}
	c, err := loadCluster(deps, opts.File)
	if err != nil {
		return err
	}
	if err := checkHosts(c, opts.Hosts); err != nil {
		return err
	}
	if err := checkLocal(c); err != nil {
		return err
	}
	var b loadedBundle
	if a.bundle != noBundle {
		b.dir, b.manifest, err = loadBundle(deps.Global.Bundle)
		if err != nil && a.bundle == bundleRequired {
			return err
		}
	}
	state, err := stateDir(deps, c.Metadata.Name)
	if err != nil {
		return err
	}
	name := a.playbook
	if name == "" {
		name = a.name
	}
	if a.choose != nil {
		if name, err = a.choose(deps, state); err != nil {
			return err
		}
	}
	var pb *playbooks.Playbook
	if a.playbook != "" || a.choose != nil {
		if pb, err = playbooks.Load(name); err != nil {
			return err
		}
	}
	if err := checkActionOptions(pb, opts); err != nil {
		return err
	}
	if deps.Global.LogFile == "" {
		if err := deps.useLogFile(defaultLogFile(state, name)); err != nil {
			return err
		}
	}
	runDeps := deps
	if a.progress != nil {
		q := *deps
		q.IO.Out = a.progress(deps)
		runDeps = &q
	}
	known := &ssh.KnownHosts{
		Path: state.KnownHosts(),
		OnNewKey: func(hostName, addr, fp string) {
			fmt.Fprintf(runDeps.IO.Out, "host %s (%s): new SSH host key %s, trusted on first use and recorded in %s\n",
				hostName, addr, fp, state.KnownHosts())
		},
	}
	connect := deps.connect
	if connect == nil {
		connect = func(ctx context.Context, spec *config.Host) (*host.Host, error) {
			return host.Connect(ctx, spec, envSecrets{deps: deps}, known, deps.Log)
		}
	}
	run := newRun(runDeps, c, state, b, opts, connect, adminClient(state))
	defer run.Pool.Close()
	run.Out, run.Args, run.File = deps.IO.Out, args, opts.File
	run.Runner.Targets = opts.Hosts
	if a.setup != nil {
		var nothing nothingToDo
		if err := a.setup(ctx, deps, run); errors.As(err, &nothing) {
			fmt.Fprintln(deps.IO.Out, nothing.msg)
			return nil
		} else if err != nil {
			return err
		}
	}
	return play(ctx, runDeps, a, pb, run)
}

// nothingToDo, from an action's setup, ends the run with its message and
// no error (a join whose hosts are all nodes already).
type nothingToDo struct{ msg string }

func (n nothingToDo) Error() string { return n.msg }

// adminClient is how a run from the admin machine asks the cluster: as
// the state directory's super-admin, through the first ready control
// plane.
func adminClient(state statedir.Dir) cluster.Options {
	ca, cert, key := state.Etcd()
	return cluster.Options{Kubeconfig: state.SuperAdminConf(), Admin: true, CACert: state.CACert(),
		EtcdCA: ca, EtcdCert: cert, EtcdKey: key}
}

// newRun sets a run up: the phases' environment, the pool of connections
// that owns the cluster client, and the runner. Every action's run, and a
// machine's join of itself, is made here.
func newRun(deps *Deps, c *config.Cluster, state statedir.Dir, b loadedBundle, opts *ActionOptions,
	connect phases.ConnectFunc, client cluster.Options) *actionRun {
	env := &phases.Env{Cluster: c, StateDir: state, BundleDir: b.dir, Bundle: b.manifest, Log: deps.Log, Out: deps.IO.Out,
		DryRun: opts.DryRun, IgnorePreflight: opts.IgnorePreflight}
	pool := phases.NewPool(connect)
	client.Cluster, client.Log = c, deps.Log
	env.Client = pool.Client(client)
	env.Connect = pool.Get
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
	return &actionRun{Cluster: c, Pool: pool, Env: env, Runner: runner, Opts: opts, Out: deps.IO.Out, client: client}
}

// checkActionOptions checks the flags a playbook run reads, before the
// banner, the log file or any host.
func checkActionOptions(pb *playbooks.Playbook, opts *ActionOptions) error {
	if opts.Concurrency < 1 {
		return usageError{fmt.Errorf("--parallel %d: give 1 or more (hosts worked on at once)", opts.Concurrency)}
	}
	if pb == nil {
		return nil
	}
	for _, s := range opts.SkipPhases {
		if !slices.Contains(pb.Phases(), s) {
			return usageError{fmt.Errorf("--skip-phases: %s has no phase %q (its phases: %s)", pb.Name, s, strings.Join(pb.Phases(), ", "))}
		}
	}
	return nil
}

// checkHosts refuses a --host that the cluster file does not list.
func checkHosts(c *config.Cluster, hosts []string) error {
	for _, n := range hosts {
		if c.Host(n) == nil {
			var names []string
			for _, h := range c.Spec.Hosts {
				names = append(names, h.Name)
			}
			return usageError{fmt.Errorf("--host %s: the cluster file has no such host (it has %s): add it to the file first", n, strings.Join(names, ", "))}
		}
	}
	return nil
}

// loadedBundle is the bundle a run installs from.
type loadedBundle struct {
	dir      string
	manifest *bundle.Manifest
}

// play prints the banner, runs the playbook and the action's report.
func play(ctx context.Context, deps *Deps, a action, pb *playbooks.Playbook, run *actionRun) error {
	var err error
	if pb != nil {
		hosts := fmt.Sprintf("%d hosts", len(run.Cluster.Spec.Hosts))
		if t := run.Runner.Targets; len(t) > 0 {
			hosts = fmt.Sprintf("%d of %d hosts (%s)", len(t), len(run.Cluster.Spec.Hosts), strings.Join(t, ", "))
		}
		fmt.Fprintf(deps.IO.Out, "%s: cluster %s, %s, state in %s, log in %s\n",
			pb.Name, run.Cluster.Metadata.Name, hosts, run.Env.StateDir, deps.LogPath)
		_, err = run.Runner.Run(ctx, pb)
	}
	run.Err = err
	if a.after != nil && (err == nil || a.afterOnFailure || a.reports) {
		if aerr := a.after(ctx, deps, run); err == nil || a.reports {
			err = aerr
		}
	}
	return err
}

// checkOutput checks an -o flag: table or json.
func checkOutput(o string) error {
	if o != "table" && o != "json" {
		return usageError{fmt.Errorf("-o %q: table or json", o)}
	}
	return nil
}
