//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The HA acceptance (make e2e-ha, a lab of 8 hosts with 3 control planes):
// three control planes and two workers from one init behind the VIP, the
// workloads a user tries, failover of the VIP holder and of one API
// server, and the three ways of joining later: on the node with a token,
// on the node as a control plane with the uploaded certificates, and over
// SSH with --host. It runs only when KUBEFORGE_E2E_HA=1 (make e2e-ha):
// it takes about ten minutes and eight hosts, more than make test has.
const (
	haVIP       = "172.30.0.100"
	haEnv       = "KUBEFORGE_E2E_HA"
	etcdctlOnCP = "etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt --key=/etc/kubernetes/pki/etcd/healthcheck-client.key "
)

// haCluster writes a cluster file: the first three hosts control planes,
// the rest workers, behind the lab's VIP.
func haCluster(t *testing.T, name string, hosts []string) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: kubeforge.io/v1alpha1\nkind: Cluster\nmetadata:\n  name: %s\nspec:\n  ssh:\n    user: root\n    keyPath: %s\n  controlPlane:\n    vip: %s\n  hosts:\n",
		name, theLab.KeyFile(), haVIP)
	for i, n := range hosts {
		h, err := theLab.Host(n)
		if err != nil {
			t.Fatal(err)
		}
		role := "worker"
		if i < 3 {
			role = "control-plane"
		}
		fmt.Fprintf(&b, "    - name: %s\n      address: %s\n      roles: [%s]\n", h.Name, h.IP, role)
	}
	p := filepath.Join(t.TempDir(), name+".yaml")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// vipHolders are the hosts that have the VIP on an interface.
func vipHolders(hosts []string) []string {
	var out []string
	for _, h := range hosts {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		addrs, err := theLab.Exec(ctx, h, "ip", "-o", "-4", "addr", "show")
		cancel()
		if err == nil && strings.Contains(addrs, " "+haVIP+"/") {
			out = append(out, h)
		}
	}
	return out
}

// servicePIDs are the main PIDs of kubeforge's services on a host: equal
// before and after a run means nothing restarted.
func servicePIDs(t *testing.T, host string) string {
	t.Helper()
	return onHost(t, host, "for s in etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy flanneld keepalived containerd; do printf '%s=%s ' $s $(systemctl show -p MainPID --value $s); done")
}

// etcdMembers lists (name, learner) from a control plane.
func etcdMembers(t *testing.T, cp string) map[string]bool {
	t.Helper()
	var list struct {
		Members []struct {
			Name      string `json:"name"`
			IsLearner bool   `json:"isLearner"`
		} `json:"members"`
	}
	if err := json.Unmarshal([]byte(onHost(t, cp, etcdctlOnCP+"member list -w json")), &list); err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, m := range list.Members {
		out[m.Name] = m.IsLearner
	}
	return out
}

// copyJoinKit puts the kubeforge binary and the bundle archive alone (no
// manifest beside it) in /root/kf on a host, as a user would.
func copyJoinKit(t *testing.T, hostName string) {
	t.Helper()
	h, err := theLab.Host(hostName)
	if err != nil {
		t.Fatal(err)
	}
	// zstd (the default) or gzip (COMPRESSION=gzip): kubeforge unpacks
	// either on the node itself, with no kube-unpack beside it.
	archives, _ := filepath.Glob(filepath.Join(distDir, "kubeforge-bundle-*.tar.*"))
	if len(archives) != 1 {
		t.Fatalf("want one bundle archive in %s, have %v", distDir, archives)
	}
	onHost(t, hostName, "mkdir -p /root/kf")
	for _, f := range []string{kubeforge, archives[0]} {
		if out, err := exec.Command("docker", "cp", f, h.Container+":/root/kf/").CombinedOutput(); err != nil {
			t.Fatalf("docker cp %s: %v: %s", f, err, out)
		}
	}
}

// onNode runs a kubeforge command line on a host, in /root/kf; it returns
// the combined output and the exit code.
func onNode(t *testing.T, hostName, cmdline string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	out, err := theLab.Exec(ctx, hostName, "sh", "-c", "cd /root/kf && ./"+cmdline+" 2>&1; echo \"exit=$?\"")
	if err != nil {
		t.Fatalf("%s: %v\n%s", hostName, err, out)
	}
	m := regexp.MustCompile(`exit=(\d+)\s*$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("%s: no exit code in\n%s", hostName, out)
	}
	code := 0
	fmt.Sscan(m[1], &code)
	return strings.TrimSpace(strings.TrimSuffix(out, m[0])), code
}

// listing is a host's files where kubeforge could write, to show a refused
// join changed nothing.
func listing(t *testing.T, hostName string) string {
	t.Helper()
	return onHost(t, hostName, "find /etc /var/lib /opt /usr/local/bin -xdev 2>/dev/null | grep -v '^/var/lib/systemd/' | sort | md5sum")
}

// doneLine is the runner's summary line of a kubeforge run.
func doneLine(out string) string {
	if m := regexp.MustCompile(`(?m)^\S+: done in .*$`).FindString(out); m != "" {
		return m
	}
	return lastLine(out)
}

func TestHA(t *testing.T) {
	if os.Getenv(haEnv) != "1" {
		t.Skipf("the HA acceptance needs 8 lab hosts and ten minutes: run it with make e2e-ha (%s=1)", haEnv)
	}
	names := hostNames()
	if len(names) < 8 {
		t.Fatalf("need 8 lab hosts (make lab-up N=8 CP=3), have %v", names)
	}
	ctx := context.Background()
	for _, n := range names[:8] {
		if err := theLab.Recreate(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	cps, workers := names[:3], names[3:5]
	later := map[string]string{"token": names[5], "control-plane": names[6], "ssh": names[7]}
	cluster := haCluster(t, "ha", names[:5])
	state := filepath.Join(t.TempDir(), "state")
	k := kube{file: cluster, state: state}

	r := mustRun(t, nil, "init", "-f", cluster, "--state-dir", state)
	t.Logf("init of 3 control planes + 2 workers: %s", doneLine(r.out))

	t.Run("five nodes Ready, three voting etcd members, one VIP holder", func(t *testing.T) {
		ready := k.must(t, "get", "nodes", "-o", "jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=='Ready')].status} {end}")
		for _, n := range names[:5] {
			if !strings.Contains(ready, n+"=True") {
				t.Errorf("%s not Ready: %s", n, ready)
			}
		}
		members := etcdMembers(t, cps[0])
		if len(members) != 3 {
			t.Errorf("etcd members %v", members)
		}
		for n, learner := range members {
			if learner || !slices.Contains(cps, n) {
				t.Errorf("etcd member %s: learner %v", n, learner)
			}
		}
		if h := onHost(t, cps[0], etcdctlOnCP+"endpoint health --cluster 2>&1"); strings.Count(h, "is healthy") != 3 {
			t.Errorf("etcd health:\n%s", h)
		}
		if server := k.must(t, "config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}"); server != "https://"+haVIP+":6443" {
			t.Errorf("admin.conf talks to %s, not the VIP", server)
		}
		if h := vipHolders(cps); len(h) != 1 {
			t.Errorf("VIP holders: %v", h)
		}
		bundledRuntime(t, k, names[:5])
	})

	img := buildTestImage(t)
	for _, n := range names[:5] {
		importImage(t, n, img)
	}
	t.Run("workloads", func(t *testing.T) { checkWorkloads(t, k, names[:5], workers) })

	t.Run("the VIP holder stops: another takes over, etcd keeps quorum", func(t *testing.T) {
		k.apply(t, `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"before-failover","namespace":"default"},
"spec":{"replicas":1,"selector":{"matchLabels":{"app":"before-failover"}},"template":{"metadata":{"labels":{"app":"before-failover"}},
"spec":{"containers":[{"name":"bb","image":"`+testImage+`","imagePullPolicy":"Never","command":["/bin/busybox","sleep","3600"]}]}}}}`)
		holders := vipHolders(cps)
		if len(holders) != 1 {
			t.Fatalf("VIP holders before: %v", holders)
		}
		victim := holders[0]
		others := slices.DeleteFunc(slices.Clone(cps), func(s string) bool { return s == victim })
		start := time.Now()
		var wg sync.WaitGroup
		wg.Add(1)
		var stopErr error
		go func() { defer wg.Done(); stopErr = theLab.Stop(ctx, victim) }()
		var moved, answered time.Duration
		for moved == 0 || answered == 0 {
			if time.Since(start) > time.Minute {
				t.Fatalf("after a minute: VIP moved %v, API answered %v", moved, answered)
			}
			if moved == 0 && len(vipHolders(others)) == 1 {
				moved = time.Since(start)
			}
			if answered == 0 {
				if _, err := k.run("", "get", "nodes", "--request-timeout=2s"); err == nil && moved > 0 {
					answered = time.Since(start)
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		wg.Wait()
		if stopErr != nil {
			t.Fatal(stopErr)
		}
		t.Logf("stopped %s (docker stop took %s): another control plane held the VIP %s after the stop began, kubectl through the VIP answered after %s",
			victim, time.Since(start).Round(100*time.Millisecond), moved.Round(100*time.Millisecond), answered.Round(100*time.Millisecond))
		if moved > 5*time.Second {
			t.Errorf("the VIP moved after %s, want within 5s", moved)
		}
		if answered > 15*time.Second {
			t.Errorf("the API answered through the VIP after %s, want within 15s", answered)
		}
		if h := onHost(t, others[0], etcdctlOnCP+"endpoint health --cluster 2>&1 || true"); strings.Count(h, "is healthy") != 2 {
			t.Errorf("etcd with one member down:\n%s", h)
		}
		if out := k.must(t, "get", "deployment", "before-failover", "-o", "name"); out != "deployment.apps/before-failover" {
			t.Errorf("the deployment made before the stop: %q", out)
		}

		if err := theLab.Start(ctx, victim); err != nil {
			t.Fatal(err)
		}
		back := time.Now()
		eventually(t, 3*time.Minute, victim+" back", func() string {
			if h := vipHolders(cps); len(h) != 1 {
				return fmt.Sprintf("VIP holders %v", h)
			}
			if h := onHost(t, others[0], etcdctlOnCP+"endpoint health --cluster 2>&1 || true"); strings.Count(h, "is healthy") != 3 {
				return "etcd: " + h
			}
			if s, _ := k.run("", "get", "node", victim, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}"); s != "True" {
				return victim + " Ready=" + s
			}
			return ""
		})
		t.Logf("%s started again: Ready, etcd 3/3 healthy, one VIP holder (%v) after %s", victim, vipHolders(cps), time.Since(back).Round(time.Second))
	})

	t.Run("the holder's API server stops: the VIP moves", func(t *testing.T) {
		// A control plane that came back takes the VIP back once its API
		// server is ready (it has the higher priority): wait until one
		// holder has kept it for 3 s, so the hand-over is not timed.
		var victim string
		eventually(t, 2*time.Minute, "one VIP holder, the same for 3s", func() string {
			holders := vipHolders(cps)
			if len(holders) != 1 {
				return fmt.Sprintf("VIP holders %v", holders)
			}
			time.Sleep(3 * time.Second)
			if again := vipHolders(cps); len(again) != 1 || again[0] != holders[0] {
				return fmt.Sprintf("VIP holders %v, then %v", holders, again)
			}
			victim = holders[0]
			return ""
		})
		others := slices.DeleteFunc(slices.Clone(cps), func(s string) bool { return s == victim })
		// systemctl stop returns when the API server has shut down
		// gracefully (up to its 20s TimeoutStopSec); /readyz fails from the
		// start of the shutdown, so the VIP is timed from there.
		start := time.Now()
		stopped := make(chan string, 1)
		go func() {
			out, err := theLab.Exec(ctx, victim, "systemctl", "stop", "kube-apiserver")
			if err != nil {
				out += err.Error()
			}
			stopped <- out
		}()
		for len(vipHolders(others)) != 1 {
			if time.Since(start) > 30*time.Second {
				t.Fatalf("the VIP did not leave %s within 30s: holders %v", victim, vipHolders(cps))
			}
			time.Sleep(100 * time.Millisecond)
		}
		moved := time.Since(start)
		if out := <-stopped; out != "" {
			t.Errorf("systemctl stop kube-apiserver: %s", out)
		}
		t.Logf("kube-apiserver stopped on %s: the VIP moved to %v after %s", victim, vipHolders(others), moved.Round(100*time.Millisecond))
		if moved > 5*time.Second {
			t.Errorf("the VIP moved after %s, want within 5s", moved)
		}
		onHost(t, victim, "systemctl start kube-apiserver")
		eventually(t, 2*time.Minute, "one VIP holder again", func() string {
			if h := vipHolders(cps); len(h) != 1 {
				return fmt.Sprintf("VIP holders %v", h)
			}
			return ""
		})
	})

	// The joins to come may change nothing on the cluster's hosts.
	pids := map[string]string{}
	for _, n := range names[:5] {
		pids[n] = servicePIDs(t, n)
	}

	t.Run("refusals change nothing on the joining host", func(t *testing.T) {
		node := later["token"]
		copyJoinKit(t, node)
		joinCmd := strings.TrimSpace(mustRun(t, nil, "token", "create", "-f", cluster, "--state-dir", state, "--print-join-command").out)
		m := regexp.MustCompile(`--token (\S+) --discovery-token-ca-cert-hash (\S+)`).FindStringSubmatch(joinCmd)
		if m == nil {
			t.Fatalf("join command %q", joinCmd)
		}
		tok, hash := m[1], m[2]
		expired := strings.TrimSpace(mustRun(t, nil, "token", "create", "-f", cluster, "--state-dir", state, "--ttl", "2s").out)
		time.Sleep(5 * time.Second)
		before := listing(t, node)
		for _, tc := range []struct{ name, cmd, want string }{
			{"wrong token", fmt.Sprintf("kubeforge join %s:6443 --token %s.0000000000000000 --discovery-token-ca-cert-hash %s", haVIP, tok[:6], hash), "is wrong"},
			{"wrong CA hash", fmt.Sprintf("kubeforge join %s:6443 --token %s --discovery-token-ca-cert-hash sha256:%s", haVIP, tok, strings.Repeat("0", 64)), "presents a CA with hash"},
			{"expired token", fmt.Sprintf("kubeforge join %s:6443 --token %s --discovery-token-ca-cert-hash %s", haVIP, expired, hash), "expired"},
		} {
			out, code := onNode(t, node, tc.cmd)
			t.Logf("%s: exit %d: %s", tc.name, code, lastLine(out))
			if code == 0 || !strings.Contains(out, tc.want) {
				t.Errorf("%s: exit %d, want a refusal saying %q:\n%s", tc.name, code, tc.want, out)
			}
		}
		if after := listing(t, node); after != before {
			t.Errorf("a refused join changed %s", node)
		}
	})

	t.Run("a worker joins on its own with the printed command", func(t *testing.T) {
		node := later["token"]
		joinCmd := strings.TrimSpace(mustRun(t, nil, "token", "create", "-f", cluster, "--state-dir", state, "--print-join-command").out)
		start := time.Now()
		out, code := onNode(t, node, joinCmd)
		if code != 0 {
			t.Fatalf("join on %s: exit %d\n%s", node, code, out)
		}
		t.Logf("on-host worker join of %s: %s (%s)", node, time.Since(start).Round(100*time.Millisecond), doneLine(out))
		if s := k.must(t, "get", "node", node, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}"); s != "True" {
			t.Errorf("%s Ready=%s", node, s)
		}
		before := servicePIDs(t, node)
		if out, code := onNode(t, node, joinCmd); code != 0 {
			t.Fatalf("second join: exit %d\n%s", code, out)
		}
		if after := servicePIDs(t, node); after != before {
			t.Errorf("joining again restarted services on %s:\n%s\n%s", node, before, after)
		}
	})

	t.Run("a control plane joins on its own with the uploaded certificates", func(t *testing.T) {
		node := later["control-plane"]
		copyJoinKit(t, node)
		up := mustRun(t, nil, "init", "phase", "upload-certs", "-f", cluster, "--state-dir", state)
		m := regexp.MustCompile(`(kubeforge join \S+ --token \S+ --discovery-token-ca-cert-hash \S+ --control-plane --certificate-key [0-9a-f]{64})`).FindStringSubmatch(up.out)
		if m == nil {
			t.Fatalf("upload-certs printed no join command:\n%s", up.out)
		}
		wrongKey := regexp.MustCompile(`[0-9a-f]{64}$`).ReplaceAllString(m[1], strings.Repeat("1", 64))
		before := listing(t, node)
		if out, code := onNode(t, node, wrongKey); code == 0 || !strings.Contains(out, "certificate key") {
			t.Errorf("a wrong certificate key: exit %d\n%s", code, out)
		}
		if listing(t, node) != before {
			t.Errorf("a refused control-plane join changed %s", node)
		}
		start := time.Now()
		out, code := onNode(t, node, m[1])
		if code != 0 {
			t.Fatalf("control-plane join on %s: exit %d\n%s", node, code, out)
		}
		t.Logf("on-host control-plane join of %s: %s", node, time.Since(start).Round(100*time.Millisecond))
		members := etcdMembers(t, cps[0])
		if learner, ok := members[node]; !ok || learner {
			t.Errorf("%s in etcd: member %v, learner %v (%v)", node, ok, learner, members)
		}
		if h := onHost(t, cps[0], etcdctlOnCP+"endpoint health --cluster 2>&1"); strings.Count(h, "is healthy") != 4 {
			t.Errorf("etcd health:\n%s", h)
		}
		h, _ := theLab.Host(node)
		if ok := onHost(t, node, "curl -s --max-time 5 --cacert /etc/kubernetes/pki/ca.crt https://"+h.IP+":6443/readyz"); ok != "ok" {
			t.Errorf("%s's API server /readyz: %q", node, ok)
		}
		if role := k.must(t, "get", "node", node, "-o", "jsonpath={.metadata.labels.node-role\\.kubernetes\\.io/control-plane}{.status.conditions[?(@.type=='Ready')].status}"); role != "True" {
			t.Errorf("%s: control-plane label and Ready: %q", node, role)
		}
		before = servicePIDs(t, node)
		if out, code := onNode(t, node, m[1]); code != 0 {
			t.Fatalf("second control-plane join: exit %d\n%s", code, out)
		}
		if after := servicePIDs(t, node); after != before {
			t.Errorf("joining again restarted services on %s:\n%s\n%s", node, before, after)
		}
	})

	t.Run("a worker joins over SSH with --host", func(t *testing.T) {
		node := later["ssh"]
		grown := haCluster(t, "ha", append(slices.Clone(names[:5]), node))
		start := time.Now()
		r := mustRun(t, nil, "join", "-f", grown, "--state-dir", state, "--host", node)
		t.Logf("join --host %s: %s (%s)", node, time.Since(start).Round(100*time.Millisecond), doneLine(r.out))
		// The archive came from a control plane that kept it, not from
		// this machine: the run's log says which.
		if from := fetchedFrom(t, state, node); from == "" {
			t.Errorf("join --host %s: the log has no bundle fetched from a control plane", node)
		} else {
			t.Logf("%s got the bundle's archive from %s", node, from)
		}
		gk := kube{file: grown, state: state}
		if s := gk.must(t, "get", "node", node, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}"); s != "True" {
			t.Errorf("%s Ready=%s", node, s)
		}
		before := servicePIDs(t, node)
		again := mustRun(t, nil, "join", "-f", grown, "--state-dir", state, "--host", node)
		t.Logf("join --host %s again: %s", node, doneLine(again.out))
		if after := servicePIDs(t, node); after != before {
			t.Errorf("joining again restarted services on %s:\n%s\n%s", node, before, after)
		}
	})

	t.Run("the joins restarted nothing on the cluster's hosts", func(t *testing.T) {
		for _, n := range names[:5] {
			if now := servicePIDs(t, n); now != pids[n] {
				t.Errorf("%s: services restarted:\n%s\n%s", n, pids[n], now)
			}
		}
	})
}

// fetchedFrom is the control plane the newest join log of the state
// directory says node fetched the bundle's archive from, or "".
func fetchedFrom(t *testing.T, state, node string) string {
	t.Helper()
	logs, _ := filepath.Glob(filepath.Join(state, "logs", "join-*.log"))
	if len(logs) == 0 {
		t.Fatalf("no join log in %s/logs", state)
	}
	slices.Sort(logs) // named by their start time
	data, err := os.ReadFile(logs[len(logs)-1])
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		var rec struct{ Msg, Host, From string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "bundle fetched from a control plane" && rec.Host == node {
			return rec.From
		}
	}
	return ""
}
