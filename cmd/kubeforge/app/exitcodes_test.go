package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Exit codes mean one thing: 2 the command line is wrong, 3 an input (a
// file, a value the cluster refused) is wrong; nothing was done in either.
// And what can be checked here is checked before any host or state.
func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	ok := writeFile(t, "ok.yaml", testCluster)
	bundleDir := writeBundle(t)
	keyless := writeFile(t, "keyless.yaml", `apiVersion: kubeforge.io/v1alpha1
kind: Cluster
metadata: {name: keyless}
spec:
  ssh: {keyPath: /nonexistent/id_ed25519, sudoPasswordEnv: KUBEFORGE_TEST_UNSET_PW}
  hosts:
    - {name: cp1, address: 192.0.2.11, roles: [control-plane]}
`)
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"missing cluster file", []string{"check", "-f", filepath.Join(dir, "nope.yaml")}, ExitUsage, "does not exist"},
		{"a directory as the file", []string{"check", "-f", dir}, ExitUsage, "is a directory"},
		{"missing settings file", []string{"--config", filepath.Join(dir, "nope.yaml"), "version"}, ExitUsage, "settings file"},
		{"unknown certificate", []string{"certs", "renew", "apiservr", "--dir", dir}, ExitUsage, `did you mean "apiserver"`},
		{"missing bundle", []string{"init", "-f", ok, "--bundle", filepath.Join(dir, "nope"), "--state-dir", state}, ExitUsage, "--bundle"},
		{"bundle outside the window", []string{"init", "-f", ok, "--bundle", writeBundleOf(t, "v1.34.4"), "--state-dir", state}, ExitInvalid,
			"Kubernetes v1.34.4 is not one this kubeforge installs (1.35, 1.36, 1.37)"},
		{"unknown command", []string{"inti"}, ExitUsage, `did you mean "init"`},
		{"unknown phase", []string{"init", "phase", "etdc"}, ExitUsage, `did you mean "etcd"`},
		{"unknown command with -f", []string{"nosuchcmd", "-f", "x.yaml"}, ExitUsage, `unknown command "nosuchcmd" for "kubeforge"`},
		{"misspelt command with -f", []string{"satus", "-f", "x.yaml"}, ExitUsage, `did you mean "status"`},
		{"unknown phase with -f", []string{"init", "phase", "nosuch", "-f", "x"}, ExitUsage, `unknown phase "nosuch" for "kubeforge init"`},
		{"misspelt phase with -f", []string{"init", "phase", "kubelte", "-f", "x"}, ExitUsage, `did you mean "kubelet"`},
		{"unknown --skip-phases", []string{"init", "-f", ok, "--skip-phases", "nope", "--bundle", bundleDir, "--state-dir", state}, ExitUsage, `no phase "nope"`},
		{"--parallel 0", []string{"init", "-f", ok, "--parallel", "0", "--bundle", bundleDir, "--state-dir", state}, ExitUsage, "--parallel 0"},
		{"malformed fingerprint", []string{"known-hosts", "accept", "cp1", "--fingerprint", "md5:aa", "-f", ok, "--state-dir", state}, ExitUsage, "not a SHA256 fingerprint"},
		{"missing key and secret", []string{"check", "-f", keyless, "--state-dir", state}, ExitInvalid, "before connecting to any host"},
		{"timer flags together", []string{"certs", "renew", "--install-timer", "--remove-timer", "-f", ok}, ExitUsage, "not both"},
		{"timer with names", []string{"certs", "renew", "all", "--install-timer", "-f", ok}, ExitUsage, "no certificate names"},
		{"renew nothing", []string{"certs", "renew", "-f", ok}, ExitUsage, "name what to renew"},
		{"renew a CA", []string{"certs", "renew", "etcd-ca", "-f", ok, "--state-dir", state}, ExitFailure, "certificate authority"},
		{"invalid cluster file", []string{"check", "-f", writeFile(t, "bad.yaml", strings.Replace(testCluster, "192.0.2.11", "127.0.0.1", 1)), "--state-dir", state}, ExitInvalid, "loopback"},
	} {
		code, _, errOut := run(t, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: exit %d, want %d with %q:\n%s", tc.name, code, tc.code, tc.want, errOut)
		}
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Errorf("a refused command made the state directory (logs): %v", err)
	}
}
