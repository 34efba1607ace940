package phases

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/kubeforge/kubeforge/internal/host"
	"github.com/kubeforge/kubeforge/internal/wait"
	"github.com/kubeforge/kubeforge/templates"
)

// runtimePackages are installed from the host's package manager when
// missing.
var runtimePackages = []string{"containerd", "runc", "iptables", "conntrack", "socat"}

// kernel settings every node needs: bridged traffic through iptables and
// IPv4 forwarding.
const (
	modulesFile = "/etc/modules-load.d/kubeforge.conf"
	sysctlFile  = "/etc/sysctl.d/99-kubeforge.conf"
	modules     = "overlay\nbr_netfilter\n"
	sysctls     = "net.bridge.bridge-nf-call-iptables = 1\nnet.bridge.bridge-nf-call-ip6tables = 1\nnet.ipv4.ip_forward = 1\n"
)

// runtimePhase prepares the container runtime: packages, kernel modules and
// sysctls, the containerd configuration, and the offline images.
type runtimePhase struct{ env *Env }

func (*runtimePhase) Title() string { return "Container runtime (containerd) and kernel settings" }

// hostQuirks are what a host cannot do that the configuration must work
// around; detected, never assumed.
type hostQuirks struct {
	// cannotLowerOOMScore: the runtime may not set a negative
	// oom_score_adj (a host without CAP_SYS_RESOURCE, like a container).
	cannotLowerOOMScore bool
}

func detectQuirks(ctx context.Context, h *host.Host) (hostQuirks, error) {
	ok, err := h.Check(ctx, "sh -c 'echo -999 > /proc/self/oom_score_adj' 2>/dev/null")
	return hostQuirks{cannotLowerOOMScore: !ok}, err
}

func (p *runtimePhase) desired(q hostQuirks) (Desired, error) {
	pause, ok := p.env.Bundle.Image("pause")
	if !ok {
		return Desired{}, fmt.Errorf("the bundle has no pause image")
	}
	toml, err := templates.Render("containerd/config.toml.tmpl", map[string]any{
		"SandboxImage":        pause.Ref,
		"RestrictOOMScoreAdj": q.cannotLowerOOMScore,
		"SystemdCgroup":       true,
	})
	if err != nil {
		return Desired{}, err
	}
	return Desired{
		Files: []File{
			{Path: modulesFile, Data: []byte("# " + templates.Header + "\n" + modules), Mode: host.FileMode{Perm: 0o644}},
			{Path: sysctlFile, Data: []byte("# " + templates.Header + "\n" + sysctls), Mode: host.FileMode{Perm: 0o644}},
			{Path: ContainerdConfig, Data: toml, Mode: host.FileMode{Perm: 0o644}},
		},
		// containerd's unit comes with its package.
		Services: []Service{{Name: "containerd", Inputs: []string{ContainerdConfig}}},
	}, nil
}

func (p *runtimePhase) missingImages(ctx context.Context, h *host.Host) ([]string, error) {
	ok, err := h.Check(ctx, "command -v ctr")
	if err != nil || !ok {
		return p.imageRefs(), err
	}
	out, err := h.Run(ctx, "ctr -n k8s.io images ls -q 2>/dev/null || true")
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, l := range strings.Fields(out) {
		have[l] = true
	}
	var missing []string
	for _, img := range p.env.Bundle.Images {
		if !have[img.Ref] {
			missing = append(missing, img.Ref)
		}
	}
	return missing, nil
}

func (p *runtimePhase) imageRefs() []string {
	var out []string
	for _, img := range p.env.Bundle.Images {
		out = append(out, img.Ref)
	}
	return out
}

func (p *runtimePhase) Plan(ctx context.Context, h *host.Host) ([]string, error) {
	var plan []string
	pkgs, err := h.MissingPackages(ctx, runtimePackages...)
	if err != nil {
		return nil, err
	}
	if len(pkgs) > 0 && !p.env.packagesStep() { // else the packages step lists them
		plan = append(plan, "install "+strings.Join(pkgs, " "))
	}
	q, err := detectQuirks(ctx, h)
	if err != nil {
		return nil, err
	}
	lines, err := planOf(ctx, h)(p.desired(q))
	if err != nil {
		return nil, err
	}
	plan = append(plan, lines...)
	imgs, err := p.missingImages(ctx, h)
	if err != nil {
		return nil, err
	}
	for _, ref := range imgs {
		plan = append(plan, "import image "+ref)
	}
	return plan, nil
}

func (p *runtimePhase) Run(ctx context.Context, h *host.Host) error {
	if installed, err := ensurePackages(ctx, h, runtimePackages...); err != nil {
		return err
	} else if len(installed) > 0 {
		p.env.Log.Info("installed packages", "host", h.Name(), "packages", installed)
	}
	q, err := detectQuirks(ctx, h)
	if err != nil {
		return err
	}
	d, err := p.desired(q)
	if err != nil {
		return err
	}
	if _, err := d.Apply(ctx, h); err != nil {
		return err
	}
	// Load the modules and apply the sysctls now, not only at boot. A
	// module built into the kernel is fine: modprobe succeeds for it. What
	// they were before is kept for reset.
	if _, err := h.Run(ctx, "modprobe overlay && modprobe br_netfilter"); err != nil {
		return fmt.Errorf("kernel modules: %w", err)
	}
	if err := recordOriginals(ctx, h); err != nil {
		return err
	}
	if _, err := h.Run(ctx, "sysctl -q -p "+sysctlFile); err != nil {
		return fmt.Errorf("kernel settings: %w", err)
	}
	if err := wait.For(ctx, 60*time.Second, func() (bool, error) {
		return h.Check(ctx, "ctr -n k8s.io version >/dev/null 2>&1")
	}); err != nil {
		return fmt.Errorf("containerd did not come up: %w (see journalctl -u containerd)", err)
	}
	missing, err := p.missingImages(ctx, h)
	if err != nil {
		return err
	}
	for _, ref := range missing {
		tar := CurrentBundle() + "/" + p.imagePath(ref)
		if _, err := h.Run(ctx, "ctr -n k8s.io images import "+host.Quote(tar)); err != nil {
			return fmt.Errorf("import %s: %w", ref, err)
		}
	}
	return nil
}

// imagePath is where an image's tarball is in the bundle.
func (p *runtimePhase) imagePath(ref string) string {
	for _, img := range p.env.Bundle.Images {
		if img.Ref == ref {
			return img.Path
		}
	}
	return ""
}
