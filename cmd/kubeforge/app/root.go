// Package app holds kubeforge's commands. It is the only package that sees
// cobra, viper, flags and the environment: it turns them into typed options
// and calls the packages that do the work.
package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/kubeforge/kubeforge/phases"
)

// EnvPrefix prefixes the environment variables that set flags:
// KUBEFORGE_LOG_FILE sets --log-file.
const EnvPrefix = "KUBEFORGE"

// IO is where commands read and write.
type IO struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
}

// StdIO is the process's standard streams.
func StdIO() IO { return IO{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr} }

// Deps is what every command gets from the root: the streams, the global
// options and the logger. Tests build their own.
type Deps struct {
	IO     IO
	Global *GlobalOptions
	// Log is set up once the flags are parsed (PersistentPreRun).
	Log     *slog.Logger
	logs    *logSink
	redact  *redactor
	LogPath string // the log file in use, if any
	// connect opens a host of a cluster file (nil: over SSH, or this
	// machine for local: true); tests pass a scripted transport.
	connect phases.ConnectFunc
}

// useLogFile sends the full log to path from now on.
func (d *Deps) useLogFile(path string) error {
	if err := d.logs.openFile(path); err != nil {
		return err
	}
	d.LogPath = path
	d.Log = d.logs.logger()
	return nil
}

// GlobalOptions are the flags every command has.
type GlobalOptions struct {
	Config    string // kubeforge's own settings file
	Verbosity int
	LogFile   string
	Bundle    string
	StateDir  string
}

// Main runs kubeforge with args and returns the process exit code.
func Main(args []string, streams IO) int {
	deps := &Deps{IO: streams, Global: &GlobalOptions{}, redact: &redactor{}}
	root := NewRootCmd(deps)
	root.SetArgs(args)
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := root.ExecuteContext(ctx)
	code := handleError(streams.ErrOut, deps.Log, err)
	if deps.logs != nil {
		_ = deps.logs.close()
	}
	return code
}

// NewRootCmd builds the command tree.
func NewRootCmd(deps *Deps) *cobra.Command {
	g := deps.Global
	root := &cobra.Command{
		Use:   "kubeforge",
		Short: "Build and run Kubernetes clusters on your own Linux machines",
		Long: `kubeforge turns a handful of Linux machines into a production-shaped Kubernetes
cluster and keeps it alive: PKI, etcd, the control plane, kubelet, kube-proxy,
flannel and CoreDNS run as systemd services, installed over SSH from one bundle
of binaries built from upstream source. Nothing is downloaded at install time.`,
		Example: `  # Which Kubernetes, etcd, flannel, CNI and CoreDNS this kubeforge installs
  kubeforge version

  # Shell completion
  source <(kubeforge completion bash)`,
		Args:          noArgs,
		RunE:          func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
		SilenceUsage:  true, // errors are not usage mistakes; usage errors say so themselves
		SilenceErrors: true, // handleError prints them, once
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyConfig(cmd, g.Config); err != nil {
				return err
			}
			if deps.redact == nil {
				deps.redact = &redactor{}
			}
			deps.logs = newLogSink(deps.IO.ErrOut, g.Verbosity, deps.redact)
			deps.Log = deps.logs.logger()
			if g.LogFile != "" {
				if err := deps.useLogFile(g.LogFile); err != nil {
					return err
				}
			}
			deps.Log.Debug("kubeforge", "args", os.Args, "command", cmd.CommandPath())
			return nil
		},
	}
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		// `kubeforge nosuchcmd -f x`: cobra stops at the parent command
		// and trips over the flag meant for the command that is not
		// there. Say which command is unknown instead.
		if cmd.HasAvailableSubCommands() {
			if args := cmd.Flags().Args(); len(args) > 0 {
				return unknownCommand(cmd, args[0])
			}
		}
		return usageError{err}
	})

	pf := root.PersistentFlags()
	pf.StringVar(&g.Config, "config", "", "kubeforge settings file: default values for these flags (env "+EnvPrefix+"_CONFIG)")
	pf.CountVarP(&g.Verbosity, "verbose", "v", "more output on the terminal: -v info details, -vv debug")
	pf.StringVar(&g.LogFile, "log-file", "", "also write a full debug log to this file")
	pf.StringVar(&g.Bundle, "bundle", "", "component bundle: a directory with manifest.json, or the archive itself (default: next to the kubeforge binary, or the source tree's dist/)")
	pf.StringVar(&g.StateDir, "state-dir", "", "the cluster's state directory: PKI, known_hosts, admin.conf, logs (default ~/.kubeforge/<cluster name>)")

	root.AddCommand(
		NewCmdVersion(deps, nil),
		NewCmdCerts(deps),
		NewCmdCheck(deps, nil),
		NewCmdBundle(deps),
		NewCmdKnownHosts(deps),
		NewCmdConfig(deps),
		NewCmdInit(deps, nil),
		NewCmdJoin(deps, nil),
		NewCmdToken(deps),
		NewCmdEtcd(deps),
		NewCmdSecrets(deps),
		NewCmdStatus(deps, nil),
		NewCmdUpgrade(deps),
		NewCmdReset(deps, nil),
		NewCmdDelete(deps),
		NewCmdKubectl(deps),
	)
	return root
}

// applyConfig fills every flag the user did not set on the command line
// from the environment (KUBEFORGE_LOG_FILE) or the settings file, in that
// order. Options structs stay typed; viper never leaves this package.
func applyConfig(cmd *cobra.Command, configFile string) error {
	v := viper.New()
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	v.AutomaticEnv()
	if configFile == "" {
		configFile = os.Getenv(EnvPrefix + "_CONFIG")
	}
	if configFile != "" {
		v.SetConfigFile(configFile)
		if err := v.ReadInConfig(); err != nil {
			return usageError{fmt.Errorf("settings file %s (--config or %s_CONFIG): %w", configFile, EnvPrefix, err)}
		}
	}
	var errs []error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Changed || f.Name == "config" || !v.IsSet(f.Name) {
			return
		}
		for _, val := range flagValues(v, f) {
			if err := f.Value.Set(val); err != nil {
				errs = append(errs, usageError{fmt.Errorf("--%s from %s_%s or %s: %w",
					f.Name, EnvPrefix, strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_")), configFile, err)})
			}
		}
	})
	return errors.Join(errs...)
}

// flagValues returns the value(s) viper holds for a flag as strings. A
// count flag's Set takes the number itself.
func flagValues(v *viper.Viper, f *pflag.Flag) []string {
	if _, ok := f.Value.(pflag.SliceValue); ok {
		return v.GetStringSlice(f.Name)
	}
	return []string{v.GetString(f.Name)}
}

// groupCmd is a command that only holds others (certs, etcd, delete...):
// without a subcommand it prints its help; an argument is an unknown
// command.
func groupCmd(use, short, long string) *cobra.Command {
	return &cobra.Command{Use: use, Short: short, Long: long, Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() }}
}

// writeJSON is -o json: v, indented.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
