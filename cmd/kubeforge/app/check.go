package app

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/kubeforge/kubeforge/internal/host"
	"github.com/spf13/cobra"
)

// NewCmdCheck builds `kubeforge check`.
func NewCmdCheck(deps *Deps, runF func(*ActionOptions, []string) error) *cobra.Command {
	return newActionCmd(deps, action{
		playbook: "check",
		use:      "check -f CLUSTER_FILE",
		short:    "Connect to every host and show what it is",
		long: `Connect to every host of the cluster file over SSH (in parallel), record new host keys
in the state directory's known_hosts, check that each login can become root, and
gather facts: OS, architecture, init system, cgroup version, memory, CPUs, package
manager, and whether containerd and keepalived are installed. Nothing is changed on
the hosts.`,
		example: `  kubeforge check -f cluster.yaml
  kubeforge check -f cluster.yaml --parallel 50 -v`,
		after:          printFacts,
		afterOnFailure: true,
	}, runF)
}

func printFacts(ctx context.Context, deps *Deps, run *actionRun) error {
	hosts := run.Pool.Connected()
	tw := tabwriter.NewWriter(deps.IO.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tADDRESS\tOS\tARCH\tKERNEL\tINIT\tCGROUP\tMEMORY\tCPUS\tPACKAGES\tOS CONTAINERD\tTO INSTALL")
	for i := range run.Cluster.Spec.Hosts {
		spec := &run.Cluster.Spec.Hosts[i]
		h, ok := hosts[spec.Name]
		var f *host.Facts
		if ok {
			f, _ = h.Facts(context.WithoutCancel(ctx)) // gathered by the facts step, or not at all
		}
		if f == nil {
			fmt.Fprintf(tw, "%s\t%s\t(no facts: see the error below)\n", spec.Name, spec.Address)
			continue
		}
		// The OS packages init or join would install (the base tools a
		// host lacks): everything else comes from the bundle.
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\tv%d\t%.1f GiB\t%d\t%s\t%s\t%s\n", spec.Name, spec.Address, f.OSPretty, f.Arch,
			f.Kernel, f.InitSystem, f.CgroupVersion, float64(f.MemoryBytes)/(1<<30), f.CPUs, orNone(f.PackageManager),
			orNone(f.Containerd), orNone(strings.Join(f.MissingToolPackages(), " ")))
	}
	return tw.Flush()
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
