package phases

import (
	"context"
	"net/netip"

	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/internal/host"
)

// connectPhase opens the SSH connection (the runner's pool does it) and
// finds how to become root; it shows the connection as its own step.
type connectPhase struct{}

func (connectPhase) Title() string                               { return "Connect" }
func (connectPhase) ReadOnly() bool                              { return true }
func (connectPhase) Run(ctx context.Context, h *host.Host) error { return nil }

// factsPhase observes each host: OS, architecture, init system, cgroups,
// memory, CPUs, package manager, installed runtime and keepalived.
type factsPhase struct{ env *Env }

func (*factsPhase) Title() string  { return "Gather host facts" }
func (*factsPhase) ReadOnly() bool { return true }

func (p *factsPhase) Run(ctx context.Context, h *host.Host) error {
	f, err := h.GatherFacts(ctx)
	if err != nil {
		return err
	}
	if !f.Supported() {
		return h.Errorf("%s is not supported (Debian, Ubuntu or the RHEL family)", f.OSPretty)
	}
	if f.InitSystem != "systemd" {
		return h.Errorf("init system is %q: kubeforge runs the components as systemd services", f.InitSystem)
	}
	if m := p.env.Bundle; m != nil && f.GoArch() != m.Arch {
		return h.Errorf("architecture %s, but the bundle is for %s", f.Arch, m.Arch)
	}
	return p.checkVIP(h, f)
}

// checkVIP: keepalived can only announce the VIP on a network the control
// plane is on.
func (p *factsPhase) checkVIP(h *host.Host, f *host.Facts) error {
	cp := p.env.Cluster.Spec.ControlPlane
	if cp.VIP == "" || !h.Spec.Has(config.RoleControlPlane) {
		return nil
	}
	vip, err := netip.ParseAddr(cp.VIP)
	if err != nil {
		return err
	}
	iface, prefix, ok := f.PrefixOf(h.Spec.ClusterAddress())
	if !ok {
		return h.Errorf("no interface holds its address %s (interfaces: %v)", h.Spec.ClusterAddress(), f.Addresses)
	}
	if !prefix.Masked().Contains(vip) {
		return h.Errorf("spec.controlPlane.vip %s is not in its network %s (%s): keepalived could not announce it; pick a free address in %s",
			vip, prefix.Masked(), iface, prefix.Masked())
	}
	return nil
}
