// Command bench measures kubeforge on the lab and writes two sections of
// docs/benchmarks.md. The one-host section: three inits of a fresh host
// (the median and each run: init wall time, when the node and CoreDNS
// became Ready, time per phase, the critical path), each followed by
// stock kubeadm on the same host made fresh again (kubeadm.go) and the
// ratios, a re-run, the memory (RSS and PSS) of each component; then 1
// control plane + 4 workers from
// one init on fresh hosts and re-runs of it with nothing to change. The HA
// section (with 8 lab hosts): init of 3 control planes behind the VIP, the
// VIP failover time, joining 1 worker against 4 at once, and a renewal.
// The upgrade section (upgrade.go): 3 control planes + 2 workers moved
// from the window's previous minor to the default. `make bench` runs it.
package main

import (
	"bufio"
	"cmp"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubeforge/kubeforge/test/lab"
)

func main() {
	root := flag.String("root", ".", "repository root")
	out := flag.String("out", "docs/benchmarks.md", "file whose cluster section to rewrite")
	only := flag.String("only", "", "run only this part: kubeadm (the reference path, on the lab's first host), ha (8 hosts) or upgrade (5 hosts)")
	flag.Parse()
	var err error
	switch *only {
	case "":
		err = run(*root, *out)
	case "kubeadm":
		err = runKubeadmOnly(*root)
	case "ha":
		err = runOnly(*root, *out, haSection)
	case "upgrade":
		err = runOnly(*root, *out, upgradeSection)
	default:
		err = fmt.Errorf("-only %q: the parts are kubeadm (the reference path), ha and upgrade", *only)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// runs is how many fresh one-host inits the figures are the median of.
const runs = 3

type measure struct {
	initWall, rerunWall, nodeReady, dnsReady time.Duration
	phases                                   string
	critical                                 string   // the steps that decided init's length
	memory                                   []string // table rows
}

// oneHost is one fresh init of lab1 and what the watch saw.
type oneHost struct {
	wall, nodeReady, dnsReady time.Duration
	phases, critical          string
}

// fleet: 1 control plane + 4 workers from one init.
type fleet struct {
	wall, allReady time.Duration
	phases         string
	critical       string
	noop           []time.Duration // re-runs with nothing to change
	busy           float64         // cores busy during the init
}

func run(root, outFile string) error {
	ctx := context.Background()
	l, err := lab.Load(root)
	if err != nil {
		return fmt.Errorf("%w (make lab-up)", err)
	}
	dir, err := os.MkdirTemp("", "kubeforge-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	kf := filepath.Join(root, "bin", "kubeforge")
	node := l.Hosts()[0]

	// One host, fresh each time; nothing else runs on the lab (its hosts
	// share this machine's cores).
	var all []oneHost
	var ka []kubeadmMeasure
	var m measure
	// Every host fresh once; then only the one measured, before each run.
	if err := recreate(ctx, l, l.Hosts()); err != nil {
		return err
	}
	for i := range runs {
		if err := recreate(ctx, l, l.Hosts()[:1]); err != nil {
			return err
		}
		state := filepath.Join(dir, fmt.Sprintf("state-%d", i))
		cluster, err := clusterFile(dir, "bench", l, l.Hosts()[:1], nil)
		if err != nil {
			return err
		}
		r, err := initOnce(ctx, kf, root, l, node.Name, []string{node.Name}, cluster, state)
		if err != nil {
			return err
		}
		fmt.Printf("bench: init %d of %d on fresh %s: %s, node Ready %s, CoreDNS %s\n", i+1, runs, node.Name, r.wall, r.nodeReady, r.dnsReady)
		all = append(all, r)
		if i == runs-1 {
			args := []string{"init", "-f", cluster, "--state-dir", state, "--bundle", filepath.Join(root, "dist")}
			t0 := time.Now()
			if out, err := exec.Command(kf, args...).CombinedOutput(); err != nil {
				return fmt.Errorf("second init: %v\n%s", err, out)
			}
			m.rerunWall = time.Since(t0)
			if m.memory, err = memory(ctx, l, node.Name); err != nil {
				return err
			}
		}
		// The reference: stock kubeadm on the same host, fresh again.
		if err := recreate(ctx, l, l.Hosts()[:1]); err != nil {
			return err
		}
		km, err := runKubeadm(ctx, root, l, node.Name, dir)
		if err != nil {
			return err
		}
		fmt.Printf("bench: kubeadm %d of %d on fresh %s: node Ready %s, CoreDNS %s (%s)\n", i+1, runs, node.Name, km.nodeReady, km.dnsReady, km.steps)
		ka = append(ka, km)
	}
	med := medianRun(all)
	m.initWall, m.nodeReady, m.dnsReady, m.phases, m.critical = med.wall, med.nodeReady, med.dnsReady, med.phases, med.critical

	var f *fleet
	if len(l.Hosts()) >= 5 {
		if f, err = runFleet(ctx, kf, root, l, dir); err != nil {
			return fmt.Errorf("1 control plane + 4 workers: %w", err)
		}
	}
	section := render(m, all, ka, f, node.Name)
	fmt.Print(section)
	if err := rewrite(filepath.Join(root, outFile), section, beginMark, endMark); err != nil {
		return err
	}
	if len(l.Hosts()) < 8 {
		fmt.Printf("bench: %d lab hosts: the HA section needs 8 (make lab-up N=8 CP=3); skipped\n", len(l.Hosts()))
		return nil
	}
	ha, err := runHA(ctx, root, l, dir)
	if err != nil {
		return fmt.Errorf("HA: %w", err)
	}
	fmt.Print(ha)
	if err := rewrite(filepath.Join(root, outFile), ha, haBeginMark, haEndMark); err != nil {
		return err
	}
	up, err := runUpgrade(ctx, root, l, dir)
	if err != nil {
		return fmt.Errorf("upgrade: %w", err)
	}
	fmt.Print(up)
	return rewrite(filepath.Join(root, outFile), up, upgradeBeginMark, upgradeEndMark)
}

// section is one part of the bench run alone (make bench-ha, make
// bench-upgrade): on a lab of at least hosts hosts, its section of
// docs/benchmarks.md rewritten between its marks.
type section struct {
	hosts, cp  int
	run        func(ctx context.Context, root string, l *lab.Lab, dir string) (string, error)
	begin, end string
}

var (
	haSection      = section{8, 3, runHA, haBeginMark, haEndMark}
	upgradeSection = section{5, 3, runUpgrade, upgradeBeginMark, upgradeEndMark}
)

func runOnly(root, outFile string, s section) error {
	l, err := lab.Load(root)
	if err != nil {
		return fmt.Errorf("%w (make lab-up N=%d CP=%d)", err, s.hosts, s.cp)
	}
	if len(l.Hosts()) < s.hosts {
		return fmt.Errorf("%d lab hosts: this section needs %d (make lab-up N=%d CP=%d)", len(l.Hosts()), s.hosts, s.hosts, s.cp)
	}
	dir, err := os.MkdirTemp("", "kubeforge-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	text, err := s.run(context.Background(), root, l, dir)
	if err != nil {
		return err
	}
	fmt.Print(text)
	return rewrite(filepath.Join(root, outFile), text, s.begin, s.end)
}

// recreate makes hosts fresh, then waits for the machine to be idle: the
// hosts' systemd still booting (a few core-seconds each) would take cores
// from the run measured next.
func recreate(ctx context.Context, l *lab.Lab, hosts []lab.Host) error {
	for _, h := range hosts {
		if err := l.Recreate(ctx, h.Name); err != nil {
			return err
		}
	}
	waitIdle()
	return nil
}

// waitIdle waits, up to a minute, for a second in which this machine's
// cores were less than a quarter busy.
func waitIdle() {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		t0 := cpuTicks()
		time.Sleep(time.Second)
		if cpuTicks().busySince(t0) < 0.25 {
			return
		}
	}
}

// clusterFile writes a cluster file: the first host a control plane
// (and a worker when alone), the others workers.
func clusterFile(dir, name string, l *lab.Lab, hosts []lab.Host, extra []string) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: kubeforge.io/v1alpha1\nkind: Cluster\nmetadata:\n  name: %s\nspec:\n  ssh:\n    keyPath: %s\n  hosts:\n", name, l.KeyFile())
	for i, h := range hosts {
		roles := "[worker]"
		switch {
		case i == 0 && len(hosts) == 1:
			roles = "[control-plane, worker]"
		case i == 0:
			roles = "[control-plane]"
		}
		fmt.Fprintf(&b, "    - name: %s\n      address: %s\n      roles: %s\n", h.Name, h.IP, roles)
	}
	p := filepath.Join(dir, fmt.Sprintf("%s-%d.yaml", name, len(hosts)))
	return p, os.WriteFile(p, []byte(b.String()), 0o600)
}

// initOnce runs init and watches, from the first control plane, when
// every node is Ready and when CoreDNS is available.
func initOnce(ctx context.Context, kf, root string, l *lab.Lab, cp string, nodes []string, cluster, state string) (oneHost, error) {
	var r oneHost
	start := time.Now()
	var wg sync.WaitGroup
	watchCtx, stopWatch := context.WithCancel(ctx)
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.nodeReady, r.dnsReady = watch(watchCtx, l, cp, nodes, start)
	}()
	out, err := exec.Command(kf, "init", "-f", cluster, "--state-dir", state, "--bundle", filepath.Join(root, "dist")).CombinedOutput()
	r.wall = time.Since(start)
	if err != nil {
		stopWatch()
		return r, fmt.Errorf("init: %v\n%s", err, out)
	}
	wg.Wait()
	stopWatch()
	if sm := regexp.MustCompile(`init: done in \S+ \((.*)\)`).FindSubmatch(out); sm != nil {
		r.phases = string(sm[1])
	}
	if sm := regexp.MustCompile(`init: critical path (.*)`).FindSubmatch(out); sm != nil {
		r.critical = string(sm[1])
	}
	return r, nil
}

// medianRun is the run whose init time is the median.
func medianRun(rs []oneHost) oneHost {
	s := slices.Clone(rs)
	slices.SortFunc(s, func(a, b oneHost) int { return cmp.Compare(a.wall, b.wall) })
	return s[len(s)/2]
}

// median of durations.
func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// runFleet: 1 control plane + 4 workers from one init on fresh hosts,
// then re-runs with nothing to change.
func runFleet(ctx context.Context, kf, root string, l *lab.Lab, dir string) (*fleet, error) {
	hosts := l.Hosts()[:5]
	if err := recreate(ctx, l, l.Hosts()); err != nil {
		return nil, err
	}
	cluster, err := clusterFile(dir, "bench-fleet", l, hosts, nil)
	if err != nil {
		return nil, err
	}
	state := filepath.Join(dir, "fleet-state")
	var names []string
	for _, h := range hosts {
		names = append(names, h.Name)
	}
	cpu0 := cpuTicks()
	r, err := initOnce(ctx, kf, root, l, hosts[0].Name, names, cluster, state)
	if err != nil {
		return nil, err
	}
	f := &fleet{wall: r.wall, allReady: r.nodeReady, phases: r.phases, critical: r.critical, busy: cpuTicks().busySince(cpu0)}
	fmt.Printf("bench: init of 1 control plane + 4 workers: %s, all nodes Ready %s\n", f.wall, f.allReady)
	for range runs {
		t0 := time.Now()
		if out, err := exec.Command(kf, "init", "-f", cluster, "--state-dir", state, "--bundle", filepath.Join(root, "dist")).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("re-run: %v\n%s", err, out)
		}
		f.noop = append(f.noop, time.Since(t0))
	}
	return f, nil
}

// watch polls until every node is Ready and CoreDNS is available, and
// returns when each happened, from start. It asks the API server from
// this machine, with the admin.conf the control plane cp has once init
// wrote it: a kubectl process on the host every poll would take the
// cores the measured run needs (two kubectl calls every 250 ms cost
// about a core on these hosts).
func watch(ctx context.Context, l *lab.Lab, cp string, nodes []string, start time.Time) (nodeReady, dnsReady time.Duration) {
	var client kubernetes.Interface
	for nodeReady == 0 || dnsReady == 0 {
		select {
		case <-ctx.Done():
			return
		case <-time.After(250 * time.Millisecond):
		}
		if client == nil {
			conf, err := l.Exec(ctx, cp, "cat", "/etc/kubernetes/admin.conf")
			if err != nil || conf == "" {
				continue
			}
			cfg, err := clientcmd.RESTConfigFromKubeConfig([]byte(conf))
			if err != nil {
				continue
			}
			cfg.Timeout = 2 * time.Second
			if client, err = kubernetes.NewForConfig(cfg); err != nil {
				client = nil
				continue
			}
		}
		if nodeReady == 0 {
			if list, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err == nil {
				ready := 0
				for _, n := range list.Items {
					for _, c := range n.Status.Conditions {
						if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue && slices.Contains(nodes, n.Name) {
							ready++
						}
					}
				}
				if ready == len(nodes) {
					nodeReady = time.Since(start)
				}
			}
		}
		if dnsReady == 0 {
			if d, err := client.AppsV1().Deployments("kube-system").Get(ctx, "coredns", metav1.GetOptions{}); err == nil && d.Status.AvailableReplicas > 0 {
				dnsReady = time.Since(start)
			}
		}
	}
	return
}

// memory reads RSS and PSS of each component from smaps_rollup.
func memory(ctx context.Context, l *lab.Lab, node string) ([]string, error) {
	var rows []string
	var totalRSS, totalPSS int
	for _, svc := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "flanneld", "containerd"} {
		out, err := l.Exec(ctx, node, "sh", "-c", "pid=$(systemctl show -p MainPID --value "+svc+"); awk '/^Rss:|^Pss:/ {print $1, $2}' /proc/$pid/smaps_rollup")
		if err != nil {
			return nil, fmt.Errorf("%s: %v: %s", svc, err, out)
		}
		kb := map[string]int{}
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) == 2 {
				kb[f[0]], _ = strconv.Atoi(f[1])
			}
		}
		totalRSS += kb["Rss:"]
		totalPSS += kb["Pss:"]
		rows = append(rows, fmt.Sprintf("| %s | %.0f | %.0f |", svc, float64(kb["Rss:"])/1024, float64(kb["Pss:"])/1024))
	}
	rows = append(rows, fmt.Sprintf("| **all** | %.0f | %.0f |", float64(totalRSS)/1024, float64(totalPSS)/1024))
	return rows, nil
}

const (
	beginMark = "<!-- bench:cluster:begin -->"
	endMark   = "<!-- bench:cluster:end -->"
)

func render(m measure, all []oneHost, ka []kubeadmMeasure, f *fleet, node string) string {
	r := func(d time.Duration) string { return d.Round(100 * time.Millisecond).String() }
	each := func(get func(oneHost) time.Duration) string { return joinDurations(durations(all, get), r) }
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n## A one-host cluster on the lab\n\n", beginMark)
	fmt.Fprintf(&b, "Command: `make bench` (runs `go run ./test/bench`; measured %s on %s, 2 cores, %d fresh inits, the median shown, every run in brackets).\n\n",
		time.Now().UTC().Format("2006-01-02"), node, len(all))
	fmt.Fprintf(&b, "| what | time |\n|---|---|\n")
	fmt.Fprintf(&b, "| `kubeforge init`, fresh host (no package installed: the runtime comes from the bundle) | %s (%s) |\n", r(m.initWall), each(func(x oneHost) time.Duration { return x.wall }))
	fmt.Fprintf(&b, "| node Ready, from the start of init (goal ≤ 12 s) | %s (%s) |\n", r(median(durations(all, func(x oneHost) time.Duration { return x.nodeReady }))), each(func(x oneHost) time.Duration { return x.nodeReady }))
	fmt.Fprintf(&b, "| CoreDNS available, from the start of init (goal ≤ 15 s) | %s (%s) |\n", r(median(durations(all, func(x oneHost) time.Duration { return x.dnsReady }))), each(func(x oneHost) time.Duration { return x.dnsReady }))
	if len(ka) > 0 {
		kaReady := median(durations(ka, func(x kubeadmMeasure) time.Duration { return x.nodeReady }))
		kaDNS := median(durations(ka, func(x kubeadmMeasure) time.Duration { return x.dnsReady }))
		kfReady := median(durations(all, func(x oneHost) time.Duration { return x.nodeReady }))
		kfDNS := median(durations(all, func(x oneHost) time.Duration { return x.dnsReady }))
		fmt.Fprintf(&b, "| stock kubeadm, same host fresh after each kubeforge run: node Ready | %s (%s) |\n", r(kaReady),
			joinDurations(durations(ka, func(x kubeadmMeasure) time.Duration { return x.nodeReady }), r))
		fmt.Fprintf(&b, "| stock kubeadm: CoreDNS available | %s (%s) |\n", r(kaDNS),
			joinDurations(durations(ka, func(x kubeadmMeasure) time.Duration { return x.dnsReady }), r))
		fmt.Fprintf(&b, "| kubeforge / kubeadm, node Ready (goal ≤ 0.6) | %.2f |\n", kfReady.Seconds()/kaReady.Seconds())
		fmt.Fprintf(&b, "| kubeforge / kubeadm, CoreDNS available (goal ≤ 0.6) | %.2f |\n", kfDNS.Seconds()/kaDNS.Seconds())
	}
	fmt.Fprintf(&b, "| `kubeforge init` again on the running cluster (nothing to change) | %s |\n", r(m.rerunWall))
	if f != nil {
		fmt.Fprintf(&b, "| `kubeforge init` of 1 control plane + 4 workers, fresh hosts | %s |\n", r(f.wall))
		fmt.Fprintf(&b, "| ... all 5 nodes Ready, from the start | %s |\n", r(f.allReady))
		fmt.Fprintf(&b, "| ratio, 5 hosts / 1 host (goal ≤ 1.3) | %.2f |\n", f.wall.Seconds()/m.initWall.Seconds())
		fmt.Fprintf(&b, "| this machine's cores busy during the 5-host init, on average (of 2; the 5 lab hosts run on them) | %.2f |\n", f.busy)
		fmt.Fprintf(&b, "| `kubeforge init` again on the 5 hosts (nothing to change; goal ≤ 3 s) | %s (%s) |\n", r(median(f.noop)), joinDurations(f.noop, r))
	}
	fmt.Fprintf(&b, "\nTime per phase of the median init: %s.\n\n", m.phases)
	if m.critical != "" {
		fmt.Fprintf(&b, "Steps overlap (playbooks/init.yaml `after:`); the critical path, the chain that decided init's length: %s.\n\n", m.critical)
	}
	if f != nil {
		fmt.Fprintf(&b, "Phases of the 5-host init: %s.\n\nIts critical path: %s.\n\n", f.phases, f.critical)
	}
	if len(ka) > 0 {
		fmt.Fprintf(&b, "The kubeadm reference (test/bench/kubeadm.go): kubeadm v1.35.4 built from the same k8s.io/kubernetes module "+
			"(`make bench-kubeadm`, a nested module in test/bench/kubeadm), its images built from the bundle's binaries, the same "+
			"containerd settings, flanneld and CNI plugins as kubeforge; timed from the start of copying its files to the host, "+
			"apt in parallel with the upload. Its steps, each run: %s.\n\n", joinSteps(ka))
	}
	fmt.Fprintf(&b, "Memory of each component after init (from /proc/PID/smaps_rollup; PSS shares the multicall binary's pages among the processes that map it):\n\n")
	fmt.Fprintf(&b, "| component | RSS MiB | PSS MiB |\n|---|---|---|\n%s\n%s\n", strings.Join(m.memory, "\n"), endMark)
	return b.String()
}

func joinSteps(rs []kubeadmMeasure) string {
	var parts []string
	for _, x := range rs {
		parts = append(parts, "("+x.steps+")")
	}
	return strings.Join(parts, "; ")
}

// durations picks one duration of each run.
func durations[T any](rs []T, get func(T) time.Duration) []time.Duration {
	var out []time.Duration
	for _, x := range rs {
		out = append(out, get(x))
	}
	return out
}

func joinDurations(ds []time.Duration, r func(time.Duration) string) string {
	var parts []string
	for _, d := range ds {
		parts = append(parts, r(d))
	}
	return strings.Join(parts, ", ")
}

// rewrite replaces the section between the marks, or appends it.
func rewrite(path, section, beginMark, endMark string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s := string(data)
	i, j := strings.Index(s, beginMark), strings.Index(s, endMark)
	if i >= 0 && j > i {
		s = s[:i] + strings.TrimSuffix(section, "\n") + s[j+len(endMark):]
	} else {
		s = strings.TrimRight(s, "\n") + "\n\n" + section
	}
	return os.WriteFile(path, []byte(s), 0o644)
}
