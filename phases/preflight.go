package phases

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-multierror"

	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/internal/host"
)

// preflightPhase checks, before anything is changed, that a host can run
// its part of the cluster. Each failure names the check (for
// --ignore-preflight-errors) and says what to fix.
type preflightPhase struct{ env *Env }

func (*preflightPhase) Title() string  { return "Preflight checks" }
func (*preflightPhase) ReadOnly() bool { return true }

// PreflightError is one failed check.
type PreflightError struct {
	Check string
	Msg   string
}

func (e *PreflightError) Error() string {
	return fmt.Sprintf("[%s] %s", e.Check, e.Msg)
}

// portOwners are the processes allowed to hold a port: our own component
// (a re-run), by the name the kernel shows (comm, 15 characters).
var portOwners = map[int]string{
	APIServerPort:         "kube-apiserver",
	EtcdClientPort:        "etcd",
	EtcdPeerPort:          "etcd",
	KubeletPort:           "kubelet",
	KubeProxyHealthPort:   "kube-proxy",
	ControllerManagerPort: "kube-controller", // comm is cut at 15 characters
	SchedulerPort:         "kube-scheduler",
}

// probeScript gathers what the checks need in one round trip.
const probeScript = `exec 2>/dev/null
echo "now=$(date +%s)"
if command -v ss >/dev/null; then ss -Htlnp | awk '{print "listen=" $4 " " $NF}'; else echo "noss=1"; fi
for m in br_netfilter overlay ip_vs; do
  if [ -d /sys/module/$m ] || grep -qE "/$m\.ko" /lib/modules/$(uname -r)/modules.builtin || modprobe -n $m; then echo "module=$m ok"; else echo "module=$m missing"; fi
done
[ -e /proc/sys/net/ipv4/ip_forward ] && echo "sysctl=ip_forward"
true
`

func (p *preflightPhase) Run(ctx context.Context, h *host.Host) error {
	out, err := h.Run(ctx, probeScript)
	if err != nil {
		return err
	}
	var problems []*PreflightError
	fail := func(check, format string, args ...any) {
		problems = append(problems, &PreflightError{Check: check, Msg: fmt.Sprintf(format, args...)})
	}
	warn := func(format string, args ...any) {
		fmt.Fprintf(p.env.Out, "[preflight] %-28s warning: %s\n", h.String(), fmt.Sprintf(format, args...))
	}
	note := func(format string, args ...any) {
		fmt.Fprintf(p.env.Out, "[preflight] %-28s %s\n", h.String(), fmt.Sprintf(format, args...))
	}
	spec := h.Spec
	f, err := h.Facts(ctx)
	if err != nil {
		return err
	}
	isCP, isEtcd := spec.Has(config.RoleControlPlane), spec.Has(config.RoleEtcd)

	if f.SwapBytes > 0 && !p.env.Cluster.Spec.Kubelet.AllowSwap {
		fail("Swap", "swap is on (%d MiB): turn it off (swapoff -a, and remove it from /etc/fstab) or set spec.kubelet.allowSwap: true",
			f.SwapBytes>>20)
	}
	if f.CgroupVersion == 1 {
		warn("cgroup v1: the kubelet runs with failCgroupV1: false; upstream deprecated cgroup v1 (containerd 2.2 and Kubernetes): move the host to cgroup v2")
	}
	if isCP && f.CPUs < 2 {
		fail("NumCPU", "%d CPU: a control plane needs at least 2", f.CPUs)
	}
	if isCP && f.MemoryBytes < 1700<<20 {
		fail("Mem", "%d MiB of memory: a control plane needs at least 1700 MiB", f.MemoryBytes>>20)
	}

	// Everything of kubeforge's comes from the bundle; the base tools from
	// the OS, installed only where one is missing, and only from a mirror
	// the host reaches.
	if len(f.MissingTools) > 0 {
		switch ok, why, err := h.MirrorReachable(ctx); {
		case err != nil:
			return err
		case f.PackageManager == "":
			fail("Packages", "it lacks %s and has no package manager kubeforge knows: install them, then run again", f.DescribeMissingTools())
		case !ok:
			fail("Packages", "it lacks %s, and its package manager reaches no package mirror (%s): install them from your own media or mirror, then run again",
				f.DescribeMissingTools(), why)
		default:
			note("lacks %s: installs it with %s", f.DescribeMissingTools(), f.PackageManager)
		}
	}
	if usesOSContainerd(f) {
		note("keeps the OS's containerd %s: it is a node already, and its runtime moves to the bundled containerd %s only with the node drained, a step of the upgrade (not of init or join)",
			f.Containerd, containerdVersion(p.env.Bundle))
	}

	ports := []int{KubeletPort, KubeProxyHealthPort}
	if isCP {
		ports = append(ports, APIServerPort, ControllerManagerPort, SchedulerPort)
	}
	if isEtcd {
		ports = append(ports, EtcdClientPort, EtcdPeerPort)
	}
	listeners := map[int]listener{}
	var now int64
	modules := map[string]bool{}
	ipForward := false
	for _, line := range strings.Split(out, "\n") {
		key, v, _ := strings.Cut(line, "=")
		switch key {
		case "now":
			now, _ = strconv.ParseInt(v, 10, 64)
		case "noss":
			warn("the ss command is missing (iproute2): ports were not checked")
		case "listen":
			addr, proc, _ := strings.Cut(v, " ")
			if i := strings.LastIndex(addr, ":"); i >= 0 {
				if port, err := strconv.Atoi(addr[i+1:]); err == nil {
					listeners[port] = parseListener(proc)
				}
			}
		case "module":
			name, state, _ := strings.Cut(v, " ")
			modules[name] = state == "ok"
		case "sysctl":
			ipForward = true
		}
	}
	slices.Sort(ports)
	for _, port := range ports {
		l, used := listeners[port]
		if used && l.name != portOwners[port] {
			fail(fmt.Sprintf("Port-%d", port), "port %d is in use by %s (pid %s): stop it, or move it to another port", port, l.name, l.pid)
		}
	}
	for _, m := range []string{"br_netfilter", "overlay"} {
		if !modules[m] {
			fail("KernelModules", "kernel module %s is neither loaded, built in, nor loadable: install the kernel's modules package", m)
		}
	}
	if p.env.Cluster.Spec.Networking.ProxyMode == config.ProxyIPVS && !modules["ip_vs"] {
		fail("KernelModules", "spec.networking.proxyMode is ipvs, but the kernel has no ip_vs module: use proxyMode iptables, or install the kernel's modules")
	}
	if !ipForward {
		fail("Sysctl", "/proc/sys/net/ipv4/ip_forward is missing: the kernel has no IPv4 forwarding")
	}
	if now > 0 {
		if skew := time.Since(time.Unix(now, 0)); skew > 30*time.Second || skew < -30*time.Second {
			warn("its clock is %s off this machine's: certificates may look not yet valid or expired; run NTP (chrony, systemd-timesyncd)", skew.Round(time.Second))
		}
	}

	var errs *multierror.Error
	for _, pe := range problems {
		if slices.Contains(p.env.IgnorePreflight, "all") || slices.Contains(p.env.IgnorePreflight, pe.Check) {
			warn("%s (ignored)", pe)
			continue
		}
		errs = multierror.Append(errs, pe)
	}
	if errs.ErrorOrNil() == nil {
		return nil
	}
	errs.ErrorFormat = func(es []error) string {
		lines := make([]string, len(es))
		for i, e := range es {
			lines[i] = e.Error()
		}
		return "preflight: " + strings.Join(lines, "; ") + " (skip a check with --ignore-preflight-errors=NAME)"
	}
	return h.Errorf("%w", errs)
}

// listener is a process listening on a port.
type listener struct{ name, pid string }

// parseListener reads ss's users:(("nginx",pid=1,fd=6)).
func parseListener(users string) listener {
	l := listener{name: users, pid: "?"}
	if i := strings.Index(users, `(("`); i >= 0 {
		rest := users[i+3:]
		if j := strings.Index(rest, `"`); j >= 0 {
			l.name = rest[:j]
		}
		if _, after, ok := strings.Cut(rest, "pid="); ok {
			l.pid, _, _ = strings.Cut(after, ",")
		}
	}
	return l
}
