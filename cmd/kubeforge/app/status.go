package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/go-multierror"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kubeforge/kubeforge/phases"
)

// StatusOptions are status's own flags.
type StatusOptions struct {
	Output string
}

// NewCmdStatus builds `kubeforge status`.
func NewCmdStatus(deps *Deps, runF func(*ActionOptions, []string) error) *cobra.Command {
	opts := &StatusOptions{}
	found := map[string]phases.HostStatus{}
	var mu sync.Mutex
	return newActionCmd(deps, action{
		playbook: "status",
		use:      "status -f CLUSTER_FILE [-o table|json]",
		short:    "One look at the whole cluster: services, nodes, etcd, the VIP, the API, certificates",
		long: `Read every host (in parallel) and the cluster, and show, what is not healthy first:
- per host, each kubeforge service: active or not, since when, how often systemd
  restarted it, and its version (the bundle's, or the OS package's);
- the nodes: Ready, the kubelet's and the container runtime's version;
- the etcd members: version, voting or learner, the leader, health, database size, revision;
- a cluster caught between two versions (kubelets, runtimes or etcd members that differ);
- which control plane holds the VIP, and /readyz through the endpoint from here;
- each host's certificate that expires first.
A host that cannot be reached is a row saying so; the rest is shown all the same.
The exit code is 0 when everything is healthy, 1 when something is not.`,
		example: `  kubeforge status -f cluster.yaml
  kubeforge status -f cluster.yaml -o json | jq '.degraded'
  kubeforge status -f cluster.yaml --parallel 1`,
		flags: func(f *pflag.FlagSet) {
			f.StringVarP(&opts.Output, "output", "o", "table", "table or json")
		},
		check:  func(*ActionOptions, []string) error { return checkOutput(opts.Output) },
		bundle: bundleIfThere, // versions by binary sum, when the bundle is here
		// The report is the output; the log file has the run.
		progress: func(*Deps) io.Writer { return io.Discard },
		setup: func(_ context.Context, _ *Deps, run *actionRun) error {
			run.Runner.NewPhase = phases.Builder(map[string]func(*phases.Env) phases.Phase{
				"status": func(env *phases.Env) phases.Phase {
					return phases.NewStatus(env, func(s phases.HostStatus) {
						mu.Lock()
						defer mu.Unlock()
						found[s.Name] = s
					})
				},
			})
			return nil
		},
		reports: true,
		after: func(ctx context.Context, _ *Deps, run *actionRun) error {
			report := buildStatus(ctx, run, found)
			for name, e := range unreachableHosts(run.Err) {
				for i := range report.Hosts {
					if report.Hosts[i].Name == name {
						report.Hosts[i].Unreachable = e
					}
				}
			}
			report.finish()
			if opts.Output == "json" {
				if err := writeJSON(run.Out, report); err != nil {
					return err
				}
			} else {
				printStatus(run.Out, &report)
			}
			if !report.Healthy {
				return &statusDegraded{n: len(report.Degraded)}
			}
			return nil
		},
	}, runF)
}

// statusReport is the whole answer, as JSON prints it.
type statusReport struct {
	Cluster  string              `json:"cluster"`
	Healthy  bool                `json:"healthy"`
	Degraded []string            `json:"degraded"`
	Hosts    []hostRow           `json:"hosts"`
	Nodes    []phases.NodeStatus `json:"nodes"`
	Etcd     []phases.EtcdStatus `json:"etcd"`
	VIP      string              `json:"vip,omitempty"`
	VIPHeld  []string            `json:"vipHeldBy,omitempty"`
	API      string              `json:"api"`
	// Encryption is the key Secrets are encrypted with, and its age.
	Encryption phases.KeyStatus  `json:"encryption"`
	Errors     map[string]string `json:"errors,omitempty"`
}

// hostRow is a host, or why it could not be read.
type hostRow struct {
	phases.HostStatus
	Unreachable string `json:"unreachable,omitempty"`
}

// statusDegraded is exit 1 after the report said what.
type statusDegraded struct{ n int }

func (e *statusDegraded) Error() string { return fmt.Sprintf("%d problems", e.n) }
func (e *statusDegraded) ExitCode() int { return ExitFailure }
func (e *statusDegraded) Silent() bool  { return true }

// unreachableHosts are the hosts a step failed on, by name (each error
// says which host it is about).
func unreachableHosts(err error) map[string]string {
	out := map[string]string{}
	var me *multierror.Error
	if !errors.As(err, &me) {
		return out
	}
	for _, e := range me.Errors {
		var n interface{ HostName() string }
		if errors.As(e, &n) {
			out[n.HostName()] = e.Error()
		}
	}
	return out
}

func buildStatus(ctx context.Context, run *actionRun, found map[string]phases.HostStatus) statusReport {
	c := run.Cluster
	r := statusReport{Cluster: c.Metadata.Name, VIP: c.Spec.ControlPlane.VIP, Errors: map[string]string{},
		Encryption: phases.EncryptionStatus(run.Env)}
	for _, h := range c.Spec.Hosts {
		hs, ok := found[h.Name]
		if !ok {
			hs = phases.HostStatus{Name: h.Name}
		}
		row := hostRow{HostStatus: hs}
		if !ok {
			row.Unreachable = "not read"
		}
		r.Hosts = append(r.Hosts, row)
		if hs.HoldsVIP {
			r.VIPHeld = append(r.VIPHeld, h.Name)
		}
	}
	var err error
	r.Nodes, r.Etcd, err = phases.ClusterStatus(ctx, run.Env)
	if err != nil {
		r.Errors["cluster"] = err.Error()
	}
	r.API = "ok"
	if err := run.Env.Client.EndpointReady(ctx, nil); err != nil {
		r.API = err.Error()
	}
	return r
}

// finish decides what is degraded and orders the rows, problems first.
func (r *statusReport) finish() {
	var d []string
	for i := range r.Hosts {
		h := &r.Hosts[i]
		if h.Unreachable != "" {
			if strings.HasPrefix(h.Unreachable, "host "+h.Name+" ") { // the error names it already
				d = append(d, h.Unreachable)
			} else {
				d = append(d, "host "+h.Name+": "+h.Unreachable)
			}
		}
		for _, s := range h.Services {
			if !s.Healthy() {
				d = append(d, fmt.Sprintf("host %s: %s is %s", h.Name, s.Name, s.State))
			}
		}
		if c := h.SoonestCert; c != nil && c.Expired() {
			d = append(d, fmt.Sprintf("host %s: %s expired", h.Name, c.Name))
		}
	}
	for _, n := range r.Nodes {
		if n.Ready != "True" {
			d = append(d, "node "+n.Name+": Ready="+n.Ready)
		}
		for _, c := range n.Pressure {
			d = append(d, "node "+n.Name+": "+c)
		}
	}
	for _, m := range r.Etcd {
		if !m.Healthy {
			why := m.Error
			if m.Learner {
				why = "a learner, not a voter"
			}
			d = append(d, "etcd member "+m.Name+": "+why)
		}
	}
	d = append(d, mixedVersions(r.Nodes, r.Etcd)...)
	if r.VIP != "" && len(r.VIPHeld) != 1 {
		d = append(d, fmt.Sprintf("VIP %s held by %d hosts %v", r.VIP, len(r.VIPHeld), r.VIPHeld))
	}
	if r.API != "ok" {
		d = append(d, "API /readyz through the endpoint: "+r.API)
	}
	for k, e := range r.Errors {
		d = append(d, k+": "+e)
	}
	r.Degraded, r.Healthy = d, len(d) == 0
	if r.Degraded == nil {
		r.Degraded = []string{}
	}
	bad := func(h hostRow) bool {
		if h.Unreachable != "" {
			return true
		}
		for _, s := range h.Services {
			if !s.Healthy() {
				return true
			}
		}
		return false
	}
	sort.SliceStable(r.Hosts, func(i, j int) bool { return bad(r.Hosts[i]) && !bad(r.Hosts[j]) })
	sort.SliceStable(r.Nodes, func(i, j int) bool { return r.Nodes[i].Ready != "True" && r.Nodes[j].Ready == "True" })
	sort.SliceStable(r.Etcd, func(i, j int) bool { return !r.Etcd[i].Healthy && r.Etcd[j].Healthy })
}

// mixedVersions flags a cluster caught between two versions (an upgrade
// that stopped half way): the kubelets, runtimes or etcd members differ.
func mixedVersions(nodes []phases.NodeStatus, members []phases.EtcdStatus) []string {
	var out []string
	check := func(what string, by map[string][]string) {
		if len(by) < 2 {
			return
		}
		var parts []string
		for v, names := range by {
			sort.Strings(names)
			parts = append(parts, v+" on "+strings.Join(names, ", "))
		}
		sort.Strings(parts)
		out = append(out, fmt.Sprintf("%s differ (%s): the cluster is between two versions; finish with kubeforge upgrade apply", what, strings.Join(parts, "; ")))
	}
	kubelets, runtimes, etcds := map[string][]string{}, map[string][]string{}, map[string][]string{}
	for _, n := range nodes {
		kubelets[n.Kubelet] = append(kubelets[n.Kubelet], n.Name)
		runtimes[n.Runtime] = append(runtimes[n.Runtime], n.Name)
	}
	for _, m := range members {
		if m.Version != "" {
			etcds[m.Version] = append(etcds[m.Version], m.Name)
		}
	}
	check("kubelet versions", kubelets)
	check("container runtimes", runtimes)
	check("etcd versions", etcds)
	return out
}

func printStatus(out io.Writer, r *statusReport) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tSERVICE\tSTATE\tSINCE\tRESTARTS\tVERSION")
	for _, h := range r.Hosts {
		if h.Unreachable != "" {
			fmt.Fprintf(tw, "%s\t-\tUNREACHABLE\t-\t-\t%s\n", h.Name, h.Unreachable)
			continue
		}
		services := append([]phases.ServiceStatus(nil), h.Services...)
		sort.SliceStable(services, func(i, j int) bool { return !services[i].Healthy() && services[j].Healthy() })
		for _, s := range services {
			since := "-"
			if !s.Since.IsZero() {
				since = humanDuration(time.Since(s.Since)) + " ago"
			}
			state := s.State
			if !s.Healthy() {
				state = strings.ToUpper(state)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", h.Name, s.Name, state, since, s.Restarts, s.Version)
		}
	}
	tw.Flush()
	fmt.Fprintln(out)
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tREADY\tKUBELET\tRUNTIME")
	for _, n := range r.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", n.Name, n.Ready, n.Kubelet, n.Runtime)
	}
	tw.Flush()
	fmt.Fprintln(out)
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ETCD MEMBER\tVERSION\tROLE\tLEADER\tHEALTH\tDB SIZE\tREVISION")
	for _, m := range r.Etcd {
		role, health := "voter", "healthy"
		if m.Learner {
			role = "learner"
		}
		if !m.Healthy {
			health = "UNHEALTHY " + m.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.1f MiB\t%d\n", m.Name, m.Version, role, yesNo(m.Leader), health, float64(m.DBSize)/(1<<20), m.Revision)
	}
	tw.Flush()
	fmt.Fprintln(out)
	if r.VIP != "" {
		fmt.Fprintf(out, "VIP %s: held by %s\n", r.VIP, strings.Join(append([]string{}, r.VIPHeld...), ", "))
	}
	fmt.Fprintf(out, "API /readyz through the endpoint: %s\n", r.API)
	switch e := r.Encryption; {
	case e.Key != "" && !e.Created.IsZero():
		fmt.Fprintf(out, "Secrets encrypted at rest with key %s, made %s ago\n", e.Key, humanDuration(time.Since(e.Created)))
	case e.Key != "":
		fmt.Fprintf(out, "Secrets encrypted at rest with key %s\n", e.Key)
	}
	if r.Encryption.Problem != "" {
		fmt.Fprintf(out, "Secrets at rest: %s\n", r.Encryption.Problem)
	}
	var soonest *hostRow
	for i := range r.Hosts {
		if c := r.Hosts[i].SoonestCert; c != nil && (soonest == nil || c.NotAfter.Before(soonest.SoonestCert.NotAfter)) {
			soonest = &r.Hosts[i]
		}
	}
	if soonest != nil {
		c := soonest.SoonestCert
		fmt.Fprintf(out, "Soonest certificate expiry: %s on %s, %s (in %s)\n", c.Name, soonest.Name, c.NotAfter.Format(time.RFC3339), humanDuration(c.Residual))
	}
	if r.Healthy {
		fmt.Fprintln(out, "\nHealthy.")
		return
	}
	fmt.Fprintf(out, "\nDegraded:\n")
	for _, d := range r.Degraded {
		fmt.Fprintf(out, "  - %s\n", d)
	}
}
