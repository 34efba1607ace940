package phases

import (
	"context"
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"

	utilsysctl "k8s.io/component-helpers/node/util/sysctl"

	"github.com/kubeforge/kubeforge/internal/host"
	"github.com/kubeforge/kubeforge/templates"
)

// KubeletSysctlFile holds the kernel settings the kubelet checks at every
// start (its container manager's setupKernelTunables, k8s.io/kubernetes
// pkg/kubelet/cm/container_manager_linux.go, with upstream's names and
// values from k8s.io/component-helpers/node/util/sysctl). Without
// protectKernelDefaults the kubelet changes them itself; with it (CIS
// 4.2.6 up to the benchmark for Kubernetes 1.24; cis-1.12 dropped the
// check) it refuses to start while one differs, so the kubelet never
// changes the kernel behind the node's own configuration. kubeforge
// writes them to a file the boot applies before any service starts, and
// applies it before the kubelet starts.
const KubeletSysctlFile = "/etc/sysctl.d/90-kubeforge-kubelet.conf"

// kernelSetting is one setting, by its /proc/sys path (vm/overcommit_memory).
type kernelSetting struct {
	key   string
	value int
}

// name is how sysctl and sysctl.d write it: vm.overcommit_memory.
func (s kernelSetting) name() string { return strings.ReplaceAll(s.key, "/", ".") }

func kubeletKernelSettings() []kernelSetting {
	return []kernelSetting{
		{utilsysctl.VMOvercommitMemory, utilsysctl.VMOvercommitMemoryAlways},
		{utilsysctl.VMPanicOnOOM, utilsysctl.VMPanicOnOOMInvokeOOMKiller},
		{utilsysctl.KernelPanic, utilsysctl.KernelPanicRebootTimeout},
		{utilsysctl.KernelPanicOnOops, utilsysctl.KernelPanicOnOopsAlways},
		{utilsysctl.RootMaxKeys, utilsysctl.RootMaxKeysSetting},
		{utilsysctl.RootMaxBytes, utilsysctl.RootMaxBytesSetting},
	}
}

// kubeletSysctlFile is the file with those settings.
func kubeletSysctlFile() File {
	var b strings.Builder
	b.WriteString("# " + templates.Header + "\n# What the kubelet checks at start (protectKernelDefaults).\n")
	for _, s := range kubeletKernelSettings() {
		fmt.Fprintf(&b, "%s = %d\n", s.name(), s.value)
	}
	return File{Path: KubeletSysctlFile, Data: []byte(b.String()), Mode: host.FileMode{Perm: 0o644}}
}

// kernelState is what a host's kernel holds of the kubelet's settings.
type kernelState struct {
	now      map[string]string // by name; absent: the kernel has no such setting
	writable map[string]bool
	// laterAtBoot are the settings a sysctl.d file applied after ours at
	// boot leaves different from ours, by name.
	laterAtBoot map[string]bootSetting
	applyErrors []string // what sysctl -p said, when it failed
}

// bootSetting is a value a sysctl.d file gives a setting.
type bootSetting struct{ file, value string }

// kernelProbe reads the settings, whether /proc/sys lets them be written,
// and what the boot's sysctl.d files (as systemd applies them, in order)
// say of them, in one round trip.
func kernelProbe() string {
	var b strings.Builder
	b.WriteString("for k in")
	for _, s := range kubeletKernelSettings() {
		b.WriteString(" " + host.Quote(s.key))
	}
	b.WriteString(`; do
  f=/proc/sys/$k
  if [ -e "$f" ]; then w=ro; [ -w "$f" ] && w=rw; echo "now $k $w $(cat "$f" 2>/dev/null)"; fi
done
command -v systemd-analyze >/dev/null && systemd-analyze cat-config sysctl.d 2>/dev/null | grep -E '^# /|overcommit_memory|panic|root_max' | sed 's/^/boot /'
true
`)
	return b.String()
}

// catConfigHeader is the line systemd-analyze cat-config puts before each
// file: its path alone (a comment in a file may start with "# /" too).
var catConfigHeader = regexp.MustCompile(`^# (/\S*/sysctl\.d/\S+\.conf)$`)

// parseKernelState reads kernelProbe's answer (and sysctl -p's errors,
// "apply " lines).
func parseKernelState(out string) kernelState {
	k := kernelState{now: map[string]string{}, writable: map[string]bool{}, laterAtBoot: map[string]bootSetting{}}
	ours := map[string]int{}
	for _, s := range kubeletKernelSettings() {
		ours[s.name()] = s.value
	}
	file, after := "", false
	for _, line := range strings.Split(out, "\n") {
		kind, rest, _ := strings.Cut(line, " ")
		switch kind {
		case "now":
			f := strings.Fields(rest)
			if len(f) == 3 {
				name := strings.ReplaceAll(f[0], "/", ".")
				k.now[name], k.writable[name] = f[2], f[1] == "rw"
			}
		case "apply":
			k.applyErrors = append(k.applyErrors, strings.TrimSpace(rest))
		case "boot":
			if m := catConfigHeader.FindStringSubmatch(rest); m != nil {
				file = m[1]
				// systemd applies the files in the order of their names,
				// whichever directory holds them: a later one wins.
				after = path.Base(file) > path.Base(KubeletSysctlFile)
				continue
			}
			key, value, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(rest), "-"), "=")
			name := strings.ReplaceAll(strings.TrimSpace(key), "/", ".")
			want, mine := ours[name]
			if !ok || !mine || !after {
				continue
			}
			if sameValue(value, want) {
				delete(k.laterAtBoot, name)
			} else {
				k.laterAtBoot[name] = bootSetting{file, strings.TrimSpace(value)}
			}
		}
	}
	return k
}

func sameValue(got string, want int) bool {
	n, err := strconv.Atoi(strings.TrimSpace(got))
	return err == nil && n == want
}

// protect says whether the kubelet can run with protectKernelDefaults, and
// why not. applied: kubeforge has written and applied the settings, so
// each must hold its value now; before that (a dry run), one that differs
// must at least be writable.
func (k kernelState) protect(applied bool) (bool, string) {
	var why []string
	unset := false
	for _, s := range kubeletKernelSettings() {
		name := s.name()
		now, ok := k.now[name]
		later, undone := k.laterAtBoot[name]
		switch {
		case !ok:
			why = append(why, "the kernel has no "+name)
		case undone:
			why = append(why, fmt.Sprintf("%s sets %s = %s at boot, after %s: the kubelet would refuse to start after a reboot",
				later.file, name, later.value, KubeletSysctlFile))
		case sameValue(now, s.value):
		case applied:
			why = append(why, fmt.Sprintf("%s is %s, not %d, and could not be set", name, now, s.value))
			unset = true
		case !k.writable[name]:
			why = append(why, fmt.Sprintf("%s is %s, not %d, and /proc/sys/%s is read-only", name, now, s.value, s.key))
		}
	}
	if unset && len(k.applyErrors) > 0 {
		why = append(why, "sysctl -p: "+strings.Join(k.applyErrors, "; "))
	}
	return len(why) == 0, strings.Join(why, "; ")
}

// readKernel reads the host's kernel settings without changing them.
func readKernel(ctx context.Context, h *host.Host) (kernelState, error) {
	out, err := h.Run(ctx, kernelProbe())
	if err != nil {
		return kernelState{}, err
	}
	return parseKernelState(out), nil
}

// setKernel writes the kubelet's settings to their file, applies it, and
// reads back what the kernel holds.
func setKernel(ctx context.Context, h *host.Host) (kernelState, error) {
	if _, err := (Desired{Files: []File{kubeletSysctlFile()}}).Apply(ctx, h); err != nil {
		return kernelState{}, err
	}
	// A setting that cannot be written (a read-only /proc/sys, a kernel
	// shared with the host of a container) is reported, not fatal: the
	// read-back decides.
	out, err := h.Run(ctx, "sysctl -q -p "+KubeletSysctlFile+" 2>&1 | sed 's/^/apply /'\n"+kernelProbe())
	if err != nil {
		return kernelState{}, err
	}
	return parseKernelState(out), nil
}
