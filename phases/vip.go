package phases

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/internal/host"
	"github.com/kubeforge/kubeforge/internal/vip"
	"github.com/kubeforge/kubeforge/internal/wait"
	"github.com/kubeforge/kubeforge/templates"
)

// vipPhase puts keepalived on the control planes: VRRP between them
// (unicast), the VIP on the interface of each one's cluster address, and a
// health check on the local API server's /readyz. A new control plane
// changes the others' peer lists: they reload keepalived, which keeps the
// VIP where it is.
type vipPhase struct {
	env *Env
	// startOnly leaves the wait for the VIP to a vip-ready step: init's
	// keepalived starts beside etcd and the control plane, before any
	// host can hold the VIP.
	startOnly bool
}

func (*vipPhase) Title() string { return "Virtual IP (keepalived)" }

func (p *vipPhase) Enabled() (bool, string) {
	if p.env.Cluster.Spec.ControlPlane.VIP == "" {
		return false, "spec.controlPlane.vip is not set"
	}
	return true, ""
}

// Files keepalived reads.
const (
	KeepalivedConfig      = "/etc/keepalived/keepalived.conf"
	KeepalivedCheckScript = "/etc/keepalived/kubeforge-check-apiserver.sh"
	// MaintenanceScript fails while MaintenanceFlag exists (internal/vip).
	MaintenanceScript = vip.MaintenanceScript
	MaintenanceFlag   = vip.MaintenanceFlag
)

// keepalivedUnit runs the bundle's keepalived (built VRRP only: it has
// no --vrrp option, and getopt would read that as --vrrp_pid and take the
// next argument for its file) in the foreground, logging to the journal. A reload (SIGHUP) re-reads the
// configuration and keeps the VIP where it is. Killed, keepalived would
// leave the VIP on the interface until it starts again: the unit removes
// it whenever keepalived stops.
func keepalivedUnit(vip netip.Addr, iface string) ([]byte, error) {
	// vip is a parsed address; iface a kernel interface name (facts, or
	// spec.controlPlane.vipInterface validated as one): nothing to quote.
	return unit{
		Description:   "keepalived: the control plane's virtual IP (kubeforge)",
		Documentation: "https://www.keepalived.org/manpage.html",
		After:         []string{"network-online.target"},
		Wants:         []string{"network-online.target"},
		Exec:          bundleBin("keepalived"),
		Args:          []string{"--dont-fork", "--log-console", "--use-file=" + KeepalivedConfig},
		ExecReload:    "/bin/kill -HUP $MAINPID",
		ExecStopPost:  []string{fmt.Sprintf(`-/bin/sh -c "ip addr del %s/%d dev %s 2>/dev/null || true"`, vip, vip.BitLen(), iface)},
		RestartSec:    "1s",
	}.render()
}

// vipPriority: the first control plane in the cluster file is preferred,
// then the next; equal priorities would leave it to chance.
func vipPriority(c *config.Cluster, h *config.Host) int {
	for i, cp := range c.HostsWith(config.RoleControlPlane) {
		if cp.Name == h.Name {
			return max(200-i, 1)
		}
	}
	return 1
}

// vipInterface is spec.controlPlane.vipInterface, else the interface that
// holds the host's cluster address.
func vipInterface(h *config.Host, f *host.Facts, cp config.ControlPlane) (string, error) {
	if cp.VIPInterface != "" {
		return cp.VIPInterface, nil
	}
	iface, _, ok := f.PrefixOf(h.ClusterAddress())
	if !ok {
		return "", fmt.Errorf("no interface holds its address %s: set spec.controlPlane.vipInterface", h.ClusterAddress())
	}
	return iface, nil
}

func (p *vipPhase) desired(ctx context.Context, h *host.Host) (Desired, error) {
	// The step runs on control planes a join did not gather facts of too.
	facts, err := h.Facts(ctx)
	if err != nil {
		return Desired{}, err
	}
	c := p.env.Cluster
	cp := c.Spec.ControlPlane
	addr, err := netip.ParseAddr(cp.VIP)
	if err != nil {
		return Desired{}, fmt.Errorf("spec.controlPlane.vip: %w", err)
	}
	iface, err := vipInterface(h.Spec, facts, cp)
	if err != nil {
		return Desired{}, err
	}
	var peers []string
	for _, other := range c.HostsWith(config.RoleControlPlane) {
		if other.Name != h.Name() {
			peers = append(peers, other.ClusterAddress().String())
		}
	}
	conf, err := templates.Render("keepalived/keepalived.conf.tmpl", map[string]any{
		"VIP":               addr.String(),
		"Bits":              addr.BitLen(),
		"RouterID":          h.Name(),
		"CheckScript":       KeepalivedCheckScript,
		"Interface":         iface,
		"VirtualRouterID":   cp.VirtualRouterID,
		"Priority":          vipPriority(c, h.Spec),
		"Self":              h.Spec.ClusterAddress().String(),
		"Peers":             peers,
		"MaintenanceScript": MaintenanceScript,
		"MaintenanceWeight": vip.MaintenanceWeight,
	})
	if err != nil {
		return Desired{}, err
	}
	maintenance, err := templates.Render("keepalived/maintenance.sh.tmpl", map[string]any{"Flag": MaintenanceFlag})
	if err != nil {
		return Desired{}, err
	}
	check, err := templates.Render("keepalived/check-apiserver.sh.tmpl", map[string]any{
		"Check":  bundleBin("kube-apiserver-check"),
		"CAFile": pki("ca.crt"),
		"Port":   cp.Port,
	})
	if err != nil {
		return Desired{}, err
	}
	u, err := keepalivedUnit(addr, iface)
	if err != nil {
		return Desired{}, err
	}
	return Desired{
		Files: []File{
			{Path: KeepalivedConfig, Data: conf, Mode: host.FileMode{Perm: 0o644}},
			{Path: KeepalivedCheckScript, Data: check, Mode: host.FileMode{Perm: 0o755}},
			{Path: MaintenanceScript, Data: maintenance, Mode: host.FileMode{Perm: 0o755}},
		},
		Services: []Service{{Name: "keepalived", Unit: u, Inputs: []string{KeepalivedConfig, KeepalivedCheckScript, MaintenanceScript}, Reload: true}},
	}, nil
}

func (p *vipPhase) Plan(ctx context.Context, h *host.Host) ([]string, error) {
	return planOf(ctx, h)(p.desired(ctx, h))
}

func (p *vipPhase) Run(ctx context.Context, h *host.Host) error {
	d, err := p.desired(ctx, h)
	if err != nil {
		return err
	}
	if _, err := d.Apply(ctx, h); err != nil {
		return err
	}
	if err := vip.ClearHandoff(ctx, h, p.env.Cluster); err != nil {
		return err
	}
	if p.startOnly {
		return nil
	}
	return waitVIP(ctx, p.env, h)
}

// waitVIP waits until some control plane holds the VIP and serves the API
// through it, asked from h.
func waitVIP(ctx context.Context, env *Env, h *host.Host) error {
	cp := env.Cluster.Spec.ControlPlane
	if err := wait.For(ctx, 90*time.Second, func() (bool, error) { return true, env.Client.EndpointReady(ctx, h) }); err != nil {
		return fmt.Errorf("the API does not answer at the VIP (%s): %w (see journalctl -u keepalived on the control planes)", cp.Endpoint, err)
	}
	return nil
}

// vipReadyPhase is that wait alone, once the API servers run, for a run
// whose keepalived step only started keepalived (init).
type vipReadyPhase struct{ env *Env }

func (*vipReadyPhase) Title() string  { return "The API through the VIP" }
func (*vipReadyPhase) ReadOnly() bool { return true }
func (*vipReadyPhase) Waits() bool    { return true }

func (p *vipReadyPhase) Enabled() (bool, string) { return (&vipPhase{env: p.env}).Enabled() }

func (p *vipReadyPhase) Run(ctx context.Context, h *host.Host) error {
	if p.env.DryRun {
		return nil
	}
	return waitVIP(ctx, p.env, h)
}

// withVIPAway runs restart with the VIP moved off h first (see
// internal/vip: keepalived's maintenance flag; a holder hands the VIP
// over, its API server shut down gracefully), h's keepalived
// configuration brought up to date before (a cluster made by an older
// kubeforge may lack the maintenance check, or preempt), and h's API
// server and keepalived running again after, the VIP left where it went:
// a host's API server or etcd restarts while clients reach the others.
// Without a VIP, or another control plane to hold it, restart just runs.
func withVIPAway(ctx context.Context, env *Env, h *host.Host, restart func() error) error {
	if !vip.Movable(env.Cluster) {
		return restart()
	}
	if err := (&vipPhase{env: env}).Run(ctx, h); err != nil {
		return err
	}
	if err := vip.MoveOff(ctx, env.Client, env.Cluster, h, h); err != nil {
		return err
	}
	if err := restart(); err != nil {
		return err
	}
	return vip.Return(ctx, env.Client, env.Cluster, h)
}

// vipResumePhase ends the maintenance a killed run left on a control plane
// (the flag, maybe the hand-over's rule with its API server and keepalived
// stopped): the host serves again as it did, so the run that follows
// reads it and moves it in its turn.
type vipResumePhase struct{ env *Env }

func (*vipResumePhase) Title() string {
	return "End the maintenance an interrupted run left on a control plane"
}

func (p *vipResumePhase) Enabled() (bool, string) {
	if !vip.Movable(p.env.Cluster) {
		return false, "no VIP moves in this cluster"
	}
	return true, ""
}

func (p *vipResumePhase) left(ctx context.Context, h *host.Host) (bool, error) {
	return h.Check(ctx, "test -e "+host.Quote(MaintenanceFlag))
}

func (p *vipResumePhase) Plan(ctx context.Context, h *host.Host) ([]string, error) {
	if left, err := p.left(ctx, h); err != nil || !left {
		return nil, err
	}
	return []string{"end the maintenance a killed run left: start kube-apiserver and keepalived, remove " + MaintenanceFlag}, nil
}

func (p *vipResumePhase) Run(ctx context.Context, h *host.Host) error {
	left, err := p.left(ctx, h)
	if err != nil || !left {
		return err
	}
	p.env.Log.Info("ending the maintenance a killed run left", "host", h.Name())
	return vip.Return(ctx, p.env.Client, p.env.Cluster, h)
}
