package host

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
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

// sourcesScript prints the package sources a host's package manager
// fetches from, and a proxy it goes through, as "source=URL" and
// "proxy=URL" lines.
const sourcesScript = `exec 2>/dev/null
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
  [ -r "$f" ] && awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i ~ /:/) { print "source=" $i; break } }' "$f"
done
for f in /etc/apt/sources.list.d/*.sources; do
  [ -r "$f" ] && awk 'tolower($1) == "uris:" { for (i = 2; i <= NF; i++) print "source=" $i }' "$f"
done
command -v apt-config >/dev/null && apt-config dump | awk '$1 ~ /^Acquire::https?::Proxy$/ { gsub(/[";]/, "", $2); print "proxy=" $2 }'
for f in /etc/yum.repos.d/*.repo; do
  [ -r "$f" ] && awk -F= '$1 ~ /^(baseurl|mirrorlist|metalink)[ \t]*$/ { gsub(/[ \t]/, "", $2); print "source=" $2 }' "$f"
done
[ -r /etc/dnf/dnf.conf ] && awk -F= '$1 ~ /^proxy[ \t]*$/ { gsub(/[ \t]/, "", $2); print "proxy=" $2 }' /etc/dnf/dnf.conf
true
`

// MirrorReachable reports whether the host can reach a package source:
// a TCP connection (3 s) to one of the servers its package manager is
// configured with, or to its proxy. A local source (file:, cdrom:)
// counts as reachable. why says what was tried when none answered.
func (h *Host) MirrorReachable(ctx context.Context) (ok bool, why string, err error) {
	out, err := h.Run(ctx, sourcesScript)
	if err != nil {
		return false, "", err
	}
	endpoints, local := packageEndpoints(out)
	if local {
		return true, "", nil
	}
	if len(endpoints) == 0 {
		return false, "no package source is configured", nil
	}
	var script strings.Builder
	for _, ep := range endpoints {
		// The addresses come from the host's own files: quoted, and
		// already checked to be a host name or address and a port.
		fmt.Fprintf(&script, "timeout 3 bash -c 'exec 3<>/dev/tcp/'%s'/'%s 2>/dev/null && { echo ok; exit 0; }\n", quote(ep.host), quote(ep.port))
	}
	script.WriteString("true\n")
	res, err := h.Run(ctx, script.String())
	if err != nil {
		return false, "", err
	}
	if strings.Contains(res, "ok") {
		return true, "", nil
	}
	names := make([]string, len(endpoints))
	for i, ep := range endpoints {
		names[i] = net.JoinHostPort(ep.host, ep.port)
	}
	return false, "no answer from " + strings.Join(names, ", "), nil
}

type endpoint struct{ host, port string }

// packageEndpoints reads sourcesScript's output: the servers to try (a
// proxy first, at most four) and whether a source is local.
func packageEndpoints(out string) (eps []endpoint, local bool) {
	seen := map[endpoint]bool{}
	var proxies, sources []endpoint
	for _, line := range strings.Split(out, "\n") {
		kind, raw, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok || raw == "" {
			continue
		}
		u, err := url.Parse(raw)
		if err != nil {
			continue
		}
		switch u.Scheme {
		case "file", "cdrom", "copy":
			if kind == "source" {
				local = true
			}
			continue
		case "http", "https", "ftp", "mirror+http", "mirror+https":
		default:
			continue
		}
		port := u.Port()
		if port == "" {
			port = map[bool]string{true: "443", false: "80"}[strings.HasSuffix(u.Scheme, "https")]
			if u.Scheme == "ftp" {
				port = "21"
			}
		}
		ep := endpoint{host: u.Hostname(), port: port}
		if !validHost(ep.host) || seen[ep] {
			continue
		}
		seen[ep] = true
		if kind == "proxy" {
			proxies = append(proxies, ep)
		} else {
			sources = append(sources, ep)
		}
	}
	eps = append(proxies, sources...)
	if len(proxies) > 0 { // everything goes through the proxy
		eps = proxies
	}
	if len(eps) > 4 {
		eps = eps[:4]
	}
	return eps, local
}

// validHost: a DNS name or an IP address, nothing a shell would read.
func validHost(s string) bool {
	if _, err := netip.ParseAddr(s); err == nil {
		return true
	}
	if s == "" || len(s) > 253 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-') {
			return false
		}
	}
	return true
}
