package certs

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestOpenSSLAgrees checks the PKI with a second, independent
// implementation: the openssl command line.
func TestOpenSSLAgrees(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatal("the openssl command is needed for this test: apt-get install openssl (.ci/run does)")
	}
	s := testSpec()
	dir := generate(t, s)
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(openssl, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	for _, c := range Certs(s) {
		out := run("verify", "-CAfile", dir.path(c.CA.CertPath()), dir.path(c.CertPath()))
		if !strings.Contains(out, ": OK") {
			t.Errorf("%s: %s", c.DisplayName(), out)
		}
		// The key belongs to the certificate: same public key.
		pubFromCert := run("x509", "-in", dir.path(c.CertPath()), "-noout", "-pubkey")
		pubFromKey := run("pkey", "-in", dir.path(c.KeyPath()), "-pubout")
		if pubFromCert != pubFromKey {
			t.Errorf("%s: openssl sees a key that does not match the certificate", c.DisplayName())
		}
	}
	// A leaf does not verify against another CA.
	if out, err := exec.Command(openssl, "verify", "-CAfile", dir.path(EtcdCA().CertPath()), dir.path("nodes/cp1/pki/apiserver.crt")).CombinedOutput(); err == nil {
		t.Errorf("apiserver verified against etcd-ca: %s", out)
	}
	// Embedded kubeconfig certificates verify too.
	tmp := t.TempDir()
	for _, k := range Kubeconfigs(s) {
		kf, err := readKubeconfig(dir.path(k.Path()))
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(tmp, strings.ReplaceAll(k.Path(), "/", "_")+".crt")
		if err := os.WriteFile(f, kf.authInfo.ClientCertificateData, 0o600); err != nil {
			t.Fatal(err)
		}
		if out := run("verify", "-CAfile", dir.path(ClusterCA().CertPath()), f); !strings.Contains(out, ": OK") {
			t.Errorf("%s: %s", k.DisplayName(), out)
		}
	}

	san := run("x509", "-in", dir.path("nodes/cp1/pki/apiserver.crt"), "-noout", "-ext", "subjectAltName")
	for _, want := range []string{"DNS:kubernetes", "DNS:kubernetes.default", "DNS:kubernetes.default.svc",
		"DNS:kubernetes.default.svc.cluster.local", "DNS:localhost", "DNS:cp1", "DNS:api.example.com",
		"IP Address:10.96.0.1", "IP Address:127.0.0.1", "IP Address:172.30.0.100", "IP Address:172.30.0.11"} {
		if !strings.Contains(san+",", want+",") && !strings.Contains(san+"\n", want+"\n") {
			t.Errorf("openssl: apiserver subjectAltName lacks %s:\n%s", want, san)
		}
	}
	usage := run("x509", "-in", dir.path("nodes/cp1/pki/apiserver.crt"), "-noout", "-ext", "extendedKeyUsage,basicConstraints")
	if !strings.Contains(usage, "TLS Web Server Authentication") || !strings.Contains(usage, "CA:FALSE") {
		t.Errorf("apiserver usages:\n%s", usage)
	}
}
