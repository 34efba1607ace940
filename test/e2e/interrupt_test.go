//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestInitInterrupted stops init on a fresh host at one step after
// another, with Ctrl-C (SIGINT) or without warning (SIGKILL, what a lost
// terminal or a killed CI job does), each time resuming from what the
// previous run left, then runs it to the end: it must converge to a
// working cluster, and a run after that must change nothing.
func TestInitInterrupted(t *testing.T) {
	node := hostNames()[0]
	if err := theLab.Recreate(context.Background(), node); err != nil {
		t.Fatal(err)
	}
	cluster := clusterFile(t, "interrupted", []string{node}, "", nil)
	state := filepath.Join(t.TempDir(), "state")
	// The line that says a step started on the host, and the signal.
	stops := []struct {
		step string
		sig  syscall.Signal
	}{
		{"[bundle]", syscall.SIGKILL},
		{"[etcd]", syscall.SIGINT},
		{"[control-plane]", syscall.SIGKILL},
		{"[kubelet]", syscall.SIGKILL},
		{"[cni]", syscall.SIGINT},
		{"[addons]", syscall.SIGKILL},
	}
	for _, s := range stops {
		code, out := interruptAt(t, []string{"init", "-f", cluster, "--state-dir", state, "--bundle", distDir}, s.step, s.sig)
		t.Logf("%s at %s: exit %d, last line: %s", s.sig, s.step, code, lastLine(out))
		if code == 0 {
			t.Logf("init ended before %s was seen: nothing left to interrupt", s.step)
			break
		}
	}
	r := mustRun(t, nil, "init", "-f", cluster, "--state-dir", state)
	t.Logf("init to the end after the interruptions: %s", r.duration.Round(10*time.Millisecond))

	k := kube{file: cluster, state: state}
	waitReady(t, k, node)
	eventually(t, 3*time.Minute, "kube-system pods Running and ready", func() string {
		pods := k.must(t, "-n", "kube-system", "get", "pods", "-o", "jsonpath={range .items[*]}{.metadata.name}={.status.phase}/{.status.containerStatuses[0].ready} {end}")
		if pods == "" || strings.Contains(pods, "=Pending") || strings.Contains(pods, "/false") || strings.Contains(pods, "=Failed") {
			return pods
		}
		return ""
	})
	importImage(t, node, buildTestImage(t))
	k.apply(t, `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"after-interrupts","namespace":"default"},"spec":{"containers":[{"name":"bb","image":"`+testImage+`","imagePullPolicy":"Never","command":["/bin/busybox","sh","-c","/bin/busybox nslookup kubernetes.default.svc.cluster.local && exec /bin/busybox sleep 3600"]}]}}`)
	k.must(t, "wait", "--for=condition=Ready", "pod/after-interrupts", "--timeout=120s")
	if out := k.must(t, "logs", "after-interrupts"); !strings.Contains(out, "10.96.0.1") {
		t.Errorf("the pod could not resolve the API's name: %s", out)
	}

	pids := map[string]string{}
	for _, s := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "flanneld", "containerd"} {
		pids[s] = mainPID(t, node, s)
	}
	mustRun(t, nil, "init", "-f", cluster, "--state-dir", state)
	for s, pid := range pids {
		if now := mainPID(t, node, s); now != pid {
			t.Errorf("the run after convergence restarted %s (%s -> %s)", s, pid, now)
		}
	}
	// Staged files are ".NAME.kubeforge-RANDOM" beside their target; a run
	// removes those a killed one left. (An upload killed mid-transfer can
	// leave its partial copy in /tmp, the OS's to clear.)
	if left := onHost(t, node, "find /etc/kubernetes /etc/systemd/system /etc/cni /var/lib/kubeforge /var/lib/kubelet /opt/kubeforge -maxdepth 3 \\( -name '.*kubeforge-*' -o -name '*.unpacking' -o -name '*.kubeforge-new' \\) 2>/dev/null || true"); strings.TrimSpace(left) != "" {
		t.Errorf("temporary files left behind: %s", left)
	}
}

// interruptAt runs kubeforge and sends it sig 300ms after a stdout line
// starts with step; it returns the exit code and the output.
func interruptAt(t *testing.T, args []string, step string, sig syscall.Signal) (int, string) {
	t.Helper()
	return interruptWhen(t, args, func(line string) bool { return strings.HasPrefix(line, step) }, 300*time.Millisecond, sig)
}

// interruptWhen runs kubeforge and sends it sig delay after the first
// stdout line that at matches; it returns the exit code and the output.
func interruptWhen(t *testing.T, args []string, at func(line string) bool, delay time.Duration, sig syscall.Signal) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, kubeforge, args...)
	cmd.Env = os.Environ()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	sent := false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		out.WriteString(line + "\n")
		if !sent && at(line) {
			sent = true
			time.AfterFunc(delay, func() { _ = cmd.Process.Signal(sig) })
		}
	}
	err = cmd.Wait()
	if exit, ok := err.(*exec.ExitError); ok {
		return exit.ExitCode(), out.String()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, out.String()
}
