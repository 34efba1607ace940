package phases

import (
	"context"
	"strings"

	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/internal/host"
)

// packagesPhase installs, in one go, every OS package the later phases
// need on a host: the runtime's, and keepalived's on a control plane
// behind a VIP. It depends on nothing but the host, so the playbooks run it
// while the bundle uploads and the control plane starts; runtime and vip
// still ensure their own packages (a no-op by then), so each of them runs
// alone as well (`init phase runtime`).
type packagesPhase struct{ env *Env }

func (*packagesPhase) Title() string { return "OS packages (containerd, and keepalived behind a VIP)" }

func (p *packagesPhase) wanted(h *host.Host) []string {
	pkgs := append([]string(nil), runtimePackages...)
	if p.env.Cluster.Spec.ControlPlane.VIP != "" && h.Spec.Has(config.RoleControlPlane) {
		pkgs = append(pkgs, vipPackages...)
	}
	return pkgs
}

func (p *packagesPhase) Plan(ctx context.Context, h *host.Host) ([]string, error) {
	missing, err := h.MissingPackages(ctx, p.wanted(h)...)
	if err != nil || len(missing) == 0 {
		return nil, err
	}
	return []string{"install " + strings.Join(missing, " ")}, nil
}

func (p *packagesPhase) Run(ctx context.Context, h *host.Host) error {
	installed, err := ensurePackages(ctx, h, p.wanted(h)...)
	if err == nil && len(installed) > 0 {
		p.env.Log.Info("installed packages", "host", h.Name(), "packages", installed)
	}
	return err
}
