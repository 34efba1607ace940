package host

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// PackageManager installs OS packages on one distribution family.
type PackageManager interface {
	Name() string
	// Installed reports whether a package is installed.
	InstalledCommand(pkg string) string
	// InstallCommand installs packages non-interactively.
	InstallCommand(pkgs ...string) string
}

type apt struct{}

func (apt) Name() string { return "apt" }
func (apt) InstalledCommand(pkg string) string {
	return "dpkg-query -W -f='${Status}' " + quote(pkg) + " 2>/dev/null | grep -q 'install ok installed'"
}
func (apt) InstallCommand(pkgs ...string) string {
	return "export DEBIAN_FRONTEND=noninteractive; (apt-get install -y --no-install-recommends " + strings.Join(pkgs, " ") +
		" || (apt-get update -q && apt-get install -y --no-install-recommends " + strings.Join(pkgs, " ") + "))"
}

type dnf struct{ cmd string }

func (d dnf) Name() string { return d.cmd }
func (dnf) InstalledCommand(pkg string) string {
	return "rpm -q " + quote(pkg) + " >/dev/null"
}
func (d dnf) InstallCommand(pkgs ...string) string {
	return d.cmd + " install -y " + strings.Join(pkgs, " ")
}

// packageManagers is the registry, by the name facts report.
var packageManagers = map[string]PackageManager{
	"apt": apt{},
	"dnf": dnf{cmd: "dnf"},
	"yum": dnf{cmd: "yum"},
}

// supportedFamilies are the OS IDs kubeforge installs on, and the package
// manager each uses.
var supportedFamilies = map[string][]string{
	"apt": {"debian", "ubuntu"},
	"dnf": {"rhel", "centos", "rocky", "almalinux", "fedora", "ol"},
}

// PackageManager returns the host's package manager.
func (f *Facts) PackageManagerFor() (PackageManager, error) {
	pm, ok := packageManagers[f.PackageManager]
	if !ok {
		return nil, fmt.Errorf("%s has no package manager kubeforge knows (apt, dnf, yum)", f.OSPretty)
	}
	return pm, nil
}

// Supported reports whether kubeforge supports the host's OS.
func (f *Facts) Supported() bool {
	for _, ids := range supportedFamilies {
		if slices.Contains(ids, f.OSID) {
			return true
		}
		for _, like := range f.OSIDLike {
			if slices.Contains(ids, like) {
				return true
			}
		}
	}
	return false
}

// MissingPackages returns the packages that are not installed, asked in
// one round trip.
func (h *Host) MissingPackages(ctx context.Context, pkgs ...string) ([]string, error) {
	pm, err := h.packageManager(ctx)
	if err != nil {
		return nil, err
	}
	var script strings.Builder
	for _, p := range pkgs {
		fmt.Fprintf(&script, "%s || echo %s\n", pm.InstalledCommand(p), quote(p))
	}
	out, err := h.Run(ctx, script.String())
	if err != nil {
		return nil, err
	}
	return strings.Fields(out), nil
}

func (h *Host) packageManager(ctx context.Context) (PackageManager, error) {
	f, err := h.Facts(ctx)
	if err != nil {
		return nil, err
	}
	pm, err := f.PackageManagerFor()
	if err != nil {
		return nil, h.Errorf("%w", err)
	}
	return pm, nil
}

// EnsurePackages installs the packages that are missing. It returns the
// ones it installed.
func (h *Host) EnsurePackages(ctx context.Context, pkgs ...string) ([]string, error) {
	missing, err := h.MissingPackages(ctx, pkgs...)
	if err != nil || len(missing) == 0 {
		return nil, err
	}
	pm, err := h.packageManager(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := h.Run(ctx, pm.InstallCommand(missing...)); err != nil {
		return nil, fmt.Errorf("install %s with %s: %w", strings.Join(missing, " "), pm.Name(), err)
	}
	return missing, nil
}
