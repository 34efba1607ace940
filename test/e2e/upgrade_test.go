//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubeforge/kubeforge/components/bundle"
)

const upgradeEnv = "KUBEFORGE_E2E_UPGRADE"

// upgradeWorkloads: a Deployment of 4 behind a PodDisruptionBudget that
// keeps 3, a ClusterIP Service in front of it, a StatefulSet pinned to a
// worker that writes a file on a hostPath volume once, and a ConfigMap.
const upgradeWorkloads = `apiVersion: v1
kind: Namespace
metadata:
  name: e2e-upgrade
  labels: {pod-security.kubernetes.io/enforce: privileged} # the StatefulSet's hostPath
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: e2e-upgrade}
spec:
  replicas: 4
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      securityContext: {runAsNonRoot: true, runAsUser: 1000, seccompProfile: {type: RuntimeDefault}}
      containers:
        - name: httpd
          image: kubeforge.local/e2e-busybox:1
          imagePullPolicy: Never
          command: [/bin/busybox, sh, -c, "echo hello > /www/index.html && exec /bin/busybox httpd -f -p 8080 -h /www"]
          ports: [{containerPort: 8080}]
          readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 2}
          securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
          volumeMounts: [{name: www, mountPath: /www}] # the image has no writable directory
      volumes: [{name: www, emptyDir: {}}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web, namespace: e2e-upgrade}
spec:
  minAvailable: 3
  selector: {matchLabels: {app: web}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: e2e-upgrade}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: before-upgrade, namespace: e2e-upgrade}
data: {made: "by the kubeforge of main"}
`

// upgradeStatefulSet is pinned to one worker (its hostPath lives there).
const upgradeStatefulSet = `apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: e2e-upgrade}
spec:
  serviceName: db
  replicas: 1
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      nodeSelector: {kubernetes.io/hostname: %s}
      containers:
        - name: db
          image: kubeforge.local/e2e-busybox:1
          imagePullPolicy: Never
          command: [/bin/busybox, sh, -c, "[ -f /data/born ] || date +%%s.%%N > /data/born; exec /bin/busybox sleep 1000000"]
          volumeMounts: [{name: data, mountPath: /data}]
      volumes:
        - name: data
          hostPath: {path: /var/lib/e2e-upgrade, type: DirectoryOrCreate}
`

// TestUpgrade is issue 18's acceptance: a cluster made by the kubeforge of
// main before upgrades existed (v1.35.4), moved by this tree to the newest
// v1.35, then v1.36, then v1.37, with an API client through the VIP the
// whole time.
func TestUpgrade(t *testing.T) {
	if os.Getenv(upgradeEnv) != "1" {
		t.Skipf("the upgrade acceptance needs 6 lab hosts, three bundles and an older kubeforge: run it with make e2e-upgrade (%s=1)", upgradeEnv)
	}
	from := os.Getenv("KUBEFORGE_UPGRADE_FROM")
	oldKubeforge, oldDist := filepath.Join(from, "bin", "kubeforge"), filepath.Join(from, "dist")
	steps := []string{filepath.Join(repoRoot, "dist-k8s-1.35"), filepath.Join(repoRoot, "dist-k8s-1.36"), distDir}
	for _, p := range append([]string{oldKubeforge, filepath.Join(oldDist, "manifest.json")}, steps...) {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%v (make e2e-upgrade builds them)", err)
		}
	}
	names := hostNames()
	if len(names) < 6 {
		t.Fatalf("need 6 lab hosts (make lab-up N=6 CP=3), have %v", names)
	}
	ctx := context.Background()
	for _, n := range names[:6] {
		if err := theLab.Recreate(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	cps, workers := names[:3], names[3:5]
	cluster := haCluster(t, "upgrade", names[:5])
	state := filepath.Join(t.TempDir(), "state")
	k := kube{file: cluster, state: state}

	r := runWith(t, oldKubeforge, oldDist, nil, "init", "-f", cluster, "--state-dir", state)
	if r.code != 0 {
		t.Fatalf("init with the kubeforge of main: %s", r)
	}
	t.Logf("init by the kubeforge of main: %s", doneLine(r.out))
	img := buildTestImage(t)
	for _, n := range names[:5] {
		importImage(t, n, img)
	}
	k.apply(t, upgradeWorkloads)
	k.apply(t, fmt.Sprintf(upgradeStatefulSet, workers[0]))
	k.must(t, "rollout", "status", "-n", "e2e-upgrade", "deployment/web", "--timeout=180s")
	k.must(t, "rollout", "status", "-n", "e2e-upgrade", "statefulset/db", "--timeout=180s")
	born := k.must(t, "exec", "-n", "e2e-upgrade", "db-0", "--", "/bin/busybox", "cat", "/data/born")
	svcIP := k.must(t, "get", "service", "-n", "e2e-upgrade", "web", "-o", "jsonpath={.spec.clusterIP}")

	api := startAPIProber(t, filepath.Join(state, "admin.conf"), "/api/v1/namespaces")
	defer api.Stop()
	// The Service from a host, with bash's /dev/tcp: a line per try.
	svcLoop := fmt.Sprintf(`nohup bash -c 'while :; do if timeout 2 bash -c "exec 3<>/dev/tcp/%s/80 && printf \"GET / HTTP/1.0\r\n\r\n\" >&3 && grep -q hello <&3"; then echo ok; else echo fail $(date +%%T.%%N); fi; sleep 0.2; done' >/root/svc.log 2>&1 & echo $! >/root/svc.pid`, svcIP)
	onHost(t, names[0], svcLoop)

	t.Run("plan refuses a skipped minor", func(t *testing.T) {
		r := runWith(t, kubeforge, distDir, nil, "upgrade", "plan", "-f", cluster, "--state-dir", state)
		if r.code != 3 || !strings.Contains(r.out, "skips Kubernetes 1.36") || !strings.Contains(r.out, "etcd 3.7 needs every member at v3.6.11") {
			t.Errorf("upgrade plan to v1.37 from v1.35: %s", r)
		}
	})

	for i, dist := range steps {
		m, err := bundle.Load(dist)
		if err != nil {
			t.Fatal(err)
		}
		want := m.Kubernetes()
		ok := t.Run("to "+want, func(t *testing.T) {
			r := runWith(t, kubeforge, dist, nil, "upgrade", "plan", "-f", cluster, "--state-dir", state)
			if r.code != 0 {
				t.Fatalf("upgrade plan: %s", r)
			}
			if i == 0 {
				// Killed without warning in the second control plane's step,
				// then in the first worker's drain: the re-run converges.
				apply := []string{"upgrade", "apply", "-f", cluster, "--state-dir", state, "--yes", "--bundle", dist}
				firstDone := func(l string) bool {
					return strings.HasPrefix(l, "[upgrade-control-planes] "+cps[0]+" ") && strings.Contains(l, " ok ")
				}
				code, out := interruptWhen(t, apply, firstDone, 8*time.Second, syscall.SIGKILL)
				t.Logf("SIGKILL 8s after %s's step: exit %d, last lines:\n%s", cps[0], code, lastLines(out, 4))
				if code != -1 { // -1: ended by the signal
					t.Fatalf("the apply was not killed in the control planes' step (exit %d):\n%s", code, out)
				}
				drain := func(l string) bool { return strings.HasPrefix(l, "[upgrade-workers] ") && strings.Contains(l, " on ") }
				code, out = interruptWhen(t, apply, drain, 2*time.Second, syscall.SIGKILL)
				t.Logf("SIGKILL 2s into the workers' step: exit %d, last lines:\n%s", code, lastLines(out, 4))
				if code != -1 {
					t.Fatalf("the apply was not killed in the workers' step (exit %d):\n%s", code, out)
				}
				if !strings.Contains(out, "[upgrade-node] "+cps[0]+" already on ") {
					t.Errorf("the re-run drained %s again, which the first run had moved:\n%s", cps[0], out)
				}
				cordoned := k.must(t, "get", "nodes", "-o", "jsonpath={range .items[?(@.spec.unschedulable==true)]}{.metadata.name} {end}")
				if !strings.Contains(cordoned, workers[0]) && !strings.Contains(cordoned, workers[1]) {
					t.Errorf("no worker is cordoned after the kill in the workers' step (cordoned: %q): the kill came too late", cordoned)
				}
			}
			r = runWith(t, kubeforge, dist, nil, "upgrade", "apply", "-f", cluster, "--state-dir", state, "--yes")
			if r.code != 0 {
				t.Fatalf("upgrade apply: %s", r)
			}
			t.Logf("upgrade to %s: %s", want, doneLine(r.out))
			nodes := k.must(t, "get", "nodes", "-o", "jsonpath={range .items[*]}{.metadata.name} {.status.nodeInfo.kubeletVersion} {.status.nodeInfo.containerRuntimeVersion} {.spec.unschedulable}{\"\\n\"}{end}")
			for _, line := range strings.Split(strings.TrimSpace(nodes), "\n") {
				f := strings.Fields(line)
				if len(f) < 3 || f[1] != want || !strings.HasPrefix(f[2], "containerd://2.") || len(f) > 3 {
					t.Errorf("node %q: want kubelet %s, containerd://2.x, schedulable", line, want)
				}
			}
			if s, r := status(t, cluster, state); r.code != 0 {
				t.Errorf("status after the upgrade: exit %d: %v", r.code, s.Degraded)
			}
			members := etcdMembers(t, cps[0])
			if len(members) != 3 {
				t.Errorf("etcd members: %v", members)
			}
			for n, learner := range members {
				if learner {
					t.Errorf("etcd member %s is a learner", n)
				}
			}
			k.must(t, "rollout", "status", "-n", "e2e-upgrade", "statefulset/db", "--timeout=180s")
			if got := k.must(t, "exec", "-n", "e2e-upgrade", "db-0", "--", "/bin/busybox", "cat", "/data/born"); got != born {
				t.Errorf("db-0's file says %q, it was %q", got, born)
			}
			if got := k.must(t, "get", "configmap", "-n", "e2e-upgrade", "before-upgrade", "-o", "jsonpath={.data.made}"); got != "by the kubeforge of main" {
				t.Errorf("the ConfigMap made before: %q", got)
			}
		})
		if !ok {
			t.Fatalf("the upgrade to %s failed: the cluster is not where the steps after it start", want)
		}
	}

	t.Run("plan refuses a downgrade", func(t *testing.T) {
		r := runWith(t, kubeforge, steps[1], nil, "upgrade", "plan", "-f", cluster, "--state-dir", state)
		if r.code != 3 || !strings.Contains(r.out, "kubeforge does not downgrade") {
			t.Errorf("upgrade plan back to v1.36: %s", r)
		}
	})

	t.Run("a worker joined after the upgrade runs the new version", func(t *testing.T) {
		cluster6 := haCluster(t, "upgrade", names[:6])
		mustRun(t, nil, "join", "-f", cluster6, "--state-dir", state, "--host", names[5])
		want := distKubernetes(t)
		if got := k.must(t, "get", "node", names[5], "-o", "jsonpath={.status.nodeInfo.kubeletVersion}"); got != want {
			t.Errorf("%s runs kubelet %s, want %s", names[5], got, want)
		}
	})

	api.Stop()
	t.Logf("API through the VIP: %d requests, %d failed %v; %d answered with Retry-After and retried %v", api.requests, api.failures, api.first, api.retried, api.firstRetried)
	if api.failures > 0 {
		t.Errorf("%d of %d API requests through the VIP failed: %v", api.failures, api.requests, api.first)
	}
	// One line, so that the Makefile's filter of continuation lines keeps it.
	svc := strings.Fields(onHost(t, names[0], "kill $(cat /root/svc.pid); test -s /root/svc.log || exit 1; grep -c '^ok' /root/svc.log; grep -c '^fail' /root/svc.log; grep '^fail' /root/svc.log | head -5 | cut -d' ' -f2"))
	if len(svc) < 2 {
		t.Fatalf("the Service loop on %s left no counts (%q): was it running?", names[0], svc)
	}
	ok, failed := svc[0], svc[1]
	t.Logf("the Service from %s: %s ok, %s failed (goal 0), first failures at %v", names[0], ok, failed, svc[2:])
	if ok == "0" {
		t.Errorf("the Service loop on %s never reached the Service", names[0])
	}
}

// lastLines is the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
