//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// The day-2 acceptance (make e2e-lifecycle, a lab of 5 hosts with 3
// control planes): status on a healthy and a degraded cluster, reset of a
// worker down to the listing taken before init and its join again, an
// etcd snapshot round trip and the snapshot timer, deleting a worker that
// runs pods, deleting a control plane, and the removal that would cost
// etcd its quorum refused. It runs only when KUBEFORGE_E2E_LIFECYCLE=1.
const lifecycleEnv = "KUBEFORGE_E2E_LIFECYCLE"

// statusJSON is the part of `kubeforge status -o json` the test reads.
type statusJSON struct {
	Healthy  bool     `json:"healthy"`
	Degraded []string `json:"degraded"`
	Hosts    []struct {
		Name        string `json:"name"`
		Unreachable string `json:"unreachable"`
		Services    []struct {
			Name  string `json:"name"`
			State string `json:"state"`
		} `json:"services"`
	} `json:"hosts"`
	Etcd []struct {
		Name    string `json:"name"`
		Healthy bool   `json:"healthy"`
	} `json:"etcd"`
	VIPHeld []string `json:"vipHeldBy"`
	API     string   `json:"api"`
}

func status(t *testing.T, file, state string) (statusJSON, result) {
	t.Helper()
	r := run(t, nil, "status", "-f", file, "--state-dir", state, "-o", "json")
	var s statusJSON
	if err := json.Unmarshal([]byte(r.out), &s); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, r)
	}
	return s, r
}

// hostListing is what the acceptance compares before init and after
// reset: the files under /etc, /var/lib, /opt, /usr/local/bin and /run,
// iptables-save and ip6tables-save without counters, the links, the
// mounts, the unit files, and the kernel settings kubeforge changes. Left
// out: what moves on any running Debian whatever kubeforge does (the
// journal, systemd's and dpkg's/apt's own bookkeeping, sshd's per-session
// files) and, once packages were installed, the files of those packages
// and what a runtime keeps (an OS containerd stays installed, as kubeadm
// reset leaves it; kubeforge's own goes with its state).
func hostListing(t *testing.T, name string, newPackages []string, before map[string][]string) map[string][]string {
	t.Helper()
	had := map[string]bool{}
	for _, f := range before["files"] {
		had[f] = true
	}
	pkgFiles := map[string]bool{}
	units := map[string]bool{}
	if len(newPackages) > 0 {
		for _, f := range strings.Fields(onHost(t, name, "dpkg -L "+strings.Join(newPackages, " ")+" 2>/dev/null; dpkg-query -W -f '${Conffiles}\\n' "+strings.Join(newPackages, " ")+" | awk '{print $1}'")) {
			pkgFiles[f] = true
			if strings.Contains(f, "/systemd/system/") {
				units[filepath.Base(f)] = true
			}
		}
	}
	volatile := func(p string) bool {
		for _, prefix := range []string{"/var/lib/dpkg", "/var/lib/apt", "/var/lib/systemd", "/var/lib/ucf", "/var/cache",
			"/run/systemd", "/run/user", "/run/udev", "/run/log", "/run/lock", "/run/sshd", "/run/utmp", "/run/dbus", "/run/mount",
			"/etc/ld.so.cache", "/var/lib/containerd", "/run/containerd", "/opt/containerd"} {
			if p == prefix || strings.HasPrefix(p, prefix+"/") {
				return true
			}
		}
		if pkgFiles[p] && !had[p] { // a package's file, or its new directory
			return true
		}
		// containerd's CRI plugin makes the CNI configuration directory it
		// watches when it starts (the test checks it is empty)
		if p == "/etc/cni" || p == "/etc/cni/net.d" {
			return true
		}
		// the packages' units enabled by their postinst
		return strings.HasPrefix(p, "/etc/systemd/system/") && units[filepath.Base(p)]
	}
	out := map[string][]string{}
	for _, f := range strings.Split(onHost(t, name, "find /etc /var/lib /opt /usr/local/bin /run -xdev 2>/dev/null | sort"), "\n") {
		if f != "" && !volatile(f) {
			out["files"] = append(out["files"], f)
		}
	}
	out["iptables"] = effectiveRules(onHost(t, name, "iptables-save"))
	out["ip6tables"] = effectiveRules(onHost(t, name, "ip6tables-save"))
	// the names of the links (eth0@ifN: N is the lab's side of the veth,
	// new when the container restarts)
	out["links"] = strings.Split(onHost(t, name, "ip -o link | awk -F': ' '{sub(/@.*/, \"\", $2); print $2}' | sort"), "\n")
	out["mounts"] = strings.Split(onHost(t, name, "awk '{print $2, $3}' /proc/mounts | sort"), "\n")
	for _, u := range strings.Split(onHost(t, name, "systemctl list-unit-files --no-legend --no-pager | awk '{print $1, $2}' | sort"), "\n") {
		if u != "" && !units[strings.Fields(u)[0]] {
			out["unit files"] = append(out["unit files"], u)
		}
	}
	out["sysctls"] = strings.Split(onHost(t, name, "sysctl net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables 2>/dev/null; lsmod | awk '$1 ~ /^(br_netfilter|overlay)$/ {print $1}' | sort"), "\n")
	return out
}

// effectiveRules is iptables-save without comments and counters, and
// without what changes no packet's fate and iptables-nft cannot delete
// (only nft can, which Debian does not install): a built-in chain with an
// ACCEPT policy and no rules, and a table with nothing else.
func effectiveRules(save string) []string {
	var out []string
	var table []string
	used := map[string]bool{}
	for _, l := range strings.Split(save, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case l == "" || strings.HasPrefix(l, "#"):
		case strings.HasPrefix(l, "*"):
			table, used = []string{l}, map[string]bool{}
		case strings.HasPrefix(l, "-A "):
			used[strings.Fields(l)[1]] = true
			table = append(table, l)
		case strings.HasPrefix(l, ":"):
			table = append(table, regexp.MustCompile(` \[[0-9]+:[0-9]+\]$`).ReplaceAllString(l, ""))
		case l == "COMMIT":
			var keep []string
			for _, x := range table[1:] {
				if f := strings.Fields(x); len(f) == 2 && f[1] == "ACCEPT" && !used[strings.TrimPrefix(f[0], ":")] {
					continue
				}
				keep = append(keep, table[0]+" "+x)
			}
			out = append(out, keep...)
		}
	}
	return out
}

// listingDiff says how two listings differ, or "" when they do not.
func listingDiff(before, after map[string][]string) string {
	var b strings.Builder
	keys := make([]string, 0, len(before))
	for k := range before {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		was := map[string]bool{}
		for _, l := range before[k] {
			was[l] = true
		}
		now := map[string]bool{}
		for _, l := range after[k] {
			now[l] = true
			if !was[l] {
				fmt.Fprintf(&b, "%s: + %s\n", k, l)
			}
		}
		for _, l := range before[k] {
			if !now[l] {
				fmt.Fprintf(&b, "%s: - %s\n", k, l)
			}
		}
	}
	return b.String()
}

func packages(t *testing.T, name string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, p := range strings.Fields(onHost(t, name, "dpkg-query -W -f '${Package}\\n'")) {
		out[p] = true
	}
	return out
}

// withoutHosts writes the cluster file as a user edits it after
// `delete node`: the hosts taken out.
func withoutHosts(t *testing.T, file string, gone ...string) string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var keep []string
	lines := strings.Split(string(data), "\n")
	for i := 0; i < len(lines); i++ {
		if slices.ContainsFunc(gone, func(g string) bool { return lines[i] == "    - name: "+g }) {
			for i+1 < len(lines) && strings.HasPrefix(lines[i+1], "      ") {
				i++
			}
			continue
		}
		keep = append(keep, lines[i])
	}
	p := filepath.Join(t.TempDir(), "edited.yaml")
	if err := os.WriteFile(p, []byte(strings.Join(keep, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func readyNodes(t *testing.T, k kube) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, f := range strings.Fields(k.must(t, "get", "nodes", "-o", "jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=='Ready')].status} {end}")) {
		n, ready, _ := strings.Cut(f, "=")
		out[n] = ready
	}
	return out
}

func waitReady(t *testing.T, k kube, nodes ...string) {
	t.Helper()
	eventually(t, 3*time.Minute, "nodes Ready", func() string {
		got := readyNodes(t, k)
		for _, n := range nodes {
			if got[n] != "True" {
				return fmt.Sprintf("%s Ready=%q (%v)", n, got[n], got)
			}
		}
		return ""
	})
}

func TestLifecycle(t *testing.T) {
	if os.Getenv(lifecycleEnv) != "1" {
		t.Skipf("the day-2 acceptance needs 5 lab hosts and ten minutes: run it with make e2e-lifecycle (%s=1)", lifecycleEnv)
	}
	names := hostNames()
	if len(names) < 5 {
		t.Fatalf("need 5 lab hosts (make lab-up N=5 CP=3), have %v", names)
	}
	ctx := context.Background()
	for _, n := range names[:5] {
		if err := theLab.Recreate(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	cps, workers := names[:3], names[3:5]
	resetWorker, drainWorker := workers[1], workers[0]
	pkgsBefore := packages(t, resetWorker)
	before := hostListing(t, resetWorker, nil, nil)

	cluster := haCluster(t, "day2", names[:5])
	state := filepath.Join(t.TempDir(), "state")
	k := kube{file: cluster, state: state}
	r := mustRun(t, nil, "init", "-f", cluster, "--state-dir", state)
	t.Logf("init of 3 control planes + 2 workers: %s", doneLine(r.out))

	t.Run("status: healthy, then a stopped kubelet first, then an unreachable host", func(t *testing.T) {
		s, r := status(t, cluster, state)
		if r.code != 0 || !s.Healthy || len(s.Degraded) != 0 {
			t.Fatalf("healthy cluster: exit %d, degraded %v\n%s", r.code, s.Degraded, r)
		}
		if len(s.Hosts) != 5 || len(s.Etcd) != 3 || len(s.VIPHeld) != 1 || s.API != "ok" {
			t.Errorf("healthy cluster: %d hosts, %d etcd members, VIP held by %v, API %q", len(s.Hosts), len(s.Etcd), s.VIPHeld, s.API)
		}
		table := run(t, nil, "status", "-f", cluster, "--state-dir", state)
		t.Logf("status, healthy (exit %d):\n%s", table.code, table.out)

		onHost(t, workers[0], "systemctl stop kubelet")
		s, r = status(t, cluster, state)
		if r.code != 1 || s.Healthy {
			t.Errorf("kubelet stopped: exit %d, healthy %v", r.code, s.Healthy)
		}
		if len(s.Hosts) != 5 || s.Hosts[0].Name != workers[0] {
			t.Errorf("kubelet stopped on %s: the first row is %+v", workers[0], s.Hosts[0])
		}
		if !slices.ContainsFunc(s.Degraded, func(d string) bool { return strings.Contains(d, workers[0]) && strings.Contains(d, "kubelet") }) {
			t.Errorf("degraded does not name %s's kubelet: %v", workers[0], s.Degraded)
		}
		table = run(t, nil, "status", "-f", cluster, "--state-dir", state)
		t.Logf("status, %s's kubelet stopped (exit %d):\n%s", workers[0], table.code, table.out)
		if rows := strings.Split(table.out, "\n"); len(rows) < 2 || !strings.HasPrefix(rows[1], workers[0]+" ") || !strings.Contains(rows[1], "kubelet") {
			t.Errorf("the table's first row is not %s's kubelet:\n%s", workers[0], table.out)
		}
		onHost(t, workers[0], "systemctl start kubelet")

		if err := theLab.Stop(ctx, workers[1]); err != nil {
			t.Fatal(err)
		}
		s, r = status(t, cluster, state)
		if r.code != 1 {
			t.Errorf("a host stopped: exit %d", r.code)
		}
		if len(s.Hosts) != 5 || s.Hosts[0].Name != workers[1] || s.Hosts[0].Unreachable == "" {
			t.Errorf("a host stopped: first row %+v", s.Hosts[0])
		}
		for _, h := range s.Hosts[1:] {
			if h.Unreachable != "" || len(h.Services) == 0 {
				t.Errorf("%s: unreachable %q, %d services", h.Name, h.Unreachable, len(h.Services))
			}
		}
		table = run(t, nil, "status", "-f", cluster, "--state-dir", state)
		t.Logf("status, %s stopped (exit %d in %s):\n%s", workers[1], table.code, table.duration.Round(10*time.Millisecond), table.out)
		if err := theLab.Start(ctx, workers[1]); err != nil {
			t.Fatal(err)
		}
		waitReady(t, k, names[:5]...)
		eventually(t, 2*time.Minute, "status healthy again", func() string {
			if s, r := status(t, cluster, state); r.code != 0 {
				return fmt.Sprintf("exit %d: %v", r.code, s.Degraded)
			}
			return ""
		})
	})

	t.Run("reset of a worker: the host as before init, and it joins again", func(t *testing.T) {
		r := mustRun(t, nil, "reset", "-f", cluster, "--state-dir", state, "--host", resetWorker, "--yes")
		t.Logf("reset --host %s: %s", resetWorker, doneLine(r.out))
		var installed []string
		for p := range packages(t, resetWorker) {
			if !pkgsBefore[p] {
				installed = append(installed, p)
			}
		}
		slices.Sort(installed)
		t.Logf("packages installed by init (they stay): %v", installed)
		after := hostListing(t, resetWorker, installed, before)
		if left := onHost(t, resetWorker, "ls -A /etc/cni/net.d 2>/dev/null || true"); strings.TrimSpace(left) != "" {
			t.Errorf("/etc/cni/net.d is not empty after reset: %s", left)
		}
		if d := listingDiff(before, after); d != "" {
			t.Errorf("%s after reset differs from before init:\n%s", resetWorker, d)
		} else {
			t.Logf("%s after reset: files (%d), iptables, ip6tables, links, mounts, unit files, sysctls equal the listing before init", resetWorker, len(after["files"]))
		}
		r = mustRun(t, nil, "join", "-f", cluster, "--state-dir", state, "--host", resetWorker)
		t.Logf("join --host %s again: %s", resetWorker, doneLine(r.out))
		waitReady(t, k, resetWorker)
	})

	t.Run("etcd snapshot round trip, a truncated snapshot refused", func(t *testing.T) {
		k.must(t, "create", "configmap", "before-snapshot", "--from-literal=answer=42")
		snap := filepath.Join(t.TempDir(), "day2.db")
		r := mustRun(t, nil, "etcd", "snapshot", "save", "-f", cluster, "--state-dir", state, "-o", snap)
		t.Logf("snapshot save:\n%s", r.out)
		if _, err := os.Stat(snap + ".sha256"); err != nil {
			t.Errorf("no recorded sha256: %v", err)
		}
		k.must(t, "delete", "configmap", "before-snapshot")
		k.must(t, "create", "configmap", "after-snapshot", "--from-literal=answer=43")

		data, err := os.ReadFile(snap)
		if err != nil {
			t.Fatal(err)
		}
		truncated := filepath.Join(t.TempDir(), "truncated.db")
		if err := os.WriteFile(truncated, data[:len(data)/2], 0o600); err != nil {
			t.Fatal(err)
		}
		pids := map[string]string{}
		for _, n := range cps {
			pids[n] = servicePIDs(t, n)
		}
		r = run(t, nil, "etcd", "snapshot", "restore", truncated, "-f", cluster, "--state-dir", state, "--yes")
		if r.code == 0 || !strings.Contains(r.out+r.err, "truncated.db") {
			t.Errorf("a truncated snapshot: %s", r)
		}
		t.Logf("truncated snapshot refused (exit %d): %s", r.code, strings.TrimSpace(r.err))
		for _, n := range cps {
			if now := servicePIDs(t, n); now != pids[n] {
				t.Errorf("%s: services changed after the refused restore:\n%s\n%s", n, pids[n], now)
			}
		}

		start := time.Now()
		r = mustRun(t, nil, "etcd", "snapshot", "restore", snap, "-f", cluster, "--state-dir", state, "--yes")
		t.Logf("snapshot restore: %s (wall %s)", doneLine(r.out), time.Since(start).Round(100*time.Millisecond))
		if got := k.must(t, "get", "configmap", "before-snapshot", "-o", "jsonpath={.data.answer}"); got != "42" {
			t.Errorf("the ConfigMap after restore: %q", got)
		}
		if _, err := k.run("", "get", "configmap", "after-snapshot"); err == nil {
			t.Errorf("the ConfigMap made after the snapshot is still there")
		}
		waitReady(t, k, names[:5]...)
		if h := onHost(t, cps[0], etcdctlOnCP+"endpoint health --cluster 2>&1"); strings.Count(h, "is healthy") != 3 {
			t.Errorf("etcd after restore:\n%s", h)
		}
		eventually(t, 2*time.Minute, "status healthy after the restore", func() string {
			if s, r := status(t, cluster, state); r.code != 0 {
				return fmt.Sprintf("exit %d: %v", r.code, s.Degraded)
			}
			return ""
		})
	})

	t.Run("scheduled snapshots keep the newest N", func(t *testing.T) {
		mustRun(t, nil, "etcd", "snapshot", "save", "--install-timer", "--keep", "2", "-f", cluster, "--state-dir", state)
		for i := 0; i < 3; i++ {
			onHost(t, cps[0], "systemctl start kubeforge-etcd-snapshot.service && sleep 1")
		}
		files := strings.Fields(onHost(t, cps[0], "ls /var/backups/kubeforge/etcd/*.db"))
		if len(files) != 2 {
			t.Errorf("after 3 scheduled snapshots with --keep 2: %v", files)
		}
		if out := onHost(t, cps[0], "etcdutl snapshot status -w json "+files[len(files)-1]); !strings.Contains(out, `"revision"`) {
			t.Errorf("the scheduled snapshot: %s", out)
		}
		if timer := onHost(t, cps[1], "systemctl is-enabled kubeforge-etcd-snapshot.timer || true"); strings.TrimSpace(timer) != "enabled" {
			t.Errorf("timer on %s: %q", cps[1], timer)
		}
		mustRun(t, nil, "etcd", "snapshot", "save", "--remove-timer", "-f", cluster, "--state-dir", state)
		if timer := onHost(t, cps[0], "systemctl is-enabled kubeforge-etcd-snapshot.timer 2>&1 || true"); strings.TrimSpace(timer) == "enabled" {
			t.Errorf("timer still enabled after --remove-timer")
		}
	})

	t.Run("delete a worker that runs pods: they move, the node goes, the host is reset", func(t *testing.T) {
		k.apply(t, `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"movers","namespace":"default"},
"spec":{"replicas":4,"selector":{"matchLabels":{"app":"movers"}},"template":{"metadata":{"labels":{"app":"movers"}},
"spec":{"containers":[{"name":"pause","image":"kubeforge.local/pause:3.10-kubeforge.1","imagePullPolicy":"Never"}]}}}}`)
		waitFor(t, k, "default", "rollout", "status", "deployment/movers", "--timeout=120s")
		if on := podNodes(readyPods(t, k, "default", "app=movers")); !slices.Contains(mapValues(on), drainWorker) {
			t.Fatalf("no mover on %s: %v", drainWorker, on)
		}
		r := mustRun(t, nil, "delete", "node", drainWorker, "-f", cluster, "--state-dir", state, "--yes")
		t.Logf("delete node %s:\n%s", drainWorker, r.out)
		if !strings.Contains(r.out, "cluster file") {
			t.Errorf("delete node does not say what to edit:\n%s", r.out)
		}
		if _, ok := readyNodes(t, k)[drainWorker]; ok {
			t.Errorf("node %s still there", drainWorker)
		}
		eventually(t, 2*time.Minute, "4 movers Ready elsewhere", func() string {
			pods, err := listPods(k, "default", "app=movers")
			if err != nil {
				return err.Error()
			}
			ready := 0
			for _, p := range pods {
				if p.node == drainWorker {
					return "a mover still on " + drainWorker
				}
				if p.ready {
					ready++
				}
			}
			if ready != 4 {
				return fmt.Sprintf("%d of 4 Ready", ready)
			}
			return ""
		})
		if left := onHost(t, drainWorker, "ls -d /etc/kubernetes /var/lib/kubelet /etc/systemd/system/kubelet.service 2>/dev/null || true"); strings.TrimSpace(left) != "" {
			t.Errorf("%s not reset: %s", drainWorker, left)
		}
	})

	t.Run("delete a control plane: etcd 2/2, the VIP served; a second removal refused", func(t *testing.T) {
		gone := cps[2]
		file := withoutHosts(t, cluster, drainWorker)
		r := mustRun(t, nil, "delete", "node", gone, "-f", file, "--state-dir", state, "--yes")
		t.Logf("delete node %s: %s", gone, doneLine(r.out))
		members := etcdMembers(t, cps[0])
		if len(members) != 2 || slices.Contains(mapKeys(members), gone) {
			t.Errorf("etcd members after removing %s: %v", gone, members)
		}
		if h := onHost(t, cps[0], etcdctlOnCP+"endpoint health --cluster 2>&1"); strings.Count(h, "is healthy") != 2 {
			t.Errorf("etcd after removing %s:\n%s", gone, h)
		}
		if out := k.must(t, "get", "nodes", "-o", "name"); strings.Contains(out, "node/"+gone+"\n") || strings.HasSuffix(out, "node/"+gone) {
			t.Errorf("node %s still there: %s", gone, out)
		}
		addr, err := theLab.Host(gone)
		if err != nil {
			t.Fatal(err)
		}
		for _, cp := range cps[:2] {
			if conf := onHost(t, cp, "cat /etc/keepalived/keepalived.conf"); strings.Contains(conf, addr.IP+"\n") {
				t.Errorf("%s's keepalived still has %s as a peer", cp, gone)
			}
		}
		if h := vipHolders(cps[:2]); len(h) != 1 {
			t.Errorf("VIP holders: %v", h)
		}
		if _, err := k.run("", "get", "--raw", "/readyz"); err != nil {
			t.Errorf("the API through the VIP: %v", err)
		}

		file = withoutHosts(t, cluster, drainWorker, gone)
		r = run(t, nil, "delete", "node", cps[1], "-f", file, "--state-dir", state, "--yes")
		if r.code != 3 || !strings.Contains(r.out+r.err, "would leave a single etcd member") {
			t.Errorf("removing a second control plane: %s", r)
		}
		t.Logf("second removal refused (exit %d): %s", r.code, strings.TrimSpace(r.err))
		if members := etcdMembers(t, cps[0]); len(members) != 2 {
			t.Errorf("etcd members after the refusal: %v", members)
		}
		s, r := status(t, file, state)
		if r.code != 0 {
			t.Errorf("status after the removals: exit %d, %v", r.code, s.Degraded)
		}
	})

	t.Run("reset of the whole cluster, then init again", func(t *testing.T) {
		file := withoutHosts(t, cluster, drainWorker, cps[2])
		left := []string{cps[0], cps[1], resetWorker}
		r := mustRun(t, nil, "reset", "-f", file, "--state-dir", state, "--yes")
		t.Logf("reset of %v: %s", left, doneLine(r.out))
		for _, n := range left {
			out := onHost(t, n, `ls -d /etc/kubernetes /var/lib/etcd /var/lib/kubelet /etc/keepalived/keepalived.conf /etc/systemd/system/kube*.service /etc/systemd/system/etcd.service 2>/dev/null
ip -o link show cni0 2>/dev/null; ip -o link show flannel.1 2>/dev/null
iptables-save | grep -E -- '-j (KUBE|FLANNEL|CNI)-' | head -3
ip -o -4 addr show | grep ' `+haVIP+`/' || true`)
			if strings.TrimSpace(out) != "" {
				t.Errorf("%s after reset:\n%s", n, out)
			}
		}
		r = mustRun(t, nil, "init", "-f", file, "--state-dir", state)
		t.Logf("init again on the reset hosts: %s", doneLine(r.out))
		waitReady(t, k, left...)
		if members := etcdMembers(t, cps[0]); len(members) != 2 {
			t.Errorf("etcd members after init again: %v", members)
		}
	})
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func mapKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
