package phases

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/kubeforge/kubeforge/internal/cluster"
	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/internal/host"
)

// UpgradeOptions are what `upgrade apply` was given.
type UpgradeOptions struct {
	// MaxUnavailable workers are drained and moved at once.
	MaxUnavailable int
	// DrainTimeout bounds each node's drain.
	DrainTimeout time.Duration
	// Hosts returns what the upgrade-read step found on each host.
	Hosts func() map[string]UpgradeHost
}

// DefaultDrainTimeout bounds a node's drain in an upgrade.
const DefaultDrainTimeout = 5 * time.Minute

func noHosts() map[string]UpgradeHost { return nil }

// upgradeGatePhase plans the upgrade again from what the hosts and the
// cluster say now and stops the run when the plan refuses it: a re-run
// after an interruption passes (the cluster is between the two versions,
// which the plan allows) and converges.
type upgradeGatePhase struct {
	env  *Env
	opts UpgradeOptions
}

// NewUpgradeGate builds the gate of `upgrade apply`.
func NewUpgradeGate(env *Env, o UpgradeOptions) Phase { return &upgradeGatePhase{env: env, opts: o} }

func (*upgradeGatePhase) Title() string  { return "Check the upgrade is allowed, as upgrade plan does" }
func (*upgradeGatePhase) ReadOnly() bool { return true }

// UpgradeLock is the kube-system Lease an upgrade apply holds while it
// runs, renewed; one that was killed lets it go after UpgradeLockTTL.
const (
	UpgradeLock    = "kubeforge-upgrade"
	UpgradeLockTTL = 30 * time.Second
)

func (p *upgradeGatePhase) Prepare(ctx context.Context) error {
	if !p.env.DryRun {
		hostname, _ := os.Hostname()
		holder := fmt.Sprintf("kubeforge upgrade apply on %s (pid %d)", hostname, os.Getpid())
		err := p.env.Client.Hold(ctx, UpgradeLock, holder, UpgradeLockTTL, func(other string, err error) {
			fmt.Fprintf(p.env.Out, "[upgrade-gate] waiting for kube-system/%s, held by %s (a run that was killed lets it go within %s)\n",
				UpgradeLock, other, UpgradeLockTTL)
		})
		if errors.Is(err, cluster.ErrRefused) {
			return &RefusalError{fmt.Sprintf("another upgrade runs: %v; nothing was changed, run this again once it is done", err)}
		}
		if err != nil {
			return err
		}
	}
	plan := PlanUpgrade(GatherUpgrade(ctx, p.env, p.opts.Hosts(), time.Now()))
	if len(plan.Refused) > 0 {
		return &RefusalError{"the upgrade is refused, nothing was changed (kubeforge upgrade plan says the same):\n  - " + strings.Join(plan.Refused, "\n  - ")}
	}
	fmt.Fprintf(p.env.Out, "[upgrade-gate] Kubernetes %s -> %s: %d changes on %d control planes and %d workers\n",
		plan.From, plan.To, len(plan.Changes), len(plan.ControlPlanes), len(plan.Workers))
	return nil
}

func (*upgradeGatePhase) Run(context.Context, *host.Host) error { return nil }

// upgradeNodePhase moves one node onto the new bundle: drained, then (a
// control plane) its etcd, API server, controller-manager, scheduler and
// keepalived with the VIP given away, each healthy before the next; then
// the runtime, kubelet, kube-proxy and flanneld; Ready again, uncordoned.
// Every part is the phase that installs it, so a node already moved is a
// no-op and an interrupted one converges on the next run. Workers go at
// most MaxUnavailable at a time; control planes are a serial step.
type upgradeNodePhase struct {
	env   *Env
	opts  UpgradeOptions
	slots chan struct{}
	// resumed: the workers an earlier run left cordoned, each with a
	// channel closed once it is done here. They go first: a worker
	// drained while another stays cordoned would leave its pods (and a
	// PodDisruptionBudget) fewer nodes than --max-unavailable allows.
	resumed map[string]chan struct{}
	// The phases a node is made of, prepared once for the step.
	bundle                                *bundlePhase
	install, runtime, etcd, control, keep Phase
	kubelet, proxy, cni                   Phase
}

// NewUpgradeNode builds the step that moves nodes onto the new bundle.
func NewUpgradeNode(env *Env, o UpgradeOptions) Phase {
	n := max(o.MaxUnavailable, 1)
	return &upgradeNodePhase{env: env, opts: o, slots: make(chan struct{}, n),
		bundle: &bundlePhase{env: env}, install: &installPhase{env: env}, runtime: &runtimePhase{env: env, switchOS: true},
		etcd: &etcdPhase{env: env}, control: &controlPlanePhase{env: env}, keep: &vipPhase{env: env},
		kubelet: &kubeletPhase{env: env}, proxy: &proxyPhase{env: env}, cni: &cniPhase{env: env}}
}

func (*upgradeNodePhase) Title() string {
	return "Move each node to the new bundle: drained, control planes with the VIP away, Ready again"
}

func (p *upgradeNodePhase) Prepare(ctx context.Context) error {
	if !p.env.DryRun {
		nodes, err := p.env.Client.Nodes(ctx)
		if err != nil {
			return err
		}
		p.resumed = map[string]chan struct{}{}
		for _, n := range nodes {
			if spec := p.env.Cluster.Host(n.Name); spec != nil && !spec.Has(config.RoleControlPlane) && n.Spec.Unschedulable {
				p.resumed[n.Name] = make(chan struct{})
			}
		}
	}
	for _, ph := range []Phase{p.bundle, p.install, p.runtime, p.etcd, p.control, p.keep, p.kubelet, p.proxy, p.cni} {
		if pr, ok := ph.(Preparer); ok {
			if err := pr.Prepare(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

func (p *upgradeNodePhase) Plan(ctx context.Context, h *host.Host) ([]string, error) {
	lines := []string{"drain " + h.Name()}
	own, node := p.parts(h)
	parts := append(own, node...)
	if p.moved(ctx, h) {
		lines, parts = nil, node
	}
	for _, ph := range parts {
		if pl, ok := ph.(Planner); ok {
			l, err := pl.Plan(ctx, h)
			if err != nil {
				return nil, err
			}
			lines = append(lines, l...)
		}
	}
	return append(lines, "wait until "+h.Name()+" is Ready, uncordon it"), nil
}

// parts are the phases a node is made of, in order: own are a control
// plane's (moved with the VIP away), node every node's.
func (p *upgradeNodePhase) parts(h *host.Host) (own, node []Phase) {
	own = []Phase{p.bundle, p.install}
	if h.Spec.Has(config.RoleEtcd) {
		own = append(own, p.etcd)
	}
	if h.Spec.Has(config.RoleControlPlane) {
		own = append(own, p.control)
		if on, _ := enabled(p.keep); on {
			own = append(own, p.keep)
		}
	}
	return own, p.nodeParts()
}

func (p *upgradeNodePhase) nodeParts() []Phase { return []Phase{p.runtime, p.kubelet, p.proxy, p.cni} }

func enabled(ph Phase) (bool, string) {
	if e, ok := ph.(Enabler); ok {
		return e.Enabled()
	}
	return true, ""
}

func (p *upgradeNodePhase) Run(ctx context.Context, h *host.Host) error {
	if !h.Spec.Has(config.RoleControlPlane) {
		if done, ok := p.resumed[h.Name()]; ok {
			defer close(done)
		} else {
			// Bounded, should a resumed worker not be in this step.
			limit := time.After(p.opts.DrainTimeout + 10*time.Minute)
		wait:
			for _, done := range p.resumed {
				select {
				case <-done:
				case <-limit:
					break wait
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
		select {
		case p.slots <- struct{}{}:
			defer func() { <-p.slots }()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	name := h.Name()
	start := time.Now()
	moved := p.moved(ctx, h)
	if moved {
		// An earlier run moved it: its own parts are done, the node's
		// converge (no-ops where done), and it is not drained again.
		if err := p.runAll(ctx, h, p.nodeParts()); err != nil {
			return fmt.Errorf("%w (after fixing it, run kubeforge upgrade apply again)", err)
		}
	} else {
		if err := p.env.Client.Drain(ctx, name, cluster.DrainOptions{Timeout: p.opts.DrainTimeout}); err != nil {
			var de *cluster.DrainError
			if errors.As(err, &de) {
				return fmt.Errorf("%w: the node stays cordoned; make room for those pods (or relax their PodDisruptionBudget), then run kubeforge upgrade apply again", err)
			}
			return err
		}
		if err := p.move(ctx, h); err != nil {
			return fmt.Errorf("%w (the node stays cordoned; after fixing it, run kubeforge upgrade apply again)", err)
		}
	}
	if err := p.env.Client.WaitNodeVersion(ctx, name, p.env.Bundle.Kubernetes(), 3*time.Minute); err != nil {
		return fmt.Errorf("%w: read journalctl -u kubelet on %s, then run kubeforge upgrade apply again", err, name)
	}
	if err := p.env.Client.Uncordon(ctx, name); err != nil {
		return err
	}
	how := "moved to"
	if moved {
		how = "already on"
	}
	fmt.Fprintf(p.env.Out, "[upgrade-node] %s %s Kubernetes %s in %s\n", name, how, p.env.Bundle.Kubernetes(), time.Since(start).Round(100*time.Millisecond))
	return nil
}

// moved: the host already runs the new bundle (upgrade-read found current
// pointing at it) and its kubelet reports the new version, so an earlier
// run got past the node's own parts and its kubelet.
func (p *upgradeNodePhase) moved(ctx context.Context, h *host.Host) bool {
	u, ok := p.opts.Hosts()[h.Name()]
	if !ok || u.OSContainerd || u.Current != p.bundle.unpackDir() {
		return false
	}
	node, err := p.env.Client.Node(ctx, h.Name())
	return err == nil && node.Status.NodeInfo.KubeletVersion == p.env.Bundle.Kubernetes()
}

// move runs the node's parts: a control plane's own with the VIP away,
// each healthy before the next; then its node's, with the VIP back.
func (p *upgradeNodePhase) move(ctx context.Context, h *host.Host) error {
	own, node := p.parts(h)
	if h.Spec.Has(config.RoleControlPlane) {
		if err := withVIPAway(ctx, p.env, h, func() error { return p.runAll(ctx, h, own) }); err != nil {
			return err
		}
	} else if err := p.runAll(ctx, h, own); err != nil {
		return err
	}
	return p.runAll(ctx, h, node)
}

// runAll runs parts in order on h, the etcd cluster healthy after etcd.
func (p *upgradeNodePhase) runAll(ctx context.Context, h *host.Host, parts []Phase) error {
	for _, ph := range parts {
		if err := ph.Run(ctx, h); err != nil {
			return fmt.Errorf("%s: %w", strings.ToLower(ph.Title()[:1])+ph.Title()[1:], err)
		}
		if ph == p.etcd {
			if err := p.env.Client.WaitEtcdCluster(ctx, h, 2*time.Minute); err != nil {
				return err
			}
		}
	}
	return nil
}
