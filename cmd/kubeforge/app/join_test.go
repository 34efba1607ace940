package app

import (
	"strings"
	"testing"
)

// Every mistake on join's command line is refused before anything is
// contacted: a usage error (exit 2) that says what to give instead.
func TestJoinRefusesBadCommandLines(t *testing.T) {
	const tok = "kf1234.z9y8x7w6v5u4t3s2"
	hash := "sha256:" + strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"nothing", []string{"join"}, "give -f CLUSTER_FILE"},
		{"both ways", []string{"join", "10.0.0.1:6443", "-f", "c.yaml"}, "not both"},
		{"two endpoints", []string{"join", "10.0.0.1:6443", "10.0.0.2:6443"}, "at most one argument"},
		{"token without endpoint", []string{"join", "-f", "c.yaml", "--token", tok}, "give the ENDPOINT too"},
		{"--host on the node", []string{"join", "10.0.0.1:6443", "--host", "w1", "--token", tok}, "--node-name"},
		{"bad token", []string{"join", "10.0.0.1:6443", "--token", "KF1234.z9y8x7w6v5u4t3s2", "--discovery-token-ca-cert-hash", hash}, "--token: a bootstrap token"},
		{"no hash", []string{"join", "10.0.0.1:6443", "--token", tok}, "--discovery-token-ca-cert-hash is required"},
		{"bad hash", []string{"join", "10.0.0.1:6443", "--token", tok, "--discovery-token-ca-cert-hash", "md5:00"}, "starts with \"sha256:\""},
		{"control plane without key", []string{"join", "10.0.0.1:6443", "--token", tok, "--discovery-token-ca-cert-hash", hash, "--control-plane"}, "needs --certificate-key"},
		{"key without control plane", []string{"join", "10.0.0.1:6443", "--token", tok, "--discovery-token-ca-cert-hash", hash, "--certificate-key", strings.Repeat("0", 64)}, "add --control-plane"},
		{"short key", []string{"join", "10.0.0.1:6443", "--token", tok, "--discovery-token-ca-cert-hash", hash, "--control-plane", "--certificate-key", "00"}, "64 hexadecimal digits"},
		{"bad endpoint", []string{"join", "10.0.0.1", "--token", tok, "--discovery-token-ca-cert-hash", hash}, "ENDPOINT"},
	} {
		code, _, errOut := run(t, tc.args...)
		if code != ExitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: exit %d, want %d with %q:\n%s", tc.name, code, ExitUsage, tc.want, errOut)
		}
		if strings.Contains(errOut, "z9y8x7w6v5u4t3s2") {
			t.Errorf("%s: the token's secret is in the message:\n%s", tc.name, errOut)
		}
	}
}

// Several control planes without a VIP: init says the endpoint is a single
// point of failure before it starts (here the hosts do not answer, on
// purpose: nothing is installed by this test).
func TestInitWarnsWithoutVIP(t *testing.T) {
	cluster := writeFile(t, "c.yaml", `apiVersion: kubeforge.io/v1alpha1
kind: Cluster
metadata: {name: novip}
spec:
  ssh: {port: 1, connectTimeout: 1s}
  hosts:
    - {name: cp1, address: 192.0.2.1, roles: [control-plane]}
    - {name: cp2, address: 192.0.2.2, roles: [control-plane]}
    - {name: cp3, address: 192.0.2.3, roles: [control-plane]}
`)
	code, _, errOut := run(t, "init", "-f", cluster, "--state-dir", t.TempDir(), "--bundle", writeBundle(t))
	if code == 0 || !strings.Contains(errOut, "3 control planes but no spec.controlPlane.vip") || !strings.Contains(errOut, "single point of failure") {
		t.Fatalf("exit %d:\n%s", code, errOut)
	}
}

// A worker that joined with only a token is told that its serving
// certificate waits for an admin, and both ways to approve it.
func TestServingApprovalNote(t *testing.T) {
	note := servingApprovalNote("w7", "10.0.0.17")
	for _, want := range []string{"waits for an admin's approval", "kubectl logs", "name w7, address 10.0.0.17",
		"kubeforge join -f <cluster file> --host w7", "kubectl certificate approve <name>",
		"spec.signerName=kubernetes.io/kubelet-serving"} {
		if !strings.Contains(note, want) {
			t.Errorf("the note lacks %q:\n%s", want, note)
		}
	}
}
