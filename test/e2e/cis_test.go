//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kubeforge/kubeforge/internal/host"
	"github.com/kubeforge/kubeforge/phases"
	"github.com/kubeforge/kubeforge/test/cis"
	"github.com/kubeforge/kubeforge/test/lab"
)

// The CIS measure (make e2e-cis, issue 19): 3 control planes and 2 workers
// from one init behind the VIP, then on every host the CIS Kubernetes
// Benchmark (kube-bench, cis-1.12) with kubeforge's paths (test/cis/
// config.yaml): the control planes against master, controlplane, etcd,
// node and policies, the workers against node. It logs each host's totals,
// writes them to .lab/cis-totals.md (each host's full report beside it,
// .lab/cis-<host>.json), and fails listing every FAIL, host by host. Before
// kube-bench runs, each host must have every process and file the overlay
// names, or the results would be about files kube-bench did not find.
const cisEnv = "KUBEFORGE_E2E_CIS"

// cisDir is where kube-bench runs on a host: the lab's /tmp is noexec.
const cisDir = "/var/tmp/kube-bench"

func TestCIS(t *testing.T) {
	if os.Getenv(cisEnv) != "1" {
		t.Skipf("the CIS benchmark needs 5 lab hosts and bin/kube-bench: run it with make e2e-cis (%s=1)", cisEnv)
	}
	names := hostNames()
	if len(names) < 5 {
		t.Fatalf("need 5 lab hosts (make lab-up N=5 CP=3), have %v", names)
	}
	bench := kubeBench(t)
	overlayData, err := os.ReadFile(filepath.Join(repoRoot, cis.OverlayFile))
	if err != nil {
		t.Fatal(err)
	}
	overlay, err := cis.ParseOverlay(overlayData)
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "cfg")
	if err := cis.StageConfig(filepath.Join(repoRoot, "bin", "kube-bench-cfg"), overlayData, cfg); err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	for _, n := range names[:5] {
		if err := theLab.Recreate(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	cluster := haCluster(t, "cis", names[:5])
	state := filepath.Join(t.TempDir(), "state")
	k := kube{file: cluster, state: state}
	r := mustRun(t, nil, "init", "-f", cluster, "--state-dir", state)
	t.Logf("init of 3 control planes + 2 workers: %s", doneLine(r.out))
	waitReady(t, k, names[:5]...)

	var results []cis.HostResult
	for i, n := range names[:5] {
		// policies (5.x) ask the cluster with kubectl: as its admin on a
		// control plane. A worker's kubectl only tells kube-bench the
		// version, as the node.
		role, targets, kubeconfig := "control-plane", cis.ControlPlaneTargets, "/etc/kubernetes/admin.conf"
		if i >= 3 {
			role, targets, kubeconfig = "worker", cis.WorkerTargets, phases.KubeletKubeconfig
		}
		t.Run(n, func(t *testing.T) {
			if missing := missingLayout(t, n, overlay.Expect(targets)); len(missing) > 0 {
				t.Errorf("%s has not what %s names for %s, so kube-bench checks nothing there:\n  %s",
					n, cis.OverlayFile, strings.Join(targets, ","), strings.Join(missing, "\n  "))
			}
			rep := runKubeBench(t, n, bench, cfg, targets, kubeconfig)
			results = append(results, cis.HostResult{Host: n, Role: role, Report: rep})
			tot := rep.Totals
			t.Logf("%s (%s): %d PASS, %d FAIL, %d WARN, %d INFO", n, role, tot.Pass, tot.Fail, tot.Warn, tot.Info)
			if fails := rep.Failures(); len(fails) > 0 {
				lines := make([]string, len(fails))
				for j, f := range fails {
					lines[j] = f.String()
				}
				t.Errorf("%s (%s): %d FAIL:\n  %s", n, role, len(fails), strings.Join(lines, "\n  "))
			}
		})
	}
	md := cis.Markdown(results)
	t.Logf("CIS totals:\n%s", md)
	out := filepath.Join(repoRoot, lab.StateDir, "cis-totals.md")
	if err := os.WriteFile(out, []byte(md), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", out)

	// Issue 19's other checks, on the same cluster.
	tar := buildTestImage(t)
	for _, n := range names[3:5] {
		importImage(t, n, tar)
	}
	checkSecurity(t, k, names[:3], names[3:5])
	t.Run("audit-rotation", func(t *testing.T) {
		h, err := theLab.Host(names[0])
		if err != nil {
			t.Fatal(err)
		}
		checkAuditRotation(t, k, names[0], h.IP)
	})
}

// kubeBench is bin/kube-bench, checked to be the version test/cis/kube-bench
// pins (a stale binary would measure with other checks).
func kubeBench(t *testing.T) string {
	t.Helper()
	bench := filepath.Join(repoRoot, "bin", "kube-bench")
	gomod, err := os.ReadFile(filepath.Join(repoRoot, "test", "cis", "kube-bench", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*(?:require\s+)?github\.com/aquasecurity/kube-bench\s+(v\S+)`).FindSubmatch(gomod)
	if m == nil {
		t.Fatal("test/cis/kube-bench/go.mod does not require github.com/aquasecurity/kube-bench")
	}
	out, err := exec.Command(bench, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s version: %v: %s (run make kube-bench)", bench, err, out)
	}
	if got := strings.TrimSpace(string(out)); got != string(m[1]) {
		t.Fatalf("%s is %s, test/cis/kube-bench pins %s: run make kube-bench", bench, got, m[1])
	}
	t.Logf("kube-bench %s, benchmark %s", m[1], cis.Benchmark)
	return bench
}

// missingLayout lists what a host lacks of the overlay's processes (none of
// a component's names running, as `ps -C` sees them: kube-bench's own test)
// and files.
func missingLayout(t *testing.T, hostName string, e cis.Expectation) []string {
	t.Helper()
	var script strings.Builder
	for _, names := range e.Processes {
		var alts []string
		for _, n := range names {
			alts = append(alts, "ps -C "+host.Quote(n)+" -o pid= >/dev/null")
		}
		fmt.Fprintf(&script, "{ %s; } || echo %s\n", strings.Join(alts, " || "), host.Quote("no process named "+strings.Join(names, " or ")))
	}
	for _, p := range e.Paths {
		fmt.Fprintf(&script, "[ -e %s ] || echo %s\n", host.Quote(p), host.Quote("no "+p))
	}
	out := strings.TrimSpace(onHost(t, hostName, script.String()))
	if out == "" {
		return nil
	}
	return strings.Split(out, "\n")
}

// runKubeBench uploads kube-bench and its configuration to a host, runs the
// benchmark's targets there and reads its JSON report, which it also keeps
// in .lab/cis-<host>.json.
func runKubeBench(t *testing.T, hostName, bench, cfg string, targets []string, kubeconfig string) *cis.Report {
	t.Helper()
	h, err := theLab.Host(hostName)
	if err != nil {
		t.Fatal(err)
	}
	onHost(t, hostName, "rm -rf "+cisDir+" && mkdir -p "+cisDir)
	for _, cp := range [][2]string{{bench, cisDir + "/kube-bench"}, {cfg, cisDir + "/cfg"}} {
		if out, err := exec.Command("docker", "cp", cp[0], h.Container+":"+cp[1]).CombinedOutput(); err != nil {
			t.Fatalf("docker cp %s %s:%s: %v: %s", cp[0], hostName, cp[1], err, out)
		}
	}
	// Exit 0 with FAILs (--exit-code stays 0): an error is kube-bench's own.
	script := fmt.Sprintf("cd %[1]s && KUBECONFIG=%[2]s ./kube-bench run --config-dir %[1]s/cfg --benchmark %[3]s --targets %[4]s --json --outputfile %[1]s/report.json >%[1]s/run.log 2>&1 || { tail -n 30 %[1]s/run.log; exit 1; }\ncat %[1]s/report.json",
		cisDir, host.Quote(kubeconfig), cis.Benchmark, strings.Join(targets, ","))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	out, err := theLab.Exec(ctx, hostName, "sh", "-c", script)
	if err != nil {
		t.Fatalf("kube-bench on %s: %v\n%s", hostName, err, out)
	}
	t.Logf("kube-bench on %s (%s): %s", hostName, strings.Join(targets, ","), time.Since(start).Round(100*time.Millisecond))
	if err := os.WriteFile(filepath.Join(repoRoot, lab.StateDir, "cis-"+hostName+".json"), []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err := cis.Parse([]byte(out))
	if err != nil {
		t.Fatalf("%s: %v", hostName, err)
	}
	if err := rep.CheckTargets(targets); err != nil {
		t.Fatalf("%s: %v", hostName, err)
	}
	return rep
}
