package app

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/kubeforge/kubeforge/components/bundle"
	"github.com/kubeforge/kubeforge/internal/version"
)

// VersionOptions are the options of `kubeforge version`.
type VersionOptions struct {
	Output string // "" (table) or "json"
	Bundle string
}

// NewCmdVersion builds `kubeforge version`. runF replaces the command's
// action in tests.
func NewCmdVersion(deps *Deps, runF func(*VersionOptions) error) *cobra.Command {
	opts := &VersionOptions{}
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print kubeforge's version and the versions of the components it installs",
		Long: `Print kubeforge's version and, from the bundle's manifest, the version of every
component it installs on the hosts: Kubernetes, etcd, containerd, runc, crictl,
flannel, the CNI plugins, keepalived, kube-apiserver-check, CoreDNS and the
pause image.`,
		Example: `  kubeforge version
  kubeforge version -o json | jq -r '.components[] | select(.name=="kubelet") | .version'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.Output != "" && opts.Output != "json" {
				return usageError{fmt.Errorf("--output %q: use json, or leave it out for a table", opts.Output)}
			}
			opts.Bundle = deps.Global.Bundle
			if runF != nil {
				return runF(opts)
			}
			return runVersion(deps, opts)
		},
	}
	cmd.Flags().StringVarP(&opts.Output, "output", "o", "", "output format: json")
	return cmd
}

// versionReport is what `version -o json` prints.
type versionReport struct {
	Kubeforge version.Info `json:"kubeforge"`
	// Kubernetes: the minors this kubeforge installs, oldest first.
	Kubernetes  []string             `json:"kubernetes"`
	Bundle      string               `json:"bundle,omitempty"`
	BundleError string               `json:"bundleError,omitempty"`
	Components  []bundle.Component   `json:"components,omitempty"`
	Images      []bundle.Image       `json:"images,omitempty"`
	Unpacker    *bundle.Unpacker     `json:"unpacker,omitempty"`
	Manifest    *bundleManifestBrief `json:"manifest,omitempty"`
}

type bundleManifestBrief struct {
	Kubeforge string `json:"kubeforge"`
	Platform  string `json:"platform"`
	GoVersion string `json:"goVersion"`
	Archive   string `json:"archive"`
}

func runVersion(deps *Deps, opts *VersionOptions) error {
	report := versionReport{Kubeforge: version.Get(), Kubernetes: version.KubernetesMinors}
	dir, m, err := loadBundle(opts.Bundle)
	if err != nil {
		report.BundleError = err.Error()
	} else {
		report.Bundle = dir
		report.Components = m.Components()
		report.Images = m.Images
		report.Unpacker = m.Unpacker
		report.Manifest = &bundleManifestBrief{Kubeforge: m.Kubeforge, Platform: m.OS + "/" + m.Arch, GoVersion: m.GoVersion, Archive: m.Archive}
	}
	out := deps.IO.Out
	if opts.Output == "json" {
		return writeJSON(out, report)
	}
	k := report.Kubeforge
	fmt.Fprintf(out, "kubeforge %s (%s, %s)\n", k.Version, k.GoVersion, k.Platform)
	fmt.Fprintf(out, "installs  Kubernetes %s (make bundle K8S=<minor>)\n", strings.Join(report.Kubernetes, ", "))
	if err != nil {
		fmt.Fprintf(deps.IO.ErrOut, "bundle: %v\n", err)
		return nil
	}
	fmt.Fprintf(out, "bundle    %s (built by kubeforge %s, %s, %s)\n\n", dir, m.Kubeforge, report.Manifest.Platform, m.GoVersion)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "COMPONENT\tVERSION\tFROM\tIN BUNDLE")
	for _, c := range report.Components {
		from := c.Module
		if from == "" {
			from = "kubeforge"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Name, c.Version, from, c.Path)
	}
	if u := report.Unpacker; u != nil {
		// Built with the kubeforge that made the bundle, beside the archive.
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", "kube-unpack", m.Kubeforge, "github.com/kubeforge/kubeforge", u.Path+" (beside the archive)")
	}
	return tw.Flush()
}

// loadBundle finds and reads the bundle: --bundle (a directory with a
// manifest, or the archive itself), else the first of the usual places
// that holds one. It returns the directory the archive is in.
func loadBundle(explicit string) (string, *bundle.Manifest, error) {
	dir, m, err := findBundle(explicit)
	if err != nil {
		return dir, m, err
	}
	if err := version.CheckKubernetes(m.Kubernetes()); err != nil {
		return dir, nil, inputError{fmt.Errorf("bundle %s: %w", dir, err)}
	}
	return dir, m, nil
}

func findBundle(explicit string) (string, *bundle.Manifest, error) {
	if explicit != "" {
		fi, err := os.Stat(explicit)
		if err != nil {
			return "", nil, usageError{fmt.Errorf("--bundle: %w", err)}
		}
		if !fi.IsDir() {
			m, err := bundle.LoadArchive(explicit)
			return filepath.Dir(explicit), m, err
		}
		m, err := bundle.Load(explicit)
		return explicit, m, err
	}
	candidates := bundleCandidates()
	for _, dir := range candidates {
		m, err := bundle.Load(dir)
		if errors.Is(err, bundle.ErrNoBundle) {
			// The archive alone, as copied to a machine that joins.
			archives, _ := filepath.Glob(filepath.Join(dir, "kubeforge-bundle-*.tar.*"))
			if len(archives) == 1 {
				m, err := bundle.LoadArchive(archives[0])
				return dir, m, err
			}
			continue
		}
		return dir, m, err
	}
	return "", nil, fmt.Errorf("no bundle found in %v: build one with 'make bundle' or pass --bundle DIR|ARCHIVE", candidates)
}

// bundleCandidates are the places a bundle is looked for: next to the
// kubeforge binary, dist/ of the source tree it was built in, then the
// install locations.
func bundleCandidates() []string {
	var out []string
	if exe, err := os.Executable(); err == nil {
		if exe, err = filepath.EvalSymlinks(exe); err == nil {
			base := filepath.Dir(filepath.Dir(exe))
			out = append(out, filepath.Dir(exe), filepath.Join(base, "dist"), filepath.Join(base, "share", "kubeforge"))
		}
	}
	return append(out, "/usr/local/share/kubeforge", "/usr/share/kubeforge")
}

// noArgs rejects positional arguments as a usage error.
// A command with subcommands calls an argument an unknown command, with
// cobra's "did you mean" suggestions.
func noArgs(cmd *cobra.Command, args []string) error {
	switch {
	case len(args) == 0:
		return nil
	case cmd.HasAvailableSubCommands():
		return unknownCommand(cmd, args[0])
	}
	return usageError{fmt.Errorf("%s takes no arguments, got %q", cmd.CommandPath(), args)}
}

// unknownCommand names the subcommands there are, and the likely one; a
// `phase` command's subcommands are phases.
func unknownCommand(cmd *cobra.Command, arg string) error {
	msg := fmt.Sprintf("unknown command %q for %q", arg, cmd.CommandPath())
	if cmd.Name() == "phase" && cmd.HasParent() {
		msg = fmt.Sprintf("unknown phase %q for %q", arg, cmd.Parent().CommandPath())
	}
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2 // cobra's own default, set only on its own path
	}
	if s := cmd.SuggestionsFor(arg); len(s) > 0 {
		msg += ": did you mean \"" + strings.Join(s, `" or "`) + "\"?"
	} else {
		var names []string
		for _, c := range cmd.Commands() {
			if c.IsAvailableCommand() {
				names = append(names, c.Name())
			}
		}
		what := "commands"
		if cmd.Name() == "phase" {
			what = "phases"
		}
		msg += " (" + what + ": " + strings.Join(names, ", ") + ")"
	}
	return usageError{errors.New(msg)}
}
