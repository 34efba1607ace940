package app

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testCluster = `apiVersion: kubeforge.io/v1alpha1
kind: Cluster
metadata:
  name: unit
spec:
  hosts:
    - name: cp1
      address: 192.0.2.11
      roles: [control-plane]
  certificates:
    validity: 1h
`

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCertsLifecycle(t *testing.T) {
	cluster := writeFile(t, "cluster.yaml", testCluster)
	dir := filepath.Join(t.TempDir(), "pki")

	code, out, errOut := run(t, "certs", "generate", "-f", cluster, "--dir", dir)
	if code != 0 || !strings.Contains(out, "created  apiserver") {
		t.Fatalf("generate: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = run(t, "certs", "generate", "-f", cluster, "--dir", dir)
	if code != 0 || strings.Contains(out, "created") || strings.Contains(out, "re-issued") {
		t.Fatalf("second generate changed something: exit %d\n%s", code, out)
	}

	// 1h leaves are inside the default 30-day window: exit 1, with the report.
	code, out, errOut = run(t, "certs", "check-expiration", "--dir", dir)
	if code != ExitFailure || !strings.Contains(out, "expires soon") || !strings.Contains(errOut, "renew") {
		t.Fatalf("check: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = run(t, "certs", "check-expiration", "--dir", dir, "--warn-within", "10m", "-o", "json")
	if code != 0 {
		t.Fatalf("check with a 10m window: exit %d\n%s", code, out)
	}
	var report struct {
		Certificates []struct {
			Name, Status, SignedBy string
			IsCA                   bool
		}
	}
	if err := json.Unmarshal([]byte(out), &report); err != nil || len(report.Certificates) != 14 {
		t.Fatalf("json: %v, %d entries\n%s", err, len(report.Certificates), out)
	}

	code, out, errOut = run(t, "certs", "renew", "all", "-f", cluster, "--dir", dir)
	if code != 0 || !strings.Contains(out, "11 certificates renewed") || !strings.Contains(out, "backup of the previous files") {
		t.Fatalf("renew: exit %d\n%s%s", code, out, errOut)
	}
	code, _, errOut = run(t, "certs", "renew", "front-proxy-ca", "--dir", dir)
	if code != ExitFailure || !strings.Contains(errOut, "certificate authority") {
		t.Fatalf("renew CA: exit %d %s", code, errOut)
	}
	code, _, errOut = run(t, "certs", "renew", "--dir", dir)
	if code != ExitUsage {
		t.Fatalf("renew without names: exit %d %s", code, errOut)
	}
}

func TestCertsBadInput(t *testing.T) {
	bad := writeFile(t, "cluster.yaml", strings.Replace(testCluster, "address:", "adress:", 1))
	code, _, errOut := run(t, "certs", "generate", "-f", bad, "--dir", t.TempDir())
	if code != ExitInvalid || !strings.Contains(errOut, "spec.hosts[0].adress: unknown field") {
		t.Fatalf("bad cluster file: exit %d\n%s", code, errOut)
	}
	code, _, errOut = run(t, "certs", "generate", "--dir", t.TempDir())
	if code != ExitUsage || !strings.Contains(errOut, "-f cluster.yaml") {
		t.Fatalf("no cluster file: exit %d\n%s", code, errOut)
	}
	dir := filepath.Join(t.TempDir(), "pki")
	cluster := writeFile(t, "c.yaml", testCluster)
	if code, out, errOut := run(t, "certs", "generate", "-f", cluster, "--dir", dir); code != 0 {
		t.Fatalf("generate: %d %s %s", code, out, errOut)
	}
	if err := os.WriteFile(filepath.Join(dir, "nodes", "cp1", "pki", "apiserver.key"), []byte("-----BEGIN EC PRIV"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = run(t, "certs", "generate", "-f", cluster, "--dir", dir)
	if code != ExitInvalid || !strings.Contains(errOut, filepath.Join(dir, "nodes", "cp1", "pki", "apiserver.key")) {
		t.Fatalf("truncated key: exit %d\n%s", code, errOut)
	}
	code, _, errOut = run(t, "certs", "check-expiration")
	if code != ExitUsage {
		t.Fatalf("check without a directory: exit %d %s", code, errOut)
	}
}
