package host

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Facts are what kubeforge observed on a host. They are kept apart from
// the cluster file's desired state.
type Facts struct {
	Hostname       string
	OSID           string // /etc/os-release ID: debian, ubuntu, rocky...
	OSIDLike       []string
	OSVersion      string // VERSION_ID
	OSPretty       string
	Arch           string // uname -m: x86_64, aarch64
	Kernel         string
	InitSystem     string // systemd, or what PID 1 is
	CgroupVersion  int    // 1 or 2
	MemoryBytes    int64
	CPUs           int
	SwapBytes      int64
	PackageManager string // apt, dnf, yum, or ""
	// Containerd, Runc and Keepalived are the versions of the OS's
	// programs on PATH, "" when there are none (kubeforge's own run from
	// the bundle, off PATH).
	Containerd string
	Runc       string
	Keepalived string
	// ContainerdUnit is the file systemd runs containerd.service from, ""
	// when there is none: kubeforge's is /etc/systemd/system/containerd.service.
	ContainerdUnit string
	// KubeletConfigured: the host is a node already (the kubelet's
	// configuration exists).
	KubeletConfigured bool
	// MissingTools are the base commands of BaseTools the host lacks.
	MissingTools []string
	// Addresses are the host's IPv4 addresses with their prefixes, by
	// interface.
	Addresses map[string][]netip.Prefix
	// ResolvConf is the resolver file with the host's real upstreams:
	// systemd-resolved's when it runs (its stub, 127.0.0.53, would loop in
	// a pod), else /etc/resolv.conf. Nameservers are the ones it lists.
	ResolvConf  string
	Nameservers []netip.Addr
}

// Upstreams are the nameservers a pod can reach: not loopback addresses,
// which inside a pod are the pod itself.
func (f *Facts) Upstreams() []netip.Addr {
	var out []netip.Addr
	for _, a := range f.Nameservers {
		if !a.IsLoopback() {
			out = append(out, a)
		}
	}
	return out
}

// factsScript prints key=value lines, one command per fact, so one SSH
// round trip gathers everything. Keys are parsed by parseFacts.
var factsScript = `exec 2>/dev/null
echo "hostname=$(hostname)"
if [ -r /etc/os-release ]; then . /etc/os-release; echo "os_id=$ID"; echo "os_id_like=$ID_LIKE"; echo "os_version=$VERSION_ID"; echo "os_pretty=$PRETTY_NAME"; fi
echo "arch=$(uname -m)"
echo "kernel=$(uname -r)"
echo "init=$(ps -p 1 -o comm= 2>/dev/null || cat /proc/1/comm)"
[ -d /run/systemd/system ] && echo "systemd_running=1"
echo "cgroupfs=$(stat -fc %T /sys/fs/cgroup)"
echo "mem=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)"
echo "swap=$(awk '/^SwapTotal:/ {print $2}' /proc/meminfo)"
echo "cpus=$(nproc)"
for pm in apt-get dnf yum; do if command -v $pm >/dev/null; then echo "pkg=$pm"; break; fi; done
command -v containerd >/dev/null && echo "containerd=$(containerd --version)"
command -v runc >/dev/null && echo "runc=$(runc --version | head -1)"
command -v keepalived >/dev/null && echo "keepalived=$(keepalived --version 2>&1 | head -1)"
echo "containerd_unit=$(systemctl show -P FragmentPath containerd.service)"
[ -e /var/lib/kubelet/config.yaml ] && echo "kubelet_configured=1"
for t in ` + baseToolList + `; do command -v $t >/dev/null || echo "missing_tool=$t"; done
ip -o -4 addr show 2>/dev/null | awk '{print "addr=" $2 " " $4}'
rc=/etc/resolv.conf; [ -s /run/systemd/resolve/resolv.conf ] && rc=/run/systemd/resolve/resolv.conf
echo "resolvconf=$rc"
awk '$1 == "nameserver" {print "nameserver=" $2}' $rc
true
`

// GatherFacts observes the host.
func (h *Host) GatherFacts(ctx context.Context) (*Facts, error) {
	out, err := h.Run(ctx, factsScript)
	if err != nil {
		return nil, fmt.Errorf("gather facts: %w", err)
	}
	f, err := parseFacts(out)
	if err != nil {
		return nil, h.Errorf("facts: %w", err)
	}
	h.SetFacts(f)
	return f, nil
}

// Facts are the host's facts, gathered on first use and kept for the
// connection's life (GatherFacts reads them again). A failed read is not
// kept: the next call tries again.
func (h *Host) Facts(ctx context.Context) (*Facts, error) {
	h.factsMu.Lock()
	f := h.facts
	h.factsMu.Unlock()
	if f != nil {
		return f, nil
	}
	return h.GatherFacts(ctx)
}

// SetFacts records facts observed another way (a test, a machine that
// describes itself).
func (h *Host) SetFacts(f *Facts) {
	h.factsMu.Lock()
	h.facts = f
	h.factsMu.Unlock()
}

func parseFacts(out string) (*Facts, error) {
	f := &Facts{Addresses: map[string][]netip.Prefix{}}
	systemd := false
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		key, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		switch key {
		case "hostname":
			f.Hostname = v
		case "os_id":
			f.OSID = v
		case "os_id_like":
			f.OSIDLike = strings.Fields(v)
		case "os_version":
			f.OSVersion = v
		case "os_pretty":
			f.OSPretty = v
		case "arch":
			f.Arch = v
		case "kernel":
			f.Kernel = v
		case "init":
			f.InitSystem = strings.TrimSpace(v)
		case "systemd_running":
			systemd = true
		case "cgroupfs":
			switch v {
			case "cgroup2fs":
				f.CgroupVersion = 2
			case "tmpfs":
				f.CgroupVersion = 1
			}
		case "mem":
			kb, _ := strconv.ParseInt(v, 10, 64)
			f.MemoryBytes = kb * 1024
		case "swap":
			kb, _ := strconv.ParseInt(v, 10, 64)
			f.SwapBytes = kb * 1024
		case "cpus":
			f.CPUs, _ = strconv.Atoi(v)
		case "pkg":
			f.PackageManager = strings.TrimSuffix(v, "-get")
		case "containerd":
			f.Containerd = versionWord(v)
		case "runc":
			f.Runc = versionWord(v)
		case "keepalived":
			f.Keepalived = versionWord(v)
		case "containerd_unit":
			f.ContainerdUnit = v
		case "kubelet_configured":
			f.KubeletConfigured = true
		case "missing_tool":
			f.MissingTools = append(f.MissingTools, v)
		case "resolvconf":
			f.ResolvConf = v
		case "nameserver":
			if a, err := netip.ParseAddr(v); err == nil {
				f.Nameservers = append(f.Nameservers, a)
			}
		case "addr":
			iface, cidr, _ := strings.Cut(v, " ")
			if p, err := netip.ParsePrefix(cidr); err == nil {
				f.Addresses[iface] = append(f.Addresses[iface], p)
			}
		}
	}
	if systemd {
		f.InitSystem = "systemd"
	}
	if f.OSID == "" || f.Arch == "" {
		return nil, fmt.Errorf("could not read /etc/os-release and uname: got %q", strings.TrimSpace(out))
	}
	return f, nil
}

// VersionWord picks the version out of a program's --version line.
func VersionWord(s string) string { return versionWord(s) }

// versionWord picks the version out of "containerd github.com/... 1.6.20 ..."
// or "runc version 1.1.5" or "Keepalived v2.2.7 (...)".
func versionWord(s string) string {
	for _, w := range strings.Fields(s) {
		w = strings.TrimPrefix(w, "v")
		if len(w) > 0 && w[0] >= '0' && w[0] <= '9' && strings.Contains(w, ".") {
			return w
		}
	}
	return strings.TrimSpace(s)
}

// GoArch is the Go architecture of the host ("amd64"), to match bundles.
func (f *Facts) GoArch() string {
	switch f.Arch {
	case "x86_64", "amd64":
		return "amd64"
	case "aarch64", "arm64":
		return "arm64"
	}
	return f.Arch
}

// PrefixOf returns the prefix of the interface holding addr.
func (f *Facts) PrefixOf(addr netip.Addr) (string, netip.Prefix, bool) {
	for iface, prefixes := range f.Addresses {
		for _, p := range prefixes {
			if p.Addr() == addr {
				return iface, p, true
			}
		}
	}
	return "", netip.Prefix{}, false
}
