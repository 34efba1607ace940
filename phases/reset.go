package phases

import (
	"context"
	"fmt"
	"path"
	"strings"

	"github.com/kubeforge/kubeforge/internal/host"
)

// resetPhase undoes init and join on a host: the services and timers,
// the pods' containers and their mounts and network namespaces, the pod
// network's interfaces, the firewall chains of kube-proxy, flanneld and
// the kubelet (and the rules from before init, when it kept them), the
// files kubeforge wrote, and the kernel settings the runtime needs (back
// to what they were). The kubelet's own (KubeletSysctlFile) keep their
// values until the next boot, as when the kubelet set them itself: a
// kernel shared with other nodes (containers on one machine) would
// otherwise take them from under those nodes' kubelets. The OS packages
// stay unless purge.
type resetPhase struct {
	env   *Env
	purge bool
}

// NewReset is the reset phase; purge also removes the OS packages
// kubeforge installed.
func NewReset(env *Env, purge bool) Phase { return &resetPhase{env: env, purge: purge} }

func (*resetPhase) Title() string { return "Reset: remove everything kubeforge put on the host" }

// resetServices are kubeforge's units, the ones a reset stops first.
var resetServices = []string{TimerUnit + ".timer", SnapshotTimerUnit + ".timer", "kubelet", "kube-proxy", "flanneld",
	"kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd", "keepalived"}

// resetPaths are the files and directories kubeforge writes. The etcd
// user's sysusers file goes (/etc/sysusers.d stays: a distribution may
// ship it), the user stays: it owns no file once EtcdDataDir is gone, a
// user kubeforge did not make (an OS package's etcd) must not be
// deleted, and a deleted user's UID could be handed to a later user, who
// would own what the old one left anywhere (Debian's packages keep their
// system users for this). A next init finds it there.
var resetPaths = []string{KubernetesDir, EtcdDataDir, EtcdDataDir + ".before-restore-*", KubeletDir, KubeProxyDir,
	FlannelDir, "/run/flannel", "/var/lib/cni", CNIConfDir + "/10-flannel.conflist", ContainerdConfig, modulesFile, sysctlFile, KubeletSysctlFile,
	KeepalivedConfig, KeepalivedCheckScript, MaintenanceScript, MaintenanceFlag, BundleRoot, CurrentBundle(), KeptArchiveDir, SnapshotScript, path.Dir(SnapshotScript),
	EtcdSysusersFile, EtcdTLSDir,
	"/etc/systemd/system/kubelet.service", "/etc/systemd/system/kube-proxy.service", "/etc/systemd/system/flanneld.service",
	"/etc/systemd/system/kube-scheduler.service", "/etc/systemd/system/kube-controller-manager.service",
	"/etc/systemd/system/kube-apiserver.service", "/etc/systemd/system/etcd.service", "/etc/systemd/system/keepalived.service",
	"/etc/systemd/system/" + TimerUnit + ".service", "/etc/systemd/system/" + TimerUnit + ".timer",
	"/etc/systemd/system/" + SnapshotTimerUnit + ".service", "/etc/systemd/system/" + SnapshotTimerUnit + ".timer"}

func (p *resetPhase) Plan(context.Context, *host.Host) ([]string, error) {
	lines := []string{"stop and remove kubeforge's services and timers",
		"stop the pods' containers, unmount their volumes, remove their network namespaces and images",
		"remove cni0, flannel.1 and the KUBE-, FLANNEL- and CNI- firewall chains",
		"remove " + strings.Join(resetPaths[:6], ", ") + " and the rest kubeforge wrote",
		"stop kubeforge's containerd and remove it with its state (" + containerdState + "); an OS containerd stays",
		"put the kernel settings back as they were (the kubelet's stay until the next boot)"}
	if p.purge {
		lines = append(lines, "purge the OS packages kubeforge installed")
	}
	return lines, nil
}

// firewallCleanup removes, in every table, the rules that jump to the
// chains of kube-proxy, flanneld, the kubelet and the CNI plugins, then
// those chains.
const firewallCleanup = `for ipt in iptables ip6tables; do
  command -v $ipt >/dev/null || continue
  for t in filter nat mangle raw; do
    $ipt -t $t -S 2>/dev/null | grep -E -- '-j (KUBE-|FLANNEL-|CNI-)' | sed 's/^-A /-D /' | while read -r rule; do eval "$ipt -t $t $rule" 2>/dev/null; done
    for c in $($ipt -t $t -S 2>/dev/null | awk '/^-N (KUBE-|FLANNEL-|CNI-)/ {print $2}'); do $ipt -t $t -F "$c" 2>/dev/null; done
    for c in $($ipt -t $t -S 2>/dev/null | awk '/^-N (KUBE-|FLANNEL-|CNI-)/ {print $2}'); do $ipt -t $t -X "$c" 2>/dev/null; done
  done
done
`

func (p *resetPhase) Run(ctx context.Context, h *host.Host) error {
	var s strings.Builder
	s.WriteString("set +e\nexec 2>/dev/null\n")
	// The API server is killed, not stopped: its graceful stop waits for
	// watches to end (TimeoutStopSec), and its host leaves anyway. Never
	// keepalived: killed, it would leave the VIP on the interface.
	s.WriteString("systemctl kill --signal=SIGKILL kube-apiserver.service >/dev/null 2>&1\n")
	fmt.Fprintf(&s, "for u in %s; do systemctl disable --now $u >/dev/null 2>&1; done\n", strings.Join(resetServices, " "))
	// The pods: their containers, then what they mounted and their
	// network namespaces.
	f, err := h.Facts(ctx)
	if err != nil {
		return err
	}
	ours := f.ContainerdUnit == UnitPath("containerd")
	fmt.Fprintf(&s, "CTR=%s\n", host.Quote(ctr(f)))
	s.WriteString(`if command -v "$CTR" >/dev/null; then
  for t in $("$CTR" -n k8s.io tasks ls -q); do "$CTR" -n k8s.io tasks kill -s SIGKILL "$t"; done
  sleep 1
  for t in $("$CTR" -n k8s.io tasks ls -q); do "$CTR" -n k8s.io tasks delete -f "$t"; done
  "$CTR" -n k8s.io containers ls -q | xargs -r "$CTR" -n k8s.io containers rm
  "$CTR" -n k8s.io images ls -q | xargs -r "$CTR" -n k8s.io images rm
  "$CTR" -n k8s.io snapshots ls 2>/dev/null | awk 'NR>1 {print $1}' | xargs -r "$CTR" -n k8s.io snapshots rm
  "$CTR" namespaces rm k8s.io
fi
`)
	if ours {
		// kubeforge's runtime goes with its state; its unit below.
		s.WriteString("systemctl disable --now containerd.service >/dev/null 2>&1\n")
	}
	s.WriteString(`# The kubelet's cgroup slices (transient units, with the systemd driver).
systemctl stop kubepods.slice >/dev/null 2>&1
awk '$2 ~ "^/var/lib/kubelet|^/run/netns/cni-|^/run/containerd/io.containerd|^/var/run/netns/cni-" {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l
for ns in $(ip netns list | awk '/^cni-/ {print $1}'); do ip netns delete "$ns"; done
rmdir /run/netns  # made for the pods' namespaces; kept when anything else is in it
ip link delete cni0
ip link delete flannel.1
`)
	s.WriteString(firewallCleanup)
	// The rules from before init, when kept (a host with rules of its own).
	fmt.Fprintf(&s, "[ -s %[1]s ] && iptables-restore < %[1]s\n[ -s %[2]s ] && ip6tables-restore < %[2]s\n", iptablesBeforeFile, ip6tablesBeforeFile)
	// Kernel settings back as they were, before their file goes.
	fmt.Fprintf(&s, "[ -e %[1]s ] && sysctl -q -p %[1]s\n", sysctlsBeforeFile)
	if p.purge {
		fmt.Fprintf(&s, "[ -s %[1]s ] && DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq $(sort -u %[1]s) >/dev/null\n", installedPackagesFile)
	}
	// The programs' links into any bundle (kubelet -> kube -> /opt/kubeforge/...).
	fmt.Fprintf(&s, "find %s %s -maxdepth 1 -type l \\( -lname '%s/*' -o -lname kube \\) -delete\n", BinDir, CNIBinDir, BundleRoot)
	fmt.Fprintf(&s, "rmdir %s /opt/cni 2>/dev/null\n", CNIBinDir)
	var quoted []string
	for _, l := range append([]string{TimerBinary}, resetPaths...) {
		if strings.Contains(l, "*") { // a glob: leave it to the shell
			quoted = append(quoted, l)
			continue
		}
		quoted = append(quoted, host.Quote(l))
	}
	fmt.Fprintf(&s, "rm -rf %s\n", strings.Join(quoted, " "))
	fmt.Fprintf(&s, "rmdir %s 2>/dev/null\n", CNIConfDir)
	// The pods' logs and the bundle archive, then what kubeforge kept.
	fmt.Fprintf(&s, "rm -rf /var/log/pods /var/log/containers %s\n", HostStateDir)
	s.WriteString("systemctl daemon-reload\nsystemctl reset-failed >/dev/null 2>&1\n")
	if ours {
		awk := "awk '$2 ~ \"^" + containerdState + "|^/run/containerd\" {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l\n"
		s.WriteString(awk)
		// /run/nri: containerd 2.x's NRI socket.
		fmt.Fprintf(&s, "rm -rf %s %s /run/containerd /run/nri %s\nrmdir /etc/containerd 2>/dev/null\n", host.Quote(UnitPath("containerd")), containerdState, CrictlConfig)
		s.WriteString("systemctl daemon-reload\n")
	} else {
		// The OS's containerd stays, on its own configuration again.
		s.WriteString("systemctl is-active containerd >/dev/null && systemctl restart containerd\n")
	}
	s.WriteString("true\n")
	if _, err := h.Run(ctx, s.String()); err != nil {
		return err
	}
	return nil
}
