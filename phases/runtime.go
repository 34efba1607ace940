package phases

import (
	"context"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/kubeforge/kubeforge/components/bundle"
	"github.com/kubeforge/kubeforge/internal/host"
	"github.com/kubeforge/kubeforge/internal/wait"
	"github.com/kubeforge/kubeforge/templates"
)

// kernel settings every node needs: bridged traffic through iptables and
// IPv4 forwarding.
const (
	modulesFile = "/etc/modules-load.d/kubeforge.conf"
	sysctlFile  = "/etc/sysctl.d/99-kubeforge.conf"
	modules     = "overlay\nbr_netfilter\n"
	sysctls     = "net.bridge.bridge-nf-call-iptables = 1\nnet.bridge.bridge-nf-call-ip6tables = 1\nnet.ipv4.ip_forward = 1\n"
)

// runtimePhase prepares the container runtime: kernel modules and
// sysctls, containerd from the bundle under kubeforge's own unit (with
// runc and the shim beside it, crictl pointed at it), and the offline
// images. A node made before kubeforge shipped its runtime keeps the OS's
// containerd: switching a running node's runtime needs its pods gone
// first (a drain), which is the upgrade's step, not init's or join's.
type runtimePhase struct {
	env *Env
	// switchOS: the node is drained (a step of an upgrade), so a node on
	// the OS's containerd moves to the bundle's: its unit shadows the OS's
	// (same name, /etc/systemd/system), its configuration is rewritten in
	// containerd 2's format, and the images are imported with its ctr.
	// The state under /var/lib/containerd is kept, containerd 2 reads 1.x's.
	switchOS bool
}

// keepsOS: this run leaves the host on the OS's containerd.
func (p *runtimePhase) keepsOS(f *host.Facts) bool { return usesOSContainerd(f) && !p.switchOS }

// Where the bundle's runtime runs from. It is not linked onto PATH: on a
// node that keeps the OS's containerd, the OS's runc and ctr stay the
// ones its containerd and its admin use.
func bundleBin(name string) string { return path.Join(CurrentBundle(), "bin", name) }

const (
	// CrictlConfig points crictl at our socket.
	CrictlConfig = "/etc/crictl.yaml"
	// RegistryConfigDir holds a directory per registry with its
	// hosts.toml (containerd's config_path).
	RegistryConfigDir = "/etc/containerd/certs.d"
	// containerdState is what containerd keeps; reset removes ours.
	containerdState = "/var/lib/containerd"
)

// usesOSContainerd reports whether a host keeps the OS's containerd: it
// has one on PATH, runs it from the OS's unit, and is a node already.
// Anywhere else, kubeforge's containerd is installed (over an OS one
// installed but not yet serving a kubelet).
func usesOSContainerd(f *host.Facts) bool {
	return f.Containerd != "" && f.ContainerdUnit != "" && f.ContainerdUnit != UnitPath("containerd") && f.KubeletConfigured
}

// ctr is the ctr that talks to the host's containerd.
func ctr(f *host.Facts) string {
	if usesOSContainerd(f) {
		return "ctr"
	}
	return bundleBin("ctr")
}

// containerdUnit runs the bundle's containerd. Its PATH starts with the
// bundle, where containerd finds containerd-shim-runc-v2.
func containerdUnit() ([]byte, error) {
	return unit{
		Description:    "containerd container runtime (kubeforge)",
		Documentation:  "https://containerd.io",
		After:          []string{"network.target", "local-fs.target"},
		Type:           "notify",
		Environment:    []string{"PATH=" + path.Join(CurrentBundle(), "bin") + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		Exec:           bundleBin("containerd"),
		Args:           []string{"--config", ContainerdConfig},
		RestartSec:     "5s",
		LimitNOFILE:    1048576,
		Delegate:       true, // and KillMode=process: a restart keeps the pods' shims
		OOMScoreAdjust: -999,
		Extra:          []string{"TasksMax=infinity"},
	}.render()
}

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

func (p *runtimePhase) desired(f *host.Facts, q hostQuirks) (Desired, error) {
	pause, ok := p.env.Bundle.Image("pause")
	if !ok {
		return Desired{}, fmt.Errorf("the bundle has no pause image")
	}
	d := Desired{Files: []File{
		{Path: modulesFile, Data: []byte("# " + templates.Header + "\n" + modules), Mode: host.FileMode{Perm: 0o644}},
		{Path: sysctlFile, Data: []byte("# " + templates.Header + "\n" + sysctls), Mode: host.FileMode{Perm: 0o644}},
	}}
	if p.keepsOS(f) {
		toml, err := templates.Render("containerd/config-1.x.toml.tmpl", map[string]any{
			"SandboxImage":        pause.Ref,
			"RestrictOOMScoreAdj": q.cannotLowerOOMScore,
			"SystemdCgroup":       true,
		})
		if err != nil {
			return Desired{}, err
		}
		d.Files = append(d.Files, File{Path: ContainerdConfig, Data: toml, Mode: host.FileMode{Perm: 0o644}})
		// The OS's unit, from its package.
		d.Services = []Service{{Name: "containerd", Inputs: []string{ContainerdConfig}}}
		return d, nil
	}
	toml, err := templates.Render("containerd/config.toml.tmpl", map[string]any{
		"Version":             containerdVersion(p.env.Bundle),
		"SandboxImage":        pause.Ref,
		"RegistryConfigPath":  RegistryConfigDir,
		"RestrictOOMScoreAdj": q.cannotLowerOOMScore,
		"Runc":                bundleBin("runc"),
		"SystemdCgroup":       true,
		"CNIBinDir":           CNIBinDir,
		"CNIConfDir":          CNIConfDir,
	})
	if err != nil {
		return Desired{}, err
	}
	crictl, err := templates.Render("containerd/crictl.yaml.tmpl", map[string]any{"Socket": ContainerdSocket})
	if err != nil {
		return Desired{}, err
	}
	u, err := containerdUnit()
	if err != nil {
		return Desired{}, err
	}
	d.Files = append(d.Files,
		File{Path: ContainerdConfig, Data: toml, Mode: host.FileMode{Perm: 0o644}},
		File{Path: CrictlConfig, Data: crictl, Mode: host.FileMode{Perm: 0o644}})
	d.Services = []Service{{Name: "containerd", Unit: u, Inputs: []string{ContainerdConfig}}}
	return d, nil
}

func (p *runtimePhase) missingImages(ctx context.Context, h *host.Host, f *host.Facts) ([]string, error) {
	ok, err := h.Check(ctx, "command -v "+host.Quote(ctr(f)))
	if err != nil || !ok {
		return p.imageRefs(), err
	}
	out, err := h.Run(ctx, host.Quote(ctr(f))+" -n k8s.io images ls -q 2>/dev/null || true")
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
	f, err := h.Facts(ctx)
	if err != nil {
		return nil, err
	}
	var plan []string
	if !p.env.packagesStep() { // else the packages step lists them
		if plan, err = (&packagesPhase{env: p.env}).Plan(ctx, h); err != nil {
			return nil, err
		}
	}
	q, err := detectQuirks(ctx, h)
	if err != nil {
		return nil, err
	}
	lines, err := planOf(ctx, h)(p.desired(f, q))
	if err != nil {
		return nil, err
	}
	plan = append(plan, lines...)
	imgs, err := p.missingImages(ctx, h, f)
	if err != nil {
		return nil, err
	}
	for _, ref := range imgs {
		plan = append(plan, "import image "+ref)
	}
	return plan, nil
}

func (p *runtimePhase) Run(ctx context.Context, h *host.Host) error {
	f, err := h.Facts(ctx)
	if err != nil {
		return err
	}
	// A no-op after the packages step; here for `init phase runtime` alone.
	if installed, err := ensurePackages(ctx, h, f.MissingToolPackages()...); err != nil {
		return err
	} else if len(installed) > 0 {
		p.env.Log.Info("installed packages", "host", h.Name(), "packages", installed)
	}
	q, err := detectQuirks(ctx, h)
	if err != nil {
		return err
	}
	d, err := p.desired(f, q)
	if err != nil {
		return err
	}
	if _, err := d.Apply(ctx, h); err != nil {
		return err
	}
	if usesOSContainerd(f) && !p.keepsOS(f) {
		// Switched: systemd runs the bundle's containerd now, and the
		// facts say so (ctr is the bundle's from here on).
		if f, err = h.GatherFacts(ctx); err != nil {
			return err
		}
		if usesOSContainerd(f) {
			return fmt.Errorf("containerd.service still runs from %s after kubeforge's unit was written to %s: read systemctl status containerd", f.ContainerdUnit, UnitPath("containerd"))
		}
		p.env.Log.Info("switched to the bundle's containerd", "host", h.Name())
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
		return h.Check(ctx, host.Quote(ctr(f))+" -n k8s.io version >/dev/null 2>&1")
	}); err != nil {
		return fmt.Errorf("containerd did not come up: %w (see journalctl -u containerd)", err)
	}
	missing, err := p.missingImages(ctx, h, f)
	if err != nil {
		return err
	}
	for _, ref := range missing {
		tar := CurrentBundle() + "/" + p.imagePath(ref)
		if _, err := h.Run(ctx, host.Quote(ctr(f))+" -n k8s.io images import "+host.Quote(tar)); err != nil {
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

// containerdVersion is the bundle's containerd version, for the config's
// header ("" from a bundle without one).
func containerdVersion(m *bundle.Manifest) string {
	if m == nil {
		return ""
	}
	_, prog, _ := m.Program("containerd")
	return prog.Version
}
