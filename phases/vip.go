package phases

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
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
type vipPhase struct{ env *Env }

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

// vipPackages come from the host's package manager; curl runs the check.
var vipPackages = []string{"keepalived", "curl"}

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
		"CAFile": pki("ca.crt"),
		"URL":    fmt.Sprintf("https://127.0.0.1:%d/readyz", cp.Port),
	})
	if err != nil {
		return Desired{}, err
	}
	return Desired{
		Files: []File{
			{Path: KeepalivedConfig, Data: conf, Mode: host.FileMode{Perm: 0o644}},
			{Path: KeepalivedCheckScript, Data: check, Mode: host.FileMode{Perm: 0o755}},
			{Path: MaintenanceScript, Data: maintenance, Mode: host.FileMode{Perm: 0o755}},
		},
		// The unit comes with the package.
		Services: []Service{{Name: "keepalived", Inputs: []string{KeepalivedConfig, KeepalivedCheckScript, MaintenanceScript}, Reload: true}},
	}, nil
}

func (p *vipPhase) Plan(ctx context.Context, h *host.Host) ([]string, error) {
	var plan []string
	pkgs, err := h.MissingPackages(ctx, vipPackages...)
	if err != nil {
		return nil, err
	}
	if len(pkgs) > 0 && !p.env.packagesStep() { // else the packages step lists them
		plan = append(plan, "install "+strings.Join(pkgs, " "))
	}
	d, err := p.desired(ctx, h)
	if err != nil {
		return nil, err
	}
	lines, err := d.Plan(ctx, h)
	return append(plan, lines...), err
}

func (p *vipPhase) Run(ctx context.Context, h *host.Host) error {
	d, err := p.desired(ctx, h)
	if err != nil {
		return err
	}
	if _, err := ensurePackages(ctx, h, vipPackages...); err != nil {
		return err
	}
	if _, err := d.Apply(ctx, h); err != nil {
		return err
	}
	// Some control plane holds the VIP and serves the API through it.
	cp := p.env.Cluster.Spec.ControlPlane
	if err := wait.For(ctx, 90*time.Second, func() (bool, error) { return true, p.env.Client.EndpointReady(ctx, h) }); err != nil {
		return fmt.Errorf("the API does not answer at the VIP (%s): %w (see journalctl -u keepalived on the control planes)", cp.Endpoint, err)
	}
	return nil
}

// drainVIP gives the VIP away from h (see internal/vip), first bringing
// its keepalived configuration up to date: a cluster made by an older
// kubeforge may lack the maintenance check. It returns false when there
// is no VIP, or no other control plane to hold it.
func drainVIP(ctx context.Context, env *Env, h *host.Host) (bool, error) {
	if !vip.Movable(env.Cluster) {
		return false, nil
	}
	if err := (&vipPhase{env: env}).Run(ctx, h); err != nil {
		return false, err
	}
	if err := vip.MoveOff(ctx, env.Client, env.Cluster, h, h); err != nil {
		return false, err
	}
	return true, nil
}
