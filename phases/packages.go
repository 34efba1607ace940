package phases

import (
	"context"
	"strings"

	"github.com/kubeforge/kubeforge/internal/host"
)

// packagesPhase installs the OS packages of the base tools a host lacks
// (host.BaseTools: iptables, conntrack, socat), and nothing else:
// everything of kubeforge's comes from the bundle. On a server
// distribution it has nothing to do. It depends on nothing but the host,
// so the playbooks run it while the bundle uploads; the runtime phase
// still ensures the same packages (a no-op by then), so it runs alone as
// well (`init phase runtime`). Preflight refuses a host that lacks a tool
// and reaches no package mirror, before anything is changed.
type packagesPhase struct{ env *Env }

func (*packagesPhase) Title() string {
	return "OS packages (only the base tools a host lacks: " + strings.Join(host.BaseTools, ", ") + ")"
}

func (p *packagesPhase) Plan(ctx context.Context, h *host.Host) ([]string, error) {
	f, err := h.Facts(ctx)
	if err != nil {
		return nil, err
	}
	if len(f.MissingTools) == 0 {
		return nil, nil
	}
	return []string{"install " + strings.Join(f.MissingToolPackages(), " ") + " (OS packages, for " + strings.Join(f.MissingTools, ", ") + ")"}, nil
}

func (p *packagesPhase) Run(ctx context.Context, h *host.Host) error {
	f, err := h.Facts(ctx)
	if err != nil || len(f.MissingTools) == 0 {
		return err
	}
	installed, err := ensurePackages(ctx, h, f.MissingToolPackages()...)
	if err == nil && len(installed) > 0 {
		p.env.Log.Info("installed packages", "host", h.Name(), "packages", installed)
	}
	return err
}
