//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kubeforge/kubeforge/components/bundle"
)

// testImage is the workload image the tests ship to the nodes themselves
// (the product ships only its own images): Debian's static busybox.
const testImage = "kubeforge.local/e2e-busybox:1"

func buildTestImage(t *testing.T) string {
	t.Helper()
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatal("the busybox binary is needed for the test workload image: apt-get install busybox-static (.ci/run does)")
	}
	out := filepath.Join(t.TempDir(), "busybox.tar")
	if _, err := bundle.WriteImage(bundle.ImageSpec{
		Ref:        testImage,
		Files:      []bundle.ImageFile{{Path: "/bin/busybox", Source: busybox}},
		Entrypoint: []string{"/bin/busybox"},
	}, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// importImage copies an image tarball into a lab host's containerd.
func importImage(t *testing.T, hostName, tar string) {
	t.Helper()
	h, err := theLab.Host(hostName)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("docker", "cp", tar, h.Container+":/root/e2e-image.tar").CombinedOutput(); err != nil {
		t.Fatalf("docker cp: %v: %s", err, out)
	}
	onHost(t, hostName, bundleCtr+" -n k8s.io images import /root/e2e-image.tar && rm /root/e2e-image.tar")
}

// noPackagesInstalled: kubeforge installed no OS package on the host (the
// lab's hosts have the base tools).
func noPackagesInstalled(t *testing.T, node string) {
	t.Helper()
	if got := onHost(t, node, "cat /var/lib/kubeforge/installed-packages 2>/dev/null || true"); got != "" {
		t.Errorf("%s: kubeforge installed OS packages: %s", node, got)
	}
}

// bundleCtr is the bundle's ctr, which talks to the bundle's containerd
// (not on PATH).
const bundleCtr = "/opt/kubeforge/current/bin/ctr"

// bundledRuntime checks that every node runs the bundle's containerd 2.x
// (as the API reports it) and that crictl, from the bundle and on PATH,
// lists the node's containers.
func bundledRuntime(t *testing.T, k kube, nodes []string) {
	t.Helper()
	wide := k.must(t, "get", "nodes", "-o", "jsonpath={range .items[*]}{.metadata.name}={.status.nodeInfo.containerRuntimeVersion} {end}")
	for _, n := range nodes {
		if !strings.Contains(wide, n+"=containerd://2.") {
			t.Errorf("%s does not run containerd 2.x: %s", n, wide)
		}
		if out := onHost(t, n, "crictl ps 2>&1 || true"); !strings.HasPrefix(out, "CONTAINER") {
			t.Errorf("crictl ps on %s: %s", n, out)
		}
	}
}

// mainPID is a systemd service's main process, to tell a restart.
func mainPID(t *testing.T, host, service string) string {
	t.Helper()
	return strings.TrimSpace(onHost(t, host, "systemctl show -p MainPID --value "+service))
}

// TestPreflightPortTaken: a host whose port 6443 is taken is refused
// before anything is written there.
func TestPreflightPortTaken(t *testing.T) {
	names := hostNames()
	victim := names[len(names)-1]
	onHost(t, victim, "mkdir -p /run/sshd && /usr/sbin/sshd -p 6443 -o PidFile=/run/e2e-6443.pid")
	defer onHost(t, victim, "kill $(cat /run/e2e-6443.pid)")
	before := snapshot(t, victim)
	cluster := clusterFile(t, "preflight", []string{victim}, "", nil)
	r := run(t, nil, "init", "-f", cluster, "--state-dir", t.TempDir())
	if r.code == 0 || !regexp.MustCompile(`\[Port-6443\] port 6443 is in use by sshd \(pid \d+\)`).MatchString(r.err) {
		t.Fatalf("%s", r)
	}
	if strings.Contains(r.out, "[bundle]") {
		t.Errorf("init went past preflight:\n%s", r.out)
	}
	if after := snapshot(t, victim); after != before {
		t.Errorf("the refused host was changed")
	}
}

// TestInit brings a one-host cluster up and checks it the way a user
// would, then re-runs init, repairs a deleted key, and checks again.
func TestInit(t *testing.T) {
	node := hostNames()[0]
	if err := theLab.Recreate(context.Background(), node); err != nil { // a fresh host
		t.Fatal(err)
	}
	cluster := clusterFile(t, "e2e", []string{node}, "", nil)
	state := filepath.Join(t.TempDir(), "state")
	kubectl := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, kubeforge, append([]string{"kubectl", "-f", cluster, "--state-dir", state, "--bundle", distDir, "--"}, args...)...)
		out, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	var mustKubectl func(args ...string) string
	bind := func(t *testing.T) {
		mustKubectl = func(args ...string) string {
			t.Helper()
			out, err := kubectl(args...)
			if err != nil {
				t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			return out
		}
	}
	bind(t)

	first := mustRun(t, nil, "init", "-f", cluster, "--state-dir", state)
	t.Logf("init: %s\n%s", first.duration.Round(10*time.Millisecond), first.out)
	t.Run("the bundle's runtime, no OS package", func(t *testing.T) {
		bundledRuntime(t, kube{file: cluster, state: state}, []string{node})
		noPackagesInstalled(t, node)
	})
	if !strings.Contains(first.out, "kubeforge join ") || !strings.Contains(first.out, "--discovery-token-ca-cert-hash sha256:") {
		t.Errorf("no join command printed")
	}
	if _, err := os.Stat(filepath.Join(state, "admin.conf")); err != nil {
		t.Fatal(err)
	}

	healthy := func(t *testing.T) {
		t.Helper()
		bind(t)
		if out := mustKubectl("get", "nodes", "-o", "jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=='Ready')].status}{end}"); out != node+"=True" {
			t.Errorf("node not Ready: %s", out)
		}
		readyz := mustKubectl("get", "--raw", "/readyz?verbose")
		if !strings.HasSuffix(readyz, "readyz check passed") || strings.Contains(readyz, "failed") {
			t.Errorf("readyz: %s", readyz)
		}
		deadline := time.Now().Add(3 * time.Minute)
		for {
			pods := mustKubectl("-n", "kube-system", "get", "pods", "-o", "jsonpath={range .items[*]}{.metadata.name}={.status.phase}/{.status.containerStatuses[0].ready} {end}")
			if pods != "" && !strings.Contains(pods, "=Pending") && !strings.Contains(pods, "/false") && !regexp.MustCompile(`=(Failed|Unknown)`).MatchString(pods) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("kube-system pods not all Running and ready: %s", pods)
			}
			time.Sleep(2 * time.Second)
		}
		health := onHost(t, node, "etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt --key=/etc/kubernetes/pki/etcd/healthcheck-client.key endpoint health 2>&1")
		if !strings.Contains(health, "is healthy") {
			t.Errorf("etcd: %s", health)
		}
	}
	t.Run("healthy", healthy)

	t.Run("a pod runs logs execs resolves and reaches the API", func(t *testing.T) {
		bind(t)
		importImage(t, node, buildTestImage(t))
		pod := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"e2e","namespace":"default"},"spec":{"containers":[{"name":"bb","image":"` + testImage + `","imagePullPolicy":"Never","command":["/bin/busybox","sh","-c","echo hello from e2e; exec /bin/busybox sleep 3600"]}]}}`
		f := filepath.Join(t.TempDir(), "pod.json")
		os.WriteFile(f, []byte(pod), 0o600)
		mustKubectl("apply", "-f", f)
		mustKubectl("wait", "--for=condition=Ready", "pod/e2e", "--timeout=120s")
		if out := mustKubectl("logs", "e2e"); out != "hello from e2e" {
			t.Errorf("logs: %q", out)
		}
		if out := mustKubectl("exec", "e2e", "--", "/bin/busybox", "cat", "/proc/1/cmdline"); !strings.Contains(out, "sleep") {
			t.Errorf("exec: %q", out)
		}
		ns := mustKubectl("exec", "e2e", "--", "/bin/busybox", "nslookup", "kubernetes.default.svc.cluster.local")
		if !strings.Contains(ns, "10.96.0.1") || !strings.Contains(ns, "10.96.0.10") {
			t.Errorf("nslookup via CoreDNS: %s", ns)
		}
		// The short name through the pod's search path (busybox nslookup
		// does not apply it; nc resolves with the C library, which does),
		// to the API server behind the kubernetes Service: a plain HTTP
		// request gets the Go server's answer to HTTP on its HTTPS port.
		api := mustKubectl("exec", "e2e", "--", "/bin/busybox", "sh", "-c",
			`printf 'GET / HTTP/1.0\r\n\r\n' | /bin/busybox nc kubernetes.default 443`)
		if !strings.Contains(api, "Client sent an HTTP request to an HTTPS server") {
			t.Errorf("kubernetes.default:443 from the pod: %q", api)
		}
		byIP := mustKubectl("exec", "e2e", "--", "/bin/busybox", "sh", "-c",
			`printf 'GET / HTTP/1.0\r\n\r\n' | /bin/busybox nc 10.96.0.1 443`)
		if !strings.Contains(byIP, "Client sent an HTTP request to an HTTPS server") {
			t.Errorf("10.96.0.1:443 from the pod: %q", byIP)
		}
		var podObj struct {
			Status struct{ PodIP string } `json:"status"`
		}
		json.Unmarshal([]byte(mustKubectl("get", "pod", "e2e", "-o", "json")), &podObj)
		if !strings.HasPrefix(podObj.Status.PodIP, "10.244.") {
			t.Errorf("pod IP %q is not from the pod network", podObj.Status.PodIP)
		}
	})

	t.Run("init again changes nothing", func(t *testing.T) {
		bind(t)
		pids := map[string]string{}
		for _, s := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "flanneld", "containerd"} {
			pids[s] = mainPID(t, node, s)
		}
		again := mustRun(t, nil, "init", "-f", cluster, "--state-dir", state)
		t.Logf("second init: %s", again.duration.Round(10*time.Millisecond))
		for s, pid := range pids {
			if now := mainPID(t, node, s); now != pid {
				t.Errorf("%s restarted (%s -> %s)", s, pid, now)
			}
		}
		dry := mustRun(t, nil, "init", "-f", cluster, "--state-dir", state, "--dry-run")
		if strings.Contains(dry.out, "would change") || strings.Contains(dry.out, "would be") {
			t.Errorf("dry run on a running cluster reports changes:\n%s", dry.out)
		}
	})

	t.Run("a deleted apiserver key is repaired", func(t *testing.T) {
		bind(t)
		pid := mainPID(t, node, "kube-apiserver")
		onHost(t, node, "rm /etc/kubernetes/pki/apiserver.key")
		repair := mustRun(t, nil, "init", "-f", cluster, "--state-dir", state)
		t.Logf("repair: %s", lastLine(repair.out))
		if out := onHost(t, node, "stat -c %a /etc/kubernetes/pki/apiserver.key"); strings.TrimSpace(out) != "600" {
			t.Errorf("key mode %s", out)
		}
		if now := mainPID(t, node, "kube-apiserver"); now == pid {
			t.Errorf("kube-apiserver was not restarted with its key back")
		}
		healthy(t)
	})
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// TestInitWorkers brings up one control plane, then joins two workers to
// it with `kubeforge join --host` (TLS bootstrap, both at once), with
// flannel's host-gw backend (the lab hosts share one L2 network), and
// checks pod traffic between the nodes.
func TestInitWorkers(t *testing.T) {
	names := hostNames()
	if len(names) < 3 {
		t.Fatalf("need 3 lab hosts, have %v", names)
	}
	names = names[:3]
	ctx := context.Background()
	for _, n := range names {
		if err := theLab.Recreate(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	hostGW := "  networking:\n    backend: host-gw\n"
	controlOnly := clusterFile(t, "workers", names[:1], hostGW, func(s string) string {
		return strings.Replace(s, "[control-plane, worker]", "[control-plane]", 1)
	})
	// The first worker carries a legal but unusual label: a prefixed key,
	// a 63-character value with dots, dashes and underscores.
	rackValue := "row-7.rack_12." + strings.Repeat("x", 63-len("row-7.rack_12.")-1) + "z"
	withLabel := func(value string) func(string) string {
		return func(s string) string {
			return strings.Replace(s, "roles: [worker]\n", "roles: [worker]\n      labels:\n        example.com/rack: "+strconvQuote(value)+"\n", 1)
		}
	}
	cluster := clusterFile(t, "workers", names, hostGW, withLabel(rackValue))
	state := filepath.Join(t.TempDir(), "state")
	r := mustRun(t, nil, "init", "-f", controlOnly, "--state-dir", state)
	t.Logf("init of the control plane: %s", doneLine(r.out))

	// A label that would run a command, were it pasted into a shell: refused
	// by validation (exit 3) before any host is contacted.
	evil := clusterFile(t, "workers", names, hostGW, withLabel("$(touch /tmp/pwned)"))
	bad := run(t, nil, "join", "-f", evil, "--state-dir", state, "--host", names[1])
	if bad.code != 3 || !strings.Contains(bad.err, "labels.example.com/rack") || !strings.Contains(bad.err, "not a label value") {
		t.Errorf("a label carrying a command: %s", bad)
	}
	for _, n := range names {
		if out := onHost(t, n, "ls /tmp/pwned 2>/dev/null || true"); strings.TrimSpace(out) != "" {
			t.Errorf("%s: /tmp/pwned exists", n)
		}
	}
	if strings.Contains(bad.out, "[connect]") {
		t.Errorf("the refused join connected to hosts:\n%s", bad.out)
	}
	joined := mustRun(t, nil, "join", "-f", cluster, "--state-dir", state, "--host", names[1]+","+names[2])
	t.Logf("join --host of 2 workers: %s", doneLine(joined.out))
	pids := mainPID(t, names[0], "kube-apiserver") + mainPID(t, names[1], "kubelet") + mainPID(t, names[2], "kubelet")
	again := mustRun(t, nil, "join", "-f", cluster, "--state-dir", state)
	if !strings.Contains(again.out, "nothing to join") {
		t.Errorf("join without --host on a cluster with every host a node:\n%s", again.out)
	}
	again = mustRun(t, nil, "join", "-f", cluster, "--state-dir", state, "--host", names[1])
	t.Logf("join --host of a member again: %s", doneLine(again.out))
	if now := mainPID(t, names[0], "kube-apiserver") + mainPID(t, names[1], "kubelet") + mainPID(t, names[2], "kubelet"); now != pids {
		t.Errorf("joining again restarted services")
	}
	kubectl := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(kubeforge, append([]string{"kubectl", "-f", cluster, "--state-dir", state, "--bundle", distDir, "--"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	bundledRuntime(t, kube{file: cluster, state: state}, names)
	if got := kubectl("get", "node", names[1], "-o", `jsonpath={.metadata.labels.example\.com/rack}`); got != rackValue {
		t.Errorf("label example.com/rack on %s: %q, want %q", names[1], got, rackValue)
	}
	ready := kubectl("get", "nodes", "-o", "jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=='Ready')].status} {end}")
	for _, n := range names {
		if !strings.Contains(ready, n+"=True") {
			t.Errorf("%s not Ready: %s", n, ready)
		}
	}
	// The control-plane taint is ours; node.kubernetes.io/* taints are the
	// node controller's report of a condition of the machine the lab runs on
	// (a CI disk over kubelet's eviction threshold gives disk-pressure), not
	// of what init configured.
	taints := strings.Fields(kubectl("get", "node", names[0], "-o", "jsonpath={.spec.taints[*].key}"))
	var ours, conditions []string
	for _, k := range taints {
		if strings.HasPrefix(k, "node.kubernetes.io/") {
			conditions = append(conditions, k)
		} else {
			ours = append(ours, k)
		}
	}
	if strings.Join(ours, " ") != "node-role.kubernetes.io/control-plane" {
		t.Errorf("control plane taints: %q, want node-role.kubernetes.io/control-plane", taints)
	}
	if len(conditions) > 0 {
		t.Logf("%s also has the node controller's condition taints %v (the lab machine's disk or memory): %s", names[0], conditions,
			kubectl("get", "node", names[0], "-o", "jsonpath={range .status.conditions[?(@.status=='True')]}{.type}: {.message}; {end}"))
	}
	// A pod on each worker; each reaches the other across nodes, and the
	// cluster DNS.
	img := buildTestImage(t)
	var ips []string
	for _, n := range names[1:] {
		importImage(t, n, img)
		pod := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"on-` + n + `"},"spec":{"nodeName":"` + n + `","containers":[{"name":"bb","image":"` + testImage + `","imagePullPolicy":"Never","command":["/bin/busybox","sh","-c","/bin/busybox mkdir -p /www && echo on-` + n + ` > /www/id && exec /bin/busybox httpd -f -p 8080 -h /www"]}]}}`
		f := filepath.Join(t.TempDir(), "pod.json")
		os.WriteFile(f, []byte(pod), 0o600)
		kubectl("apply", "-f", f)
		kubectl("wait", "--for=condition=Ready", "pod/on-"+n, "--timeout=120s")
		ips = append(ips, kubectl("get", "pod", "on-"+n, "-o", "jsonpath={.status.podIP}"))
	}
	for i, n := range names[1:] {
		other := ips[1-i]
		out := kubectl("exec", "on-"+n, "--", "/bin/busybox", "wget", "-q", "-O-", "http://"+other+":8080/id")
		if want := names[2-i]; out != "on-"+want {
			t.Errorf("from %s to the pod on %s (%s): %q", n, want, other, out)
		}
		if ns := kubectl("exec", "on-"+n, "--", "/bin/busybox", "nslookup", "kubernetes.default.svc.cluster.local"); !strings.Contains(ns, "10.96.0.1") {
			t.Errorf("DNS from %s: %s", n, ns)
		}
	}
}

// strconvQuote is a YAML double-quoted string.
func strconvQuote(s string) string { return strconv.Quote(s) }
