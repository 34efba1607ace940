//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The workloads live in e2e-workloads. The StatefulSet web and its headless
// Service web live in e2e-sts, beside (not against) the Deployment web and
// its ClusterIP Service web.
const (
	workloadsNS = "e2e-workloads"
	stsNS       = "e2e-sts"
)

// checkWorkloads runs the workloads a user of the cluster would try, and
// checks each behaves. workers are the schedulable nodes (control planes are
// tainted NoSchedule), nodes are all nodes. The busybox test image is
// already imported on every node by the caller.
func checkWorkloads(t *testing.T, k kube, nodes, workers []string) {
	// A run cut short leaves its namespaces and its node label behind.
	if out, err := k.run("", "delete", "namespace", workloadsNS, stsNS, "--ignore-not-found", "--timeout=150s"); err != nil {
		t.Fatalf("deleting the namespaces of an earlier run: %v\n%s", err, out)
	}
	k.must(t, "label", "nodes", "--all", "e2e-pick-")
	k.apply(t, namespaces)
	defer func() {
		if out, err := k.run("", "delete", "namespace", workloadsNS, stsNS, "--wait=false"); err != nil {
			t.Errorf("deleting the test namespaces: %v\n%s", err, out)
		}
	}()
	for _, ns := range []string{workloadsNS, stsNS} {
		// Pods are refused until the namespace has its default ServiceAccount.
		k.must(t, "wait", "--for=create", "serviceaccount/default", "-n", ns, "--timeout=60s")
	}

	// The CronJob first: its first run waits for the next minute, which
	// passes during the other checks; "CronJob fires" checks it at the end.
	var cronCreated time.Time
	cron := t.Run("CronJob is created", func(t *testing.T) {
		applyWorkload(t, k, cronJob)
		cronCreated = time.Now()
	})

	// The subtests that use the Deployment web skip when it did not come
	// up; a failed spreading check does not stop them.
	var web bool
	t.Run("Deployment spreads over the workers", func(t *testing.T) {
		applyWorkload(t, k, deployment)
		waitFor(t, k, workloadsNS, "rollout", "status", "deployment/web", "--timeout=150s")
		pods := readyPods(t, k, workloadsNS, "app=web")
		if len(pods) != 5 {
			t.Fatalf("web is available but has %d ready pods, want 5: %v", len(pods), pods)
		}
		web = true
		perNode := map[string][]string{}
		for _, p := range pods {
			perNode[p.node] = append(perNode[p.node], p.name)
			if !slices.Contains(workers, p.node) {
				t.Errorf("pod %s runs on %s, which is not a worker (workers: %v)", p.name, p.node, workers)
			}
		}
		t.Logf("web's 5 pods by node: %v", perNode)
		// The scheduler's default topology spreading, nothing in the spec.
		if len(workers) > 1 && len(perNode) < 2 {
			t.Errorf("all of web's pods run on one node %v, though there are workers %v", slices.Collect(maps.Keys(perNode)), workers)
		}
	})

	t.Run("scaling 5 to 3 shows events", func(t *testing.T) {
		requires(t, web, "the Deployment web")
		before := readyPods(t, k, workloadsNS, "app=web")
		// --watch lists the events there are, then prints each new one.
		watch := k.watch(t, "get", "events", "-n", workloadsNS, "--watch",
			"-o", "custom-columns=REASON:.reason,OBJECT:.involvedObject.name,MESSAGE:.message")
		defer watch.stop()
		k.must(t, "scale", "deployment", "web", "-n", workloadsNS, "--replicas=3")

		var after []pod
		eventually(t, 2*time.Minute, "web down to 3 available pods, the others gone", func() string {
			available, err := k.run("", "get", "deployment", "web", "-n", workloadsNS, "-o", "jsonpath={.status.availableReplicas}")
			if err != nil {
				return available
			}
			pods, err := listPods(k, workloadsNS, "app=web") // terminating ones too
			if err != nil {
				return err.Error()
			}
			if available != "3" || len(pods) != 3 {
				return fmt.Sprintf("%s available; pods %v", available, pods)
			}
			after = pods
			return ""
		})
		var removed []string
		for _, p := range before {
			if !slices.ContainsFunc(after, func(q pod) bool { return q.name == p.name }) {
				removed = append(removed, p.name)
			}
		}
		t.Logf("scaled down: %v removed, %v stay", removed, after)
		if len(removed) != 2 {
			t.Fatalf("scaling 5 to 3 removed %v, want 2 of the pods %v", removed, before)
		}

		var scaled []string
		var killed map[string]string // pod → message
		eventually(t, time.Minute, "a ScalingReplicaSet event down to 3 and a Killing event for each removed pod", func() string {
			evs, err := listEvents(k, workloadsNS)
			if err != nil {
				return err.Error()
			}
			scaled, killed = nil, map[string]string{}
			for _, e := range evs {
				switch {
				case e.Reason == "ScalingReplicaSet" && scaledDownTo3.MatchString(e.Message):
					scaled = append(scaled, e.Message)
				case e.Reason == "Killing" && e.InvolvedObject.Kind == "Pod" && slices.Contains(removed, e.InvolvedObject.Name):
					killed[e.InvolvedObject.Name] = e.Message
				}
			}
			if len(scaled) == 0 || len(killed) != len(removed) {
				return fmt.Sprintf("ScalingReplicaSet down to 3: %q; Killing of %v: %q", scaled, removed, killed)
			}
			return ""
		})
		t.Logf("ScalingReplicaSet: %q", scaled)
		t.Logf("Killing: %q", killed)

		eventually(t, 15*time.Second, "kubectl get events --watch prints the scale-down", func() string {
			out := watch.output()
			for _, line := range strings.Split(out, "\n") {
				if strings.HasPrefix(line, "ScalingReplicaSet") && scaledDownTo3.MatchString(line) {
					t.Logf("get events --watch printed: %s", line)
					return ""
				}
			}
			return "it printed:\n" + out
		})
	})

	t.Run("DaemonSet runs one pod on every worker", func(t *testing.T) {
		applyWorkload(t, k, daemonSet)
		waitFor(t, k, workloadsNS, "rollout", "status", "daemonset/agent", "--timeout=150s")
		pods, err := listPods(k, workloadsNS, "app=agent")
		if err != nil {
			t.Fatal(err)
		}
		perNode := map[string][]string{}
		for _, p := range pods {
			perNode[p.node] = append(perNode[p.node], p.name)
			if !p.ready {
				t.Errorf("agent pod %s on %s is not ready", p.name, p.node)
			}
		}
		t.Logf("agent pods by node: %v", perNode)
		for _, w := range workers {
			if len(perNode[w]) != 1 {
				t.Errorf("worker %s runs %d agent pods %v, want 1", w, len(perNode[w]), perNode[w])
			}
		}
		for n, names := range perNode {
			if !slices.Contains(workers, n) {
				t.Errorf("%s, not a worker, runs agent pods %v (a control plane's NoSchedule taint should keep them off)", n, names)
			}
		}
	})

	t.Run("StatefulSet pods keep their names", func(t *testing.T) {
		applyWorkload(t, k, statefulSet)
		waitFor(t, k, stsNS, "rollout", "status", "statefulset/web", "--timeout=150s")
		pods, err := listPods(k, stsNS, "app=web")
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		var old pod
		for _, p := range pods {
			names = append(names, p.name)
			if p.phase != "Running" {
				t.Errorf("%s is %s, not Running", p.name, p.phase)
			}
			if p.name == "web-0" {
				old = p
			}
		}
		if !slices.Equal(names, []string{"web-0", "web-1"}) {
			t.Fatalf("StatefulSet web's pods are %v, want [web-0 web-1]", pods)
		}
		k.must(t, "delete", "pod", "web-0", "-n", stsNS, "--wait=false")
		var again pod
		eventually(t, 2*time.Minute, "web-0 back, a new pod, Running and ready", func() string {
			pods, err := listPods(k, stsNS, "statefulset.kubernetes.io/pod-name=web-0")
			if err != nil {
				return err.Error()
			}
			if len(pods) != 1 || pods[0].uid == old.uid || pods[0].phase != "Running" || !pods[0].ready {
				return fmt.Sprintf("the deleted web-0 was UID %s; now: %v", old.uid, pods)
			}
			again = pods[0]
			return ""
		})
		t.Logf("web-0 deleted (UID %s on %s) and back under its name (UID %s on %s)", old.uid, old.node, again.uid, again.node)
	})

	t.Run("Job completes", func(t *testing.T) {
		applyWorkload(t, k, job)
		waitFor(t, k, workloadsNS, "wait", "--for=condition=Complete", "job/hello", "--timeout=120s")
		if out := k.must(t, "logs", "job/hello", "-n", workloadsNS); out != "done" {
			t.Errorf("job hello's logs: %q, want %q", out, "done")
		}
	})

	t.Run("nodeSelector picks the labelled node", func(t *testing.T) {
		pick := workers[len(workers)-1]
		k.must(t, "label", "node", pick, "e2e-pick=yes", "--overwrite")
		defer func() {
			if out, err := k.run("", "label", "node", pick, "e2e-pick-"); err != nil {
				t.Errorf("removing the label e2e-pick from %s: %v\n%s", pick, err, out)
			}
		}()
		applyWorkload(t, k, picked)
		waitFor(t, k, workloadsNS, "wait", "--for=condition=Ready", "pod/picked", "--timeout=120s")
		node := k.must(t, "get", "pod", "picked", "-n", workloadsNS, "-o", "jsonpath={.spec.nodeName}")
		t.Logf("pod picked (nodeSelector e2e-pick=yes) runs on %s, the node labelled among %v", node, workers)
		if node != pick {
			t.Errorf("pod picked runs on %s, not on %s, the one node labelled e2e-pick=yes", node, pick)
		}
	})

	t.Run("ClusterIP Service answers from every node and from a pod", func(t *testing.T) {
		requires(t, web, "the Deployment web")
		k.apply(t, webService)
		ip := k.must(t, "get", "service", "web", "-n", workloadsNS, "-o", "jsonpath={.spec.clusterIP}")
		t.Logf("Service web: clusterIP %s", ip)

		// From each node's own network namespace, through kube-proxy's rules.
		for _, n := range nodes {
			var answer string
			eventually(t, time.Minute, fmt.Sprintf("GET http://%s/id from %s's host network", ip, n), func() string {
				out := onHost(t, n, fmt.Sprintf(httpGetID, ip))
				_, body, _ := strings.Cut(out, "\r\n\r\n")
				answer = strings.TrimSpace(body)
				return isWebPod(k, answer, out)
			})
			t.Logf("%s -> %s:80/id answered by %s", n, ip, answer)
		}

		// From a pod, by the Service's DNS name, to a backend on another node.
		backends := podNodes(readyPods(t, k, workloadsNS, "app=web"))
		node := awayFrom(append(slices.Clone(workers), nodes...), backends)
		if node == "" {
			t.Fatalf("no node without one of web's pods %v to put a client on", backends)
		}
		startClient(t, k, "client-svc", node)
		const name = "web.e2e-workloads.svc.cluster.local"
		var answer string
		eventually(t, time.Minute, "wget http://"+name+"/id from a pod on "+node, func() string {
			out, _ := k.run("", "exec", "client-svc", "-n", workloadsNS, "--", "/bin/busybox", "timeout", "5", "/bin/busybox", "wget", "-qO-", "http://"+name+"/id")
			answer = out
			return isWebPod(k, answer, out)
		})
		t.Logf("client on %s -> http://%s/id answered by %s (backends: %v)", node, name, answer, backends)
		eventually(t, 30*time.Second, "nslookup "+name+" from a pod gives "+ip, func() string {
			out, _ := k.run("", "exec", "client-svc", "-n", workloadsNS, "--", "/bin/busybox", "nslookup", name)
			if !strings.Contains(out, ip) {
				return out
			}
			return ""
		})
	})

	t.Run("endpoints drop a deleted pod", func(t *testing.T) {
		requires(t, web, "the Deployment web")
		k.apply(t, webService)
		victim := readyPods(t, k, workloadsNS, "app=web")[0]
		eventually(t, time.Minute, "web's EndpointSlices list "+victim.name+" ready", func() string {
			eps, err := endpoints(k)
			if !eps[victim.ip] {
				return fmt.Sprintf("%s (%s) not a ready endpoint: %v %v", victim.name, victim.ip, eps, err)
			}
			return ""
		})
		k.must(t, "delete", "pod", victim.name, "-n", workloadsNS, "--wait=false")
		var eps map[string]bool
		eventually(t, 2*time.Minute, fmt.Sprintf("%s's IP %s out of web's endpoints, 3 pods available again", victim.name, victim.ip), func() string {
			var err error
			if eps, err = endpoints(k); err != nil {
				return err.Error()
			}
			available, _ := k.run("", "get", "deployment", "web", "-n", workloadsNS, "-o", "jsonpath={.status.availableReplicas}")
			ready := 0
			for _, r := range eps {
				if r {
					ready++
				}
			}
			if _, there := eps[victim.ip]; there || ready != 3 || available != "3" {
				return fmt.Sprintf("endpoints (address: ready) %v; deployment web: %s available", eps, available)
			}
			return ""
		})
		t.Logf("deleted %s (%s); web's endpoints now %v", victim.name, victim.ip, slices.Sorted(maps.Keys(eps)))
	})

	t.Run("pod to pod across nodes", func(t *testing.T) {
		requires(t, web, "the Deployment web")
		if len(workers) < 2 {
			t.Skipf("one worker (%v): no two nodes for pods to talk across", workers)
		}
		pods := readyPods(t, k, workloadsNS, "app=web")
		node := awayFrom(workers, podNodes(pods))
		startClient(t, k, "client-p2p", node)
		for _, p := range pods {
			if p.node == node {
				continue
			}
			url := fmt.Sprintf("http://%s:8080/id", p.ip)
			var out string
			eventually(t, 30*time.Second, fmt.Sprintf("wget %s (pod %s on %s) from a pod on %s", url, p.name, p.node, node), func() string {
				out, _ = k.run("", "exec", "client-p2p", "-n", workloadsNS, "--", "/bin/busybox", "timeout", "5", "/bin/busybox", "wget", "-qO-", url)
				if out != p.name {
					return fmt.Sprintf("answer %q, want %q", out, p.name)
				}
				return ""
			})
			t.Logf("client on %s -> %s on %s (%s): %s", node, p.name, p.node, p.ip, out)
		}
	})

	t.Run("CronJob fires", func(t *testing.T) {
		requires(t, cron, "creating the CronJob")
		// It runs at the first minute after its creation, for a second.
		wait := max(time.Until(cronCreated.Add(150*time.Second)), 10*time.Second)
		var done string
		eventually(t, wait, "a Job of the CronJob tick completes", func() string {
			out, err := k.run("", "get", "jobs", "-n", workloadsNS, "-l", "app=tick", "-o",
				`jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Complete")].status} {end}`)
			if err != nil {
				return out
			}
			for _, f := range strings.Fields(out) {
				if name, ok := strings.CutSuffix(f, "=True"); ok {
					done = name
					return ""
				}
			}
			return fmt.Sprintf("its jobs (name=Complete): %q", out)
		})
		t.Logf("CronJob tick: job %s complete %s after the CronJob was created", done, time.Since(cronCreated).Round(time.Second))
	})
}

// Manifests. Pod templates say image: $IMAGE (applyWorkload puts testImage
// there): busybox, imported on each node, never pulled. Pods that would
// ignore SIGTERM as PID 1 (httpd, sleep) get a 1 s grace period, so a
// deleted pod goes in seconds rather than the default 30.

const namespaces = `
apiVersion: v1
kind: Namespace
metadata:
  name: e2e-workloads
---
apiVersion: v1
kind: Namespace
metadata:
  name: e2e-sts
`

const cronJob = `
apiVersion: batch/v1
kind: CronJob
metadata:
  name: tick
  namespace: e2e-workloads
spec:
  schedule: "*/1 * * * *"
  concurrencyPolicy: Forbid
  jobTemplate:
    metadata:
      labels:
        app: tick
    spec:
      backoffLimit: 1
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: tick
            image: $IMAGE
            imagePullPolicy: Never
            command: ["/bin/busybox", "echo", "tick"]
`

// deployment's pods serve their own name at :8080/id.
const deployment = `
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: e2e-workloads
spec:
  replicas: 5
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: $IMAGE
        imagePullPolicy: Never
        command: ["/bin/busybox", "sh", "-c", "/bin/busybox mkdir -p /www && /bin/busybox hostname > /www/id && exec /bin/busybox httpd -f -p 8080 -h /www"]
        ports:
        - containerPort: 8080
        readinessProbe:
          httpGet:
            path: /id
            port: 8080
          periodSeconds: 2
`

const webService = `
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: e2e-workloads
spec:
  selector:
    app: web
  ports:
  - port: 80
    targetPort: 8080
`

// daemonSet has no toleration: the control planes' taint keeps it off them.
const daemonSet = `
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
  namespace: e2e-workloads
spec:
  selector:
    matchLabels:
      app: agent
  template:
    metadata:
      labels:
        app: agent
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: agent
        image: $IMAGE
        imagePullPolicy: Never
        command: ["/bin/busybox", "sleep", "3600"]
`

const statefulSet = `
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: e2e-sts
spec:
  clusterIP: None
  selector:
    app: web
  ports:
  - port: 8080
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
  namespace: e2e-sts
spec:
  serviceName: web
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: $IMAGE
        imagePullPolicy: Never
        command: ["/bin/busybox", "sleep", "3600"]
`

const job = `
apiVersion: batch/v1
kind: Job
metadata:
  name: hello
  namespace: e2e-workloads
spec:
  backoffLimit: 1
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: hello
        image: $IMAGE
        imagePullPolicy: Never
        command: ["/bin/busybox", "sh", "-c", "echo done"]
`

const picked = `
apiVersion: v1
kind: Pod
metadata:
  name: picked
  namespace: e2e-workloads
spec:
  nodeSelector:
    e2e-pick: "yes"
  terminationGracePeriodSeconds: 1
  containers:
  - name: picked
    image: $IMAGE
    imagePullPolicy: Never
    command: ["/bin/busybox", "sleep", "3600"]
`

// clientPod is a pod to exec wget and nslookup in, put on a node by
// nodeName (no scheduler); it tolerates a control plane's taint.
const clientPod = `
apiVersion: v1
kind: Pod
metadata:
  name: $NAME
  namespace: e2e-workloads
spec:
  nodeName: $NODE
  terminationGracePeriodSeconds: 1
  tolerations:
  - key: node-role.kubernetes.io/control-plane
    operator: Exists
    effect: NoSchedule
  containers:
  - name: client
    image: $IMAGE
    imagePullPolicy: Never
    command: ["/bin/busybox", "sleep", "3600"]
`

// httpGetID asks a clusterIP for /id on port 80 with bash's /dev/tcp (the
// lab hosts may have neither curl nor wget). It always exits 0: a failure
// is in its output.
const httpGetID = `timeout 5 bash -c 'exec 3<>/dev/tcp/%s/80; printf "GET /id HTTP/1.0\r\n\r\n" >&3; cat <&3' 2>&1 || echo "no answer (exit $?)"`

// scaledDownTo3 is the Deployment controller's message for the scale-down:
// "Scaled down replica set web-<hash> to 3 from 5" (older: "from 5 to 3").
var scaledDownTo3 = regexp.MustCompile(`Scaled down replica set web-\S+ (from \d+ )?to 3\b`)

func applyWorkload(t *testing.T, k kube, manifest string) {
	t.Helper()
	k.apply(t, strings.ReplaceAll(manifest, "$IMAGE", testImage))
}

// startClient starts a client pod on a node and waits until it runs.
func startClient(t *testing.T, k kube, name, node string) {
	t.Helper()
	applyWorkload(t, k, strings.NewReplacer("$NAME", name, "$NODE", node).Replace(clientPod))
	waitFor(t, k, workloadsNS, "wait", "--for=condition=Ready", "pod/"+name, "--timeout=120s")
}

// waitFor runs a kubectl that waits (rollout status, wait) in a namespace;
// when it fails, so does the test, with the namespace's pods and events,
// which say why.
func waitFor(t *testing.T, k kube, ns string, args ...string) {
	t.Helper()
	out, err := k.run("", append([]string{"-n", ns}, args...)...)
	if err == nil {
		return
	}
	pods, _ := k.run("", "get", "pods", "-n", ns, "-o", "wide")
	events, _ := k.run("", "get", "events", "-n", ns)
	t.Fatalf("kubectl %s: %v\n%s\n--- pods\n%s\n--- events\n%s", strings.Join(args, " "), err, out, pods, events)
}

// requires skips a subtest that builds on an earlier one that failed (and
// said why).
func requires(t *testing.T, ok bool, what string) {
	t.Helper()
	if !ok {
		t.Skipf("%s failed", what)
	}
}

// pod is what the checks read of a pod.
type pod struct {
	name, node, ip, uid, phase string
	ready                      bool
}

func (p pod) String() string {
	s := fmt.Sprintf("%s(%s on %s", p.name, p.phase, p.node)
	if p.ready {
		s += ", ready"
	}
	return s + ")"
}

// listPods lists the pods of a namespace that match a label selector, by
// name, terminating ones included.
func listPods(k kube, ns, selector string) ([]pod, error) {
	var list struct {
		Items []struct {
			Metadata struct{ Name, UID string }
			Spec     struct{ NodeName string }
			Status   struct {
				Phase, PodIP string
				Conditions   []struct{ Type, Status string }
			}
		}
	}
	if err := getJSON(k, &list, "get", "pods", "-n", ns, "-l", selector); err != nil {
		return nil, err
	}
	var pods []pod
	for _, it := range list.Items {
		p := pod{name: it.Metadata.Name, node: it.Spec.NodeName, ip: it.Status.PodIP, uid: it.Metadata.UID, phase: it.Status.Phase}
		for _, c := range it.Status.Conditions {
			p.ready = p.ready || c.Type == "Ready" && c.Status == "True"
		}
		pods = append(pods, p)
	}
	slices.SortFunc(pods, func(a, b pod) int { return strings.Compare(a.name, b.name) })
	return pods, nil
}

// readyPods is listPods, failing the test on an error, keeping ready pods.
func readyPods(t *testing.T, k kube, ns, selector string) []pod {
	t.Helper()
	pods, err := listPods(k, ns, selector)
	if err != nil {
		t.Fatal(err)
	}
	pods = slices.DeleteFunc(pods, func(p pod) bool { return !p.ready })
	if len(pods) == 0 {
		t.Fatalf("no ready pods in %s with %s", ns, selector)
	}
	return pods
}

// podNodes maps each pod's name to its node.
func podNodes(pods []pod) map[string]string {
	m := map[string]string{}
	for _, p := range pods {
		m[p.name] = p.node
	}
	return m
}

// awayFrom is the first candidate node that is not the node of at least
// one of the pods (pod → node), or "".
func awayFrom(candidates []string, podNodes map[string]string) string {
	for _, c := range candidates {
		for _, n := range podNodes {
			if n != c {
				return c
			}
		}
	}
	return ""
}

// isWebPod checks that answer is the name of one of the Deployment web's
// pods: "" if so, else why not, with the raw output.
func isWebPod(k kube, answer, raw string) string {
	pods, err := listPods(k, workloadsNS, "app=web")
	if err != nil {
		return err.Error()
	}
	if answer == "" || !slices.ContainsFunc(pods, func(p pod) bool { return p.name == answer }) {
		return fmt.Sprintf("answer %q is not one of web's pods %v; output:\n%s", answer, pods, raw)
	}
	return ""
}

// event is what the checks read of an event (core/v1, which also shows
// the events.k8s.io ones).
type event struct {
	Reason, Message string
	InvolvedObject  struct{ Kind, Name string }
}

func listEvents(k kube, ns string) ([]event, error) {
	var list struct{ Items []event }
	if err := getJSON(k, &list, "get", "events", "-n", ns); err != nil {
		return nil, err
	}
	return list.Items, nil
}

// endpoints reads the Service web's EndpointSlices: address → ready. A
// terminating pod stays there, not ready, until it is gone.
func endpoints(k kube) (map[string]bool, error) {
	out, err := k.run("", "get", "endpointslices", "-n", workloadsNS, "-l", "kubernetes.io/service-name=web", "-o",
		"jsonpath={range .items[*].endpoints[*]}{.addresses[0]}={.conditions.ready} {end}")
	if err != nil {
		return nil, fmt.Errorf("kubectl get endpointslices: %v: %s", err, out)
	}
	eps := map[string]bool{}
	for _, f := range strings.Fields(out) {
		ip, ready, _ := strings.Cut(f, "=")
		eps[ip] = ready == "true"
	}
	return eps, nil
}

// getJSON runs a kubectl get with -o json and decodes what it prints. (The
// kube helper joins stderr to stdout; a warning would come first.)
func getJSON(k kube, v any, args ...string) error {
	out, err := k.run("", append(args, "-o", "json")...)
	if err != nil {
		return fmt.Errorf("kubectl %s: %v: %s", strings.Join(args, " "), err, out)
	}
	if i := strings.IndexByte(out, '{'); i > 0 {
		out = out[i:]
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		return fmt.Errorf("kubectl %s: %v", strings.Join(args, " "), err)
	}
	return nil
}

// watching is a kubectl left running (a --watch), its output read as it
// comes.
type watching struct {
	cmd    *exec.Cmd
	cancel context.CancelFunc
	mu     sync.Mutex
	out    bytes.Buffer
}

// watch starts kubectl with args in the background; stop it with stop.
func (k kube) watch(t *testing.T, args ...string) *watching {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	w := &watching{cancel: cancel}
	w.cmd = exec.CommandContext(ctx, kubeforge, append([]string{"kubectl", "-f", k.file, "--state-dir", k.state, "--bundle", distDir, "--"}, args...)...)
	w.cmd.Stdout, w.cmd.Stderr = w, w
	// kubeforge stops its kubectl on an interrupt; WaitDelay bounds the
	// wait for the output should it not.
	w.cmd.Cancel = func() error { return w.cmd.Process.Signal(os.Interrupt) }
	w.cmd.WaitDelay = 5 * time.Second
	if err := w.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
	}
	return w
}

func (w *watching) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.out.Write(p)
}

func (w *watching) output() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.out.String()
}

// stop ends the kubectl; it was interrupted, so its exit status means nothing.
func (w *watching) stop() {
	w.cancel()
	w.cmd.Wait()
}
