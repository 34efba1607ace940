package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/kubeforge/kubeforge/test/lab"
)

const (
	haBeginMark = "<!-- bench:ha:begin -->"
	haEndMark   = "<!-- bench:ha:end -->"
	vip         = "172.30.0.100"
)

// haMeasure is what the HA section reports.
type haMeasure struct {
	// init5: 3 control planes + 2 workers behind the VIP, fresh hosts.
	init5, init3, join1, join4 time.Duration
	init5Phases                string
	// The cost of one more node, for the 1-worker join: the joined host's
	// CPU time (its cgroup, read on this machine), this machine's
	// kubeforge process's CPU time, and the bytes the host received.
	join1HostCPU, join1AdminCPU time.Duration
	join1Received               int64
	phases                      string
	vipMoved, apiAnswered       time.Duration
	stopped                     string
	join1Phases, join4Phases    string
	// join1Sent: what each control plane sent during the join, "lab1 94.6 MB".
	join1Sent []string
	// busy1, busy4: how many of this machine's cores were busy, on
	// average, during each join (every lab host runs on them).
	busy1, busy4 float64
	// renew: `certs renew all -f` of 3 control planes + 1 worker.
	renew       time.Duration
	renewPhases string
}

// runHA: fresh hosts, init of 3 control planes + 2 workers; fresh hosts
// again, init of 3 control planes; stop the VIP holder and
// time the VIP and the API through it; start it again; join one worker,
// then four at once, over SSH.
func runHA(ctx context.Context, root string, l *lab.Lab, dir string) (string, error) {
	hosts := l.Hosts()[:8]
	if err := recreate(ctx, l, hosts); err != nil {
		return "", err
	}
	kf := filepath.Join(root, "bin", "kubeforge")
	state := filepath.Join(dir, "ha-state")
	file := func(n int) (string, error) {
		var b strings.Builder
		fmt.Fprintf(&b, "apiVersion: kubeforge.io/v1alpha1\nkind: Cluster\nmetadata:\n  name: bench-ha\nspec:\n  ssh:\n    keyPath: %s\n  controlPlane:\n    vip: %s\n  hosts:\n", l.KeyFile(), vip)
		for i, h := range hosts[:n] {
			role := "worker"
			if i < 3 {
				role = "control-plane"
			}
			fmt.Fprintf(&b, "    - name: %s\n      address: %s\n      roles: [%s]\n", h.Name, h.IP, role)
		}
		p := filepath.Join(dir, fmt.Sprintf("ha-%d.yaml", n))
		return p, os.WriteFile(p, []byte(b.String()), 0o600)
	}
	var busy float64
	var adminCPU time.Duration
	run := func(args ...string) (time.Duration, string, error) {
		t0 := time.Now()
		cpu0 := cpuTicks()
		cmd := exec.CommandContext(ctx, kf, append(args, "--state-dir", state, "--bundle", filepath.Join(root, "dist"))...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return 0, "", fmt.Errorf("kubeforge %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		d := time.Since(t0)
		busy = cpuTicks().busySince(cpu0)
		adminCPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		return d, string(out), nil
	}
	phases := func(out, action string) string {
		if m := regexp.MustCompile(action + `: done in \S+ \((.*)\)`).FindStringSubmatch(out); m != nil {
			return m[1]
		}
		return ""
	}

	var m haMeasure
	// 3 control planes + 2 workers in one init; then every host fresh
	// again for the rest.
	f5, err := file(5)
	if err != nil {
		return "", err
	}
	d, out, err := run("init", "-f", f5)
	if err != nil {
		return "", err
	}
	m.init5, m.init5Phases = d, phases(out, "init")
	fmt.Printf("bench: init of 3 control planes + 2 workers: %s\n", d)
	if err := os.RemoveAll(state); err != nil {
		return "", err
	}
	if err := recreate(ctx, l, hosts); err != nil {
		return "", err
	}

	f3, err := file(3)
	if err != nil {
		return "", err
	}
	d, out, err = run("init", "-f", f3)
	if err != nil {
		return "", err
	}
	m.init3, m.phases = d, phases(out, "init")

	if err := m.failover(ctx, l, hosts[:3], filepath.Join(state, "pki", "ca.crt")); err != nil {
		return "", err
	}

	f4, err := file(4)
	if err != nil {
		return "", err
	}
	cpu0, rx0, err := hostCost(ctx, l, hosts[3].Name)
	if err != nil {
		return "", err
	}
	tx0, err := sent(ctx, l, hosts[:3])
	if err != nil {
		return "", err
	}
	if m.join1, out, err = run("join", "-f", f4, "--host", hosts[3].Name); err != nil {
		return "", err
	}
	m.join1Phases, m.busy1, m.join1AdminCPU = phases(out, "join"), busy, adminCPU
	cpu1, rx1, err := hostCost(ctx, l, hosts[3].Name)
	if err != nil {
		return "", err
	}
	m.join1HostCPU, m.join1Received = cpu1-cpu0, rx1-rx0
	tx1, err := sent(ctx, l, hosts[:3])
	if err != nil {
		return "", err
	}
	for i, h := range hosts[:3] {
		m.join1Sent = append(m.join1Sent, fmt.Sprintf("%s %.1f MB", h.Name, float64(tx1[i]-tx0[i])/1e6))
	}
	if m.renew, out, err = run("certs", "renew", "all", "-f", f4); err != nil {
		return "", err
	}
	m.renewPhases = phases(out, "renew")
	f8, err := file(8)
	if err != nil {
		return "", err
	}
	var four []string
	for _, h := range hosts[4:8] {
		four = append(four, h.Name)
	}
	if m.join4, out, err = run("join", "-f", f8, "--host", strings.Join(four, ",")); err != nil {
		return "", err
	}
	m.join4Phases, m.busy4 = phases(out, "join"), busy
	return m.render(), nil
}

// failover stops the VIP holder and times, from the start of the stop,
// another control plane holding the VIP and the API answering /readyz
// through it; then starts the host again and waits for one holder.
func (m *haMeasure) failover(ctx context.Context, l *lab.Lab, cps []lab.Host, caFile string) error {
	holders := func(among []lab.Host) []string {
		var out []string
		for _, h := range among {
			addrs, err := l.Exec(ctx, h.Name, "ip", "-o", "-4", "addr", "show")
			if err == nil && strings.Contains(addrs, " "+vip+"/") {
				out = append(out, h.Name)
			}
		}
		return out
	}
	before := holders(cps)
	if len(before) != 1 {
		return fmt.Errorf("VIP holders before the failover: %v", before)
	}
	m.stopped = before[0]
	var others []lab.Host
	for _, h := range cps {
		if h.Name != m.stopped {
			others = append(others, h)
		}
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true}}
	readyz := func() bool {
		resp, err := client.Get("https://" + vip + ":6443/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	start := time.Now()
	stopped := make(chan error, 1)
	go func() { stopped <- l.Stop(ctx, m.stopped) }()
	for m.vipMoved == 0 || m.apiAnswered == 0 {
		if time.Since(start) > 2*time.Minute {
			return fmt.Errorf("after 2 minutes: VIP moved %v, API answered %v", m.vipMoved, m.apiAnswered)
		}
		if m.vipMoved == 0 && len(holders(others)) == 1 {
			m.vipMoved = time.Since(start)
		}
		if m.vipMoved > 0 && m.apiAnswered == 0 && readyz() {
			m.apiAnswered = time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := <-stopped; err != nil {
		return err
	}
	if err := l.Start(ctx, m.stopped); err != nil {
		return err
	}
	deadline := time.Now().Add(3 * time.Minute)
	for len(holders(cps)) != 1 || !readyz() {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s started again, but the VIP holders are %v", m.stopped, holders(cps))
		}
		time.Sleep(time.Second)
	}
	return nil
}

func (m *haMeasure) render() string {
	r := func(d time.Duration) string { return d.Round(100 * time.Millisecond).String() }
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n## Three control planes: failover, joins and certificate renewal on the lab\n\n", haBeginMark)
	fmt.Fprintf(&b, "Command: `make bench`, or `make bench-ha` for this section alone (8 fresh lab hosts; measured %s, 2 cores). Joins are over SSH (`kubeforge join -f FILE --host ...`).\n\n",
		time.Now().UTC().Format("2006-01-02"))
	fmt.Fprintf(&b, "| what | time |\n|---|---|\n")
	fmt.Fprintf(&b, "| `kubeforge init` of 3 control planes + 2 workers behind the VIP, fresh hosts (goal ≤ 45 s) | %s |\n", r(m.init5))
	fmt.Fprintf(&b, "| `kubeforge init` of 3 control planes behind the VIP, fresh hosts | %s |\n", r(m.init3))
	fmt.Fprintf(&b, "| VIP holder stopped (`docker stop %s`): another control plane holds the VIP, from the start of the stop | %s |\n", m.stopped, r(m.vipMoved))
	fmt.Fprintf(&b, "| ... and the API answers `/readyz` through the VIP | %s |\n", r(m.apiAnswered))
	fmt.Fprintf(&b, "| join 1 worker, fresh host | %s |\n", r(m.join1))
	fmt.Fprintf(&b, "| ... its cost: the joined host's CPU time, from its cgroup (goal ≤ 5 s) | %.1f s |\n", m.join1HostCPU.Seconds())
	fmt.Fprintf(&b, "| ... this machine's CPU time, the kubeforge process (goal ≤ 0.3 s) | %.2f s |\n", m.join1AdminCPU.Seconds())
	fmt.Fprintf(&b, "| ... bytes the joined host received (goal ≤ 100 MB) | %.1f MB |\n", float64(m.join1Received)/1e6)
	fmt.Fprintf(&b, "| ... bytes the control planes sent meanwhile (the archive comes from one of them, not from this machine) | %s |\n", strings.Join(m.join1Sent, ", "))
	fmt.Fprintf(&b, "| join 4 workers at once, fresh hosts | %s |\n", r(m.join4))
	fmt.Fprintf(&b, "| ratio, 4 workers / 1 worker (goal ≤ 1.3) | %.2f |\n", float64(m.join4)/float64(m.join1))
	fmt.Fprintf(&b, "| `certs renew all -f` of 3 control planes + 1 worker (one control plane at a time, each giving the VIP away first) | %s |\n", r(m.renew))
	fmt.Fprintf(&b, "| this machine's cores busy during the joins, on average (of %d; every lab host runs on them) | 1 worker: %.2f, 4 workers: %.2f |\n\n",
		runtime.NumCPU(), m.busy1, m.busy4)
	fmt.Fprintf(&b, "Phases of the 3 control planes + 2 workers init: %s.\n\n", m.init5Phases)
	fmt.Fprintf(&b, "Phases of the 3-control-plane init: %s.\n\nPhases of the 1-worker join: %s.\n\nPhases of the 4-worker join: %s.\n\nPhases of the renewal: %s.\n%s\n",
		m.phases, m.join1Phases, m.join4Phases, m.renewPhases, haEndMark)
	return b.String()
}

// hostCost reads what a lab host has used so far: the CPU time of its
// container's cgroup (on this machine, cgroup v1 or v2, cgroupfs or
// systemd driver) and the bytes its eth0 received.
func hostCost(ctx context.Context, l *lab.Lab, name string) (time.Duration, int64, error) {
	h, err := l.Host(name)
	if err != nil {
		return 0, 0, err
	}
	out, err := exec.CommandContext(ctx, "docker", "inspect", "-f", "{{.Id}}", h.Container).Output()
	if err != nil {
		return 0, 0, fmt.Errorf("docker inspect %s: %w", h.Container, err)
	}
	id := strings.TrimSpace(string(out))
	var cpu time.Duration
	found := false
	for _, p := range []string{
		"/sys/fs/cgroup/cpu,cpuacct/docker/" + id + "/cpuacct.usage",
		"/sys/fs/cgroup/cpuacct/docker/" + id + "/cpuacct.usage",
		"/sys/fs/cgroup/cpu,cpuacct/system.slice/docker-" + id + ".scope/cpuacct.usage",
		"/sys/fs/cgroup/system.slice/docker-" + id + ".scope/cpu.stat",
		"/sys/fs/cgroup/docker/" + id + "/cpu.stat",
	} {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if strings.HasSuffix(p, "cpu.stat") { // v2: usage_usec N
			for _, line := range strings.Split(string(data), "\n") {
				if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
					us, _ := strconv.ParseInt(v, 10, 64)
					cpu, found = time.Duration(us)*time.Microsecond, true
				}
			}
		} else {
			ns, _ := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
			cpu, found = time.Duration(ns), true
		}
		break
	}
	if !found {
		return 0, 0, fmt.Errorf("no cgroup CPU accounting found for %s (%s)", name, id)
	}
	rx, err := eth0(ctx, l, name, "rx_bytes")
	return cpu, rx, err
}

// sent reads the bytes each host's eth0 has sent so far.
func sent(ctx context.Context, l *lab.Lab, hosts []lab.Host) ([]int64, error) {
	out := make([]int64, len(hosts))
	for i, h := range hosts {
		var err error
		if out[i], err = eth0(ctx, l, h.Name, "tx_bytes"); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// eth0 reads one of a lab host's eth0 counters (rx_bytes, tx_bytes).
func eth0(ctx context.Context, l *lab.Lab, name, counter string) (int64, error) {
	v, err := l.Exec(ctx, name, "cat", "/sys/class/net/eth0/statistics/"+counter)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
}

// ticks are the machine's CPU time counters from /proc/stat.
type ticks struct{ busy, total float64 }

func cpuTicks() ticks {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return ticks{}
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	var t ticks
	for i, v := range f[1:] {
		n, _ := strconv.ParseFloat(v, 64)
		t.total += n
		if i != 3 && i != 4 { // idle, iowait
			t.busy += n
		}
	}
	return t
}

// busySince is the average number of busy cores since t0.
func (t ticks) busySince(t0 ticks) float64 {
	if t.total <= t0.total {
		return 0
	}
	return (t.busy - t0.busy) / (t.total - t0.total) * float64(runtime.NumCPU())
}
