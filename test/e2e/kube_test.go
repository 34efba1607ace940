//go:build e2e

package e2e

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// kube runs the bundled kubectl (through `kubeforge kubectl`) against a
// cluster under test, as its admin.
type kube struct {
	file, state string
}

// run runs kubectl with args; stdin, when not empty, is fed to it.
func (k kube) run(stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, kubeforge, append([]string{"kubectl", "-f", k.file, "--state-dir", k.state, "--bundle", distDir, "--"}, args...)...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// must is run that fails the test on an error.
func (k kube) must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := k.run("", args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// apply applies a YAML or JSON manifest from stdin.
func (k kube) apply(t *testing.T, manifest string) {
	t.Helper()
	if out, err := k.run(manifest, "apply", "-f", "-"); err != nil {
		t.Fatalf("kubectl apply: %v\n%s\n%s", err, out, manifest)
	}
}

// eventually polls check until it returns "" (done) or the timeout ends;
// then it fails with check's last words.
func eventually(t *testing.T, timeout time.Duration, what string, check func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg := check()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %s", what, timeout, msg)
		}
		time.Sleep(time.Second)
	}
}
