// Command bench measures kubeforge on the lab and writes two sections of
// docs/benchmarks.md. The one-host section: init wall time and time per
// phase on a fresh host, when the node and CoreDNS became Ready, a re-run,
// and the memory (RSS and PSS) of each component. The HA section (with 8
// lab hosts): init of 3 control planes behind the VIP, the VIP failover
// time, and joining 1 worker against 4 at once. `make bench` runs it.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kubeforge/kubeforge/test/lab"
)

func main() {
	root := flag.String("root", ".", "repository root")
	out := flag.String("out", "docs/benchmarks.md", "file whose cluster section to rewrite")
	only := flag.String("only", "", "run only this part: kubeadm (the reference path, on the lab's first host)")
	flag.Parse()
	var err error
	switch *only {
	case "":
		err = run(*root, *out)
	case "kubeadm":
		err = runKubeadmOnly(*root)
	default:
		err = fmt.Errorf("-only %q: the only part is kubeadm", *only)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type measure struct {
	initWall, rerunWall, nodeReady, dnsReady time.Duration
	phases                                   string
	critical                                 string   // the steps that decided init's length
	memory                                   []string // table rows
}

func run(root, outFile string) error {
	ctx := context.Background()
	l, err := lab.Load(root)
	if err != nil {
		return fmt.Errorf("%w (make lab-up)", err)
	}
	// Every host fresh and idle: the lab's hosts share this machine's
	// cores, so a cluster left running on one would slow the others.
	for _, h := range l.Hosts() {
		if err := l.Recreate(ctx, h.Name); err != nil {
			return err
		}
	}
	node := l.Hosts()[0]
	dir, err := os.MkdirTemp("", "kubeforge-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cluster := filepath.Join(dir, "cluster.yaml")
	spec := fmt.Sprintf("apiVersion: kubeforge.io/v1alpha1\nkind: Cluster\nmetadata:\n  name: bench\nspec:\n  ssh:\n    keyPath: %s\n  hosts:\n    - name: %s\n      address: %s\n      roles: [control-plane, worker]\n",
		l.KeyFile(), node.Name, node.IP)
	if err := os.WriteFile(cluster, []byte(spec), 0o600); err != nil {
		return err
	}
	kf := filepath.Join(root, "bin", "kubeforge")
	args := []string{"-f", cluster, "--state-dir", filepath.Join(dir, "state"), "--bundle", filepath.Join(root, "dist")}

	var m measure
	start := time.Now()
	// Watch the node and CoreDNS from the host itself while init runs.
	var wg sync.WaitGroup
	watchCtx, stopWatch := context.WithCancel(ctx)
	wg.Add(1)
	go func() {
		defer wg.Done()
		m.nodeReady, m.dnsReady = watch(watchCtx, l, node.Name, start)
	}()
	initOut, err := exec.Command(kf, append([]string{"init"}, args...)...).CombinedOutput()
	m.initWall = time.Since(start)
	if err != nil {
		stopWatch()
		return fmt.Errorf("init: %v\n%s", err, initOut)
	}
	wg.Wait()
	stopWatch()
	if sm := regexp.MustCompile(`init: done in \S+ \((.*)\)`).FindSubmatch(initOut); sm != nil {
		m.phases = string(sm[1])
	}
	if sm := regexp.MustCompile(`init: critical path (.*)`).FindSubmatch(initOut); sm != nil {
		m.critical = string(sm[1])
	}
	t0 := time.Now()
	if out, err := exec.Command(kf, append([]string{"init"}, args...)...).CombinedOutput(); err != nil {
		return fmt.Errorf("second init: %v\n%s", err, out)
	}
	m.rerunWall = time.Since(t0)
	if m.memory, err = memory(ctx, l, node.Name); err != nil {
		return err
	}
	section := render(m, node.Name)
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
	return rewrite(filepath.Join(root, outFile), ha, haBeginMark, haEndMark)
}

// watch polls until the node is Ready and CoreDNS is available, and
// returns when each happened, from start.
func watch(ctx context.Context, l *lab.Lab, node string, start time.Time) (nodeReady, dnsReady time.Duration) {
	kubectl := "kubectl --kubeconfig=/etc/kubernetes/admin.conf --request-timeout=2s "
	for nodeReady == 0 || dnsReady == 0 {
		select {
		case <-ctx.Done():
			return
		case <-time.After(250 * time.Millisecond):
		}
		if nodeReady == 0 {
			out, _ := l.Exec(ctx, node, "sh", "-c", kubectl+"get node "+node+" -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' 2>/dev/null")
			if strings.TrimSpace(out) == "True" {
				nodeReady = time.Since(start)
			}
		}
		if dnsReady == 0 {
			out, _ := l.Exec(ctx, node, "sh", "-c", kubectl+"-n kube-system get deploy coredns -o jsonpath='{.status.availableReplicas}' 2>/dev/null")
			if n, _ := strconv.Atoi(strings.TrimSpace(out)); n > 0 {
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

func render(m measure, node string) string {
	r := func(d time.Duration) string { return d.Round(100 * time.Millisecond).String() }
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n## A one-host cluster on the lab\n\n", beginMark)
	fmt.Fprintf(&b, "Command: `make bench` (runs `go run ./test/bench` on a lab host it re-creates; measured %s on %s, 2 cores).\n\n",
		time.Now().UTC().Format("2006-01-02"), node)
	fmt.Fprintf(&b, "| what | time |\n|---|---|\n")
	fmt.Fprintf(&b, "| `kubeforge init`, fresh host (apt install of containerd included) | %s |\n", r(m.initWall))
	fmt.Fprintf(&b, "| node Ready, from the start of init | %s |\n", r(m.nodeReady))
	fmt.Fprintf(&b, "| CoreDNS available, from the start of init | %s |\n", r(m.dnsReady))
	fmt.Fprintf(&b, "| `kubeforge init` again on the running cluster (nothing to change) | %s |\n\n", r(m.rerunWall))
	fmt.Fprintf(&b, "Time per phase of the first init: %s.\n\n", m.phases)
	if m.critical != "" {
		fmt.Fprintf(&b, "Steps overlap (playbooks/init.yaml `after:`); the critical path, the chain that decided init's length: %s.\n\n", m.critical)
	}
	fmt.Fprintf(&b, "Memory of each component after init (from /proc/PID/smaps_rollup; PSS shares the multicall binary's pages among the processes that map it):\n\n")
	fmt.Fprintf(&b, "| component | RSS MiB | PSS MiB |\n|---|---|---|\n%s\n%s\n", strings.Join(m.memory, "\n"), endMark)
	return b.String()
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
