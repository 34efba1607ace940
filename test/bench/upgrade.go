package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/kubeforge/kubeforge/components/bundle"
	"github.com/kubeforge/kubeforge/test/lab"
)

const (
	upgradeBeginMark = "<!-- bench:upgrade:begin -->"
	upgradeEndMark   = "<!-- bench:upgrade:end -->"
)

// upgradeMeasure is one `upgrade apply` of 3 control planes + 2 workers
// from the window's previous minor to the default.
type upgradeMeasure struct {
	from, to    string
	init, apply time.Duration
	steps       string // "upgrade-apply: done in ... (steps)"
	// nodes: each node's step as apply printed it, in order.
	nodes []upgradeNode
	// adminCPU: this machine's kubeforge process during the apply.
	adminCPU time.Duration
}

type upgradeNode struct {
	name string
	took string
	// cpu and received: the host's cgroup CPU time and the bytes it
	// received during the whole apply (the staged bundle included).
	cpu      time.Duration
	received int64
}

// runUpgrade: fresh hosts, init of 3 control planes + 2 workers behind the
// VIP with the previous minor's bundle (dist-k8s-1.N), then upgrade apply
// to the default bundle (dist), timed per step and per node.
func runUpgrade(ctx context.Context, root string, l *lab.Lab, dir string) (string, error) {
	if len(l.Hosts()) < 5 {
		return "", fmt.Errorf("the upgrade needs 5 lab hosts (make lab-up N=5 CP=3), have %d", len(l.Hosts()))
	}
	to, err := bundle.Load(filepath.Join(root, "dist"))
	if err != nil {
		return "", err
	}
	prev, err := previousMinor(to.Kubernetes())
	if err != nil {
		return "", err
	}
	fromDir := filepath.Join(root, "dist-k8s-"+prev)
	from, err := bundle.Load(fromDir)
	if err != nil {
		return "", fmt.Errorf("%w (make bundle K8S=%s)", err, prev)
	}
	hosts := l.Hosts()[:5]
	if err := recreate(ctx, l, hosts); err != nil {
		return "", err
	}
	kf := filepath.Join(root, "bin", "kubeforge")
	state := filepath.Join(dir, "upgrade-state")
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: kubeforge.io/v1alpha1\nkind: Cluster\nmetadata:\n  name: bench-upgrade\nspec:\n  ssh:\n    keyPath: %s\n  controlPlane:\n    vip: %s\n  hosts:\n", l.KeyFile(), vip)
	for i, h := range hosts {
		role := "worker"
		if i < 3 {
			role = "control-plane"
		}
		fmt.Fprintf(&b, "    - name: %s\n      address: %s\n      roles: [%s]\n", h.Name, h.IP, role)
	}
	file := filepath.Join(dir, "upgrade.yaml")
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		return "", err
	}
	m := upgradeMeasure{from: from.Kubernetes(), to: to.Kubernetes()}
	t0 := time.Now()
	if out, err := exec.CommandContext(ctx, kf, "init", "-f", file, "--state-dir", state, "--bundle", fromDir).CombinedOutput(); err != nil {
		return "", fmt.Errorf("init with %s: %v\n%s", fromDir, err, out)
	}
	m.init = time.Since(t0)
	fmt.Printf("bench: init of 3 control planes + 2 workers at %s: %s\n", m.from, m.init.Round(10*time.Millisecond))
	waitIdle()

	before := map[string][2]int64{}
	for _, h := range hosts {
		cpu, rx, err := hostCost(ctx, l, h.Name)
		if err != nil {
			return "", err
		}
		before[h.Name] = [2]int64{int64(cpu), rx}
	}
	t0 = time.Now()
	cmd := exec.CommandContext(ctx, kf, "upgrade", "apply", "-f", file, "--state-dir", state, "--bundle", filepath.Join(root, "dist"), "--yes")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("upgrade apply: %v\n%s", err, out)
	}
	m.apply = time.Since(t0)
	m.adminCPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	if s := regexp.MustCompile(`upgrade-apply: done in \S+ \((.*)\)`).FindStringSubmatch(string(out)); s != nil {
		m.steps = s[1]
	}
	took := map[string]string{}
	for _, s := range regexp.MustCompile(`(?m)^\[upgrade-node\] (\S+) moved to \S+ \S+ in (\S+)$`).FindAllStringSubmatch(string(out), -1) {
		took[s[1]] = s[2]
	}
	for _, h := range hosts {
		cpu, rx, err := hostCost(ctx, l, h.Name)
		if err != nil {
			return "", err
		}
		m.nodes = append(m.nodes, upgradeNode{name: h.Name, took: took[h.Name],
			cpu: cpu - time.Duration(before[h.Name][0]), received: rx - before[h.Name][1]})
	}
	fmt.Printf("bench: upgrade apply %s -> %s: %s\n", m.from, m.to, m.apply.Round(10*time.Millisecond))
	return m.render(), nil
}

// previousMinor is the minor before v: "v1.37.2" -> "1.36".
func previousMinor(v string) (string, error) {
	var major, minor int
	if _, err := fmt.Sscanf(v, "v%d.%d", &major, &minor); err != nil || minor == 0 {
		return "", fmt.Errorf("the default bundle's Kubernetes %q has no previous minor", v)
	}
	return fmt.Sprintf("%d.%d", major, minor-1), nil
}

func (m upgradeMeasure) render() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n## Upgrade of 3 control planes + 2 workers on the lab\n\n", upgradeBeginMark)
	fmt.Fprintf(&b, "Command: `make bench-upgrade` (or `make bench`): 5 fresh lab hosts, `kubeforge init` at %s with `dist-k8s-%s`, then\n", m.from, strings.Join(strings.Split(strings.TrimPrefix(m.from, "v"), ".")[:2], "."))
	fmt.Fprintf(&b, "`kubeforge upgrade apply --bundle dist --yes` to %s (measured %s, 2 cores shared by the five hosts: wall\n", m.to, time.Now().Format("2006-01-02"))
	fmt.Fprintf(&b, "times are upper bounds for five real machines; the per-host CPU time is what a real machine would spend).\n\n")
	fmt.Fprintf(&b, "| what | figure |\n|---|---|\n")
	fmt.Fprintf(&b, "| init at %s, 3 control planes + 2 workers behind the VIP | %s |\n", m.from, m.init.Round(100*time.Millisecond))
	fmt.Fprintf(&b, "| `upgrade apply` %s -> %s, whole run | %s |\n", m.from, m.to, m.apply.Round(100*time.Millisecond))
	fmt.Fprintf(&b, "| ... this machine's CPU time, the kubeforge process | %.2f s |\n\n", m.adminCPU.Seconds())
	fmt.Fprintf(&b, "Steps of the apply: %s.\n\n", m.steps)
	fmt.Fprintf(&b, "| node | its step (drain, move, Ready, uncordon) | its CPU time during the apply (cgroup) | bytes it received |\n|---|---|---|---|\n")
	for _, n := range m.nodes {
		fmt.Fprintf(&b, "| %s | %s | %.1f s | %.1f MB |\n", n.name, n.took, n.cpu.Seconds(), float64(n.received)/1e6)
	}
	fmt.Fprintf(&b, "%s\n", upgradeEndMark)
	return b.String()
}
