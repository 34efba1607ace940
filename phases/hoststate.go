package phases

import (
	"context"
	"fmt"
	"strings"

	"github.com/kubeforge/kubeforge/internal/host"
)

// What kubeforge remembers on a host of how it found it, so that reset can
// put it back: the packages it installed, and the kernel settings and
// firewall rules from before any component ran. Written once, at the
// first run; never overwritten.
const (
	HostStateDir          = "/var/lib/kubeforge"
	installedPackagesFile = HostStateDir + "/installed-packages"
	sysctlsBeforeFile     = HostStateDir + "/sysctl.before"
	iptablesBeforeFile    = HostStateDir + "/iptables.before"
	ip6tablesBeforeFile   = HostStateDir + "/ip6tables.before"
)

// sysctlKeys are the settings the runtime phase changes.
var sysctlKeys = []string{"net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables", "net.ipv4.ip_forward"}

// ensurePackages installs what is missing and remembers what it installed.
func ensurePackages(ctx context.Context, h *host.Host, pkgs ...string) ([]string, error) {
	installed, err := h.EnsurePackages(ctx, pkgs...)
	if err != nil || len(installed) == 0 {
		return installed, err
	}
	var list strings.Builder
	for _, p := range installed {
		fmt.Fprintln(&list, p)
	}
	_, err = h.RunWithInput(ctx, "mkdir -p "+HostStateDir+" && cat >> "+installedPackagesFile, []byte(list.String()))
	return installed, err
}

// recordOriginals keeps, once, the sysctls the runtime phase will change
// and the firewall rules as they are before kube-proxy, flanneld and the
// kubelet add theirs.
func recordOriginals(ctx context.Context, h *host.Host) error {
	var script strings.Builder
	fmt.Fprintf(&script, "set -e\nmkdir -p %s\n", HostStateDir)
	fmt.Fprintf(&script, "if [ ! -e %[1]s ]; then\n  : > %[1]s.tmp\n", sysctlsBeforeFile)
	for _, k := range sysctlKeys {
		fmt.Fprintf(&script, "  v=$(sysctl -n %[1]s 2>/dev/null) && echo \"%[1]s = $v\" >> %[2]s.tmp || true\n", k, sysctlsBeforeFile)
	}
	fmt.Fprintf(&script, "  mv %[1]s.tmp %[1]s\nfi\n", sysctlsBeforeFile)
	for file, cmd := range map[string]string{iptablesBeforeFile: "iptables-save", ip6tablesBeforeFile: "ip6tables-save"} {
		fmt.Fprintf(&script, "[ -e %[1]s ] || { (%[2]s 2>/dev/null || true) > %[1]s.tmp && mv %[1]s.tmp %[1]s; }\n", file, cmd)
	}
	_, err := h.Run(ctx, script.String())
	return err
}
