//go:build e2e

// Package e2e runs kubeforge against the lab: real hosts (Docker
// containers with systemd and sshd) made by test/lab. `make e2e` starts
// the lab, builds kubeforge and the bundle, and runs these tests.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubeforge/kubeforge/components/bundle"
	"github.com/kubeforge/kubeforge/test/lab"
)

var (
	theLab    *lab.Lab
	kubeforge string // the binary under test
	distDir   string // the bundle
	repoRoot  string
)

func TestMain(m *testing.M) {
	root, err := filepath.Abs("../..")
	if err != nil {
		panic(err)
	}
	repoRoot = root
	if theLab, err = lab.Load(root); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: no lab: %v (run 'make lab-up N=3' or 'make e2e')\n", err)
		os.Exit(1)
	}
	kubeforge = filepath.Join(root, "bin", "kubeforge")
	distDir = filepath.Join(root, "dist")
	for _, p := range []string{kubeforge, filepath.Join(distDir, "manifest.json")} {
		if _, err := os.Stat(p); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: %v (run 'make build bundle')\n", err)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}

// distKubernetes is the Kubernetes release of the bundle under test
// (v1.37.2): what every node should run.
func distKubernetes(t *testing.T) string {
	t.Helper()
	m, err := bundle.Load(distDir)
	if err != nil {
		t.Fatal(err)
	}
	return m.Kubernetes()
}

// result is one kubeforge run.
type result struct {
	code     int
	out      string // stdout
	err      string // stderr
	duration time.Duration
}

func (r result) String() string {
	return fmt.Sprintf("exit %d after %s\n--- stdout\n%s--- stderr\n%s", r.code, r.duration.Round(10*time.Millisecond), r.out, r.err)
}

// run runs kubeforge with args and extra environment.
func run(t *testing.T, env []string, args ...string) result {
	t.Helper()
	return runWith(t, kubeforge, distDir, env, args...)
}

// runWith runs a kubeforge binary (this tree's, or an older one's) with
// a bundle.
func runWith(t *testing.T, binary, bundleDir string, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append(args, "--bundle", bundleDir)...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	start := time.Now()
	err := cmd.Run()
	r := result{out: out.String(), err: errOut.String(), duration: time.Since(start)}
	if exit, ok := err.(*exec.ExitError); ok {
		r.code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("run kubeforge %v: %v", args, err)
	}
	t.Logf("kubeforge %s: exit %d in %s", strings.Join(args, " "), r.code, r.duration.Round(10*time.Millisecond))
	return r
}

// mustRun runs kubeforge and fails the test unless it exits 0.
func mustRun(t *testing.T, env []string, args ...string) result {
	t.Helper()
	r := run(t, env, args...)
	if r.code != 0 {
		t.Fatalf("kubeforge %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// onHost runs a shell command on a lab host (docker exec, not kubeforge).
func onHost(t *testing.T, name, script string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := theLab.Exec(ctx, name, "sh", "-c", script)
	if err != nil {
		t.Fatalf("%s: %s: %v\n%s", name, script, err, out)
	}
	return out
}

// clusterFile writes a cluster file for some lab hosts.
func clusterFile(t *testing.T, name string, hosts []string, extra string, edit func(string) string) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: kubeforge.io/v1alpha1\nkind: Cluster\nmetadata:\n  name: %s\nspec:\n  ssh:\n    user: root\n    keyPath: %s\n  hosts:\n", name, theLab.KeyFile())
	for i, n := range hosts {
		h, err := theLab.Host(n)
		if err != nil {
			t.Fatal(err)
		}
		roles := "[worker]"
		if i == 0 {
			roles = "[control-plane]"
			if len(hosts) == 1 {
				roles = "[control-plane, worker]"
			}
		}
		fmt.Fprintf(&b, "    - name: %s\n      address: %s\n      roles: %s\n", h.Name, h.IP, roles)
	}
	b.WriteString(extra)
	text := b.String()
	if edit != nil {
		text = edit(text)
	}
	p := filepath.Join(t.TempDir(), name+".yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func hostNames() []string {
	var out []string
	for _, h := range theLab.Hosts() {
		out = append(out, h.Name)
	}
	return out
}
