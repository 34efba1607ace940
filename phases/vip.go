package phases

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/internal/host"
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
	// MaintenanceScript fails while MaintenanceFlag exists: the host's VRRP
	// priority then drops by maintenanceWeight, below every other's.
	MaintenanceScript = "/etc/keepalived/kubeforge-maintenance.sh"
	MaintenanceFlag   = "/etc/keepalived/kubeforge-maintenance"
	maintenanceWeight = 190
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
	vip, err := netip.ParseAddr(cp.VIP)
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
		"VIP":               vip.String(),
		"Bits":              vip.BitLen(),
		"RouterID":          h.Name(),
		"CheckScript":       KeepalivedCheckScript,
		"Interface":         iface,
		"VirtualRouterID":   cp.VirtualRouterID,
		"Priority":          vipPriority(c, h.Spec),
		"Self":              h.Spec.ClusterAddress().String(),
		"Peers":             peers,
		"MaintenanceScript": MaintenanceScript,
		"MaintenanceWeight": maintenanceWeight,
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

// Giving the VIP away without a gap, for a control plane whose API server
// or etcd is about to restart (a renewal, a removal, an upgrade).

// holdsVIP reports whether h has the VIP on an interface.
func holdsVIP(ctx context.Context, h *host.Host, vip string) (bool, error) {
	out, err := h.Run(ctx, "ip -o addr show")
	return strings.Contains(out, " "+vip+"/"), err
}

// vipAnswers: some control plane holds the VIP and serves the API there,
// as seen from h.
func vipAnswers(ctx context.Context, env *Env, h *host.Host) (bool, error) {
	return env.Client.EndpointReady(ctx, h) == nil, nil
}

// drainVIP puts h in maintenance: its VRRP priority drops below its peers',
// so a healthy one takes the VIP before h lets it go. It returns false when
// there is no VIP, or no other control plane to hold it.
func drainVIP(ctx context.Context, env *Env, h *host.Host) (bool, error) {
	cp := env.Cluster.Spec.ControlPlane
	if cp.VIP == "" || len(env.Cluster.HostsWith(config.RoleControlPlane)) < 2 {
		return false, nil
	}
	// keepalived must know the maintenance check (a cluster made by an
	// older kubeforge): bring its configuration up to date first.
	if err := (&vipPhase{env: env}).Run(ctx, h); err != nil {
		return false, err
	}
	if err := moveVIPOff(ctx, env, h, h); err != nil {
		return false, err
	}
	return true, nil
}

// moveVIPOff puts h in maintenance and waits until it no longer holds the
// VIP and the API answers through the VIP, asked from probe. On failure
// the maintenance ends again.
func moveVIPOff(ctx context.Context, env *Env, h, probe *host.Host) error {
	vip := env.Cluster.Spec.ControlPlane.VIP
	if _, err := h.Run(ctx, "touch "+MaintenanceFlag); err != nil {
		return err
	}
	err := wait.For(ctx, 30*time.Second, func() (bool, error) {
		held, err := holdsVIP(ctx, h, vip)
		if err != nil || held {
			return false, err
		}
		return vipAnswers(ctx, env, probe)
	})
	if err != nil {
		_, _ = h.Run(context.WithoutCancel(ctx), "rm -f "+MaintenanceFlag)
		return fmt.Errorf("no other control plane took the VIP %s: %w (see journalctl -u keepalived)", vip, err)
	}
	return nil
}

// undrainVIP ends h's maintenance: it may hold the VIP again (and, having
// the highest priority, takes it back, make before break).
func undrainVIP(ctx context.Context, env *Env, h *host.Host) error {
	if _, err := h.Run(ctx, "rm -f "+MaintenanceFlag); err != nil {
		return err
	}
	// Its checks pass twice a second apart before keepalived counts it.
	time.Sleep(3 * time.Second)
	return wait.For(ctx, time.Minute, func() (bool, error) { return vipAnswers(ctx, env, h) })
}
