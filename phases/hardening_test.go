package phases

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"sigs.k8s.io/yaml"

	"github.com/kubeforge/kubeforge/internal/host"
	"github.com/kubeforge/kubeforge/internal/statedir"
)

// The flags the CIS benchmark checks are on the control plane's units,
// and the audit policy is among the API server's inputs (a new policy
// restarts it).
func TestControlPlaneHardening(t *testing.T) {
	c := testCluster(t)
	p := &controlPlanePhase{env: &Env{Cluster: c}}
	h := host.New(&c.Spec.Hosts[0], nil)
	api, err := p.apiServer(h, []File{{Path: AuditPolicyFile}})
	if err != nil {
		t.Fatal(err)
	}
	unit := string(api.Unit)
	for _, want := range []string{
		"--profiling=false", "--service-account-extend-token-expiration=false",
		"--tls-min-version=VersionTLS12", "--tls-cipher-suites=TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,",
		"--audit-policy-file=" + AuditPolicyFile, "--audit-log-path=" + AuditLog,
		"--audit-log-maxage=30", "--audit-log-maxbackup=10", "--audit-log-maxsize=100",
		"--enable-admission-plugins=NodeRestriction,DenyServiceExternalIPs",
		"--admission-control-config-file=" + AdmissionConfigFile, "--authentication-config=" + AuthenticationConfigFile,
		"--kubelet-certificate-authority=" + pki("ca.crt"),
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("kube-apiserver's unit lacks %s", want)
		}
	}
	if strings.Contains(unit, "CBC") || strings.Contains(unit, "RC4") {
		t.Errorf("a weak cipher suite:\n%s", unit)
	}
	if strings.Join(api.Inputs, ",") != AuditPolicyFile {
		t.Errorf("inputs %v, want the audit policy", api.Inputs)
	}
	ctrl, err := p.controllers(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ctrl {
		if !strings.Contains(string(s.Unit), "--profiling=false") {
			t.Errorf("%s profiles", s.Name)
		}
	}
	if !strings.Contains(string(ctrl[0].Unit), "--terminated-pod-gc-threshold=") {
		t.Errorf("%s: no --terminated-pod-gc-threshold", ctrl[0].Name)
	}
	for _, f := range (Desired{Services: ctrl}).allFiles() {
		if f.Mode.Perm != 0o600 {
			t.Errorf("%s: mode %o, want 0600", f.Path, f.Mode.Perm)
		}
	}
}

// Pod Security Admission's default comes from the cluster file, and
// anonymous requests reach only the health checks and cluster-info.
func TestAPIServerConfigFiles(t *testing.T) {
	c := testCluster(t)
	c.Spec.Security.PodSecurity.Enforce = "restricted"
	c.Spec.Security.PodSecurity.ExemptNamespaces = []string{"kube-system", "monitoring"}
	off := false
	c.Spec.Security.Audit.Enabled = &off
	p := &controlPlanePhase{env: &Env{Cluster: c, StateDir: statedir.Dir(t.TempDir())}}
	h := host.New(&c.Spec.Hosts[0], nil)
	admission, err := admissionConfig(c.Spec.Security.PodSecurity)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"name: PodSecurity", "enforce: restricted", "warn: restricted", "- monitoring"} {
		if !strings.Contains(string(admission), want) {
			t.Errorf("admission configuration lacks %q:\n%s", want, admission)
		}
	}
	authn, err := authenticationConfig()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(authn), "- path: /readyz") || !strings.Contains(string(authn), "configmaps/cluster-info") {
		t.Errorf("authentication configuration:\n%s", authn)
	}
	api, err := p.apiServer(h, nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(api.Unit), "--audit-") {
		t.Errorf("audit off, yet:\n%s", api.Unit)
	}
	if strings.Contains(string(api.Unit), "--encryption-provider-config") {
		t.Errorf("a state directory without an encryption configuration, yet the flag:\n%s", api.Unit)
	}
}

// The renewal's check of each kubelet holds it to what the API servers
// accept with --kubelet-certificate-authority: a valid certificate the
// cluster CA signed.
func TestKubeletServingCertCheck(t *testing.T) {
	dir := statedir.Dir(t.TempDir())
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubernetes"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dir.CACert()), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir.CACert(), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(notAfter time.Time, selfSigned bool) *x509.Certificate {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "system:node:w1"},
			NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: notAfter}
		parent, signer := ca, caKey
		if selfSigned {
			tmpl.Issuer, parent, signer = tmpl.Subject, tmpl, key
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		return c
	}
	c := testCluster(t)
	p := &certsVerifyPhase{env: &Env{Cluster: c, StateDir: dir}}
	h := host.New(c.Host("w1"), nil)
	if got := p.kubeletProblem(h, leaf(time.Now().Add(time.Hour), false)); got != "" {
		t.Errorf("a valid certificate from the cluster CA: %s", got)
	}
	if got := p.kubeletProblem(h, leaf(time.Now().Add(time.Hour), true)); !strings.Contains(got, "did not sign") || !strings.Contains(got, "--host w1") {
		t.Errorf("a self-signed certificate: %q", got)
	}
	if got := p.kubeletProblem(h, leaf(time.Now().Add(-time.Minute), false)); !strings.Contains(got, "expired") {
		t.Errorf("an expired certificate: %q", got)
	}
}

// The kubelet settings the CIS benchmark checks (4.2.x) are in every
// node's configuration file, whatever its role.
func TestKubeletHardening(t *testing.T) {
	c := testCluster(t)
	p := &kubeletPhase{env: &Env{Cluster: c}}
	for _, name := range []string{"cp1", "w1"} {
		data, err := p.kubeletConfig(host.New(c.Host(name), nil), nodeState{facts: &host.Facts{CgroupVersion: 2}, resolvConf: "/etc/resolv.conf", protectKernel: true})
		if err != nil {
			t.Fatal(err)
		}
		var cfg kubeletv1beta1.KubeletConfiguration
		if err := yaml.UnmarshalStrict(data, &cfg); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, data)
		}
		// 4.2.4: said, not left to the default.
		if !strings.Contains(string(data), "\nreadOnlyPort: 0\n") || cfg.ReadOnlyPort != 0 {
			t.Errorf("%s: readOnlyPort not written as 0:\n%s", name, data)
		}
		if cfg.PodPidsLimit == nil || *cfg.PodPidsLimit != podPidsLimit || podPidsLimit < 1024 { // 4.2.13
			t.Errorf("%s: podPidsLimit %v", name, cfg.PodPidsLimit)
		}
		if cfg.SeccompDefault == nil || !*cfg.SeccompDefault { // 4.2.14
			t.Errorf("%s: seccompDefault %v", name, cfg.SeccompDefault)
		}
		if cfg.EventRecordQPS == nil || *cfg.EventRecordQPS != 50 { // 4.2.8: upstream's default, stated
			t.Errorf("%s: eventRecordQPS %v", name, cfg.EventRecordQPS)
		}
		if cfg.TLSMinVersion != "VersionTLS12" || !slices.Equal(cfg.TLSCipherSuites, kubeletCipherSuites()) { // 4.2.12, in its spelling
			t.Errorf("%s: TLS %s %v", name, cfg.TLSMinVersion, cfg.TLSCipherSuites)
		}
		if cfg.MakeIPTablesUtilChains != nil && !*cfg.MakeIPTablesUtilChains { // 4.2.6: the default, true
			t.Errorf("%s: makeIPTablesUtilChains off", name)
		}
		if !cfg.ServerTLSBootstrap || !cfg.RotateCertificates { // 1.2.5 needs the CA's serving certificate; 4.2.10
			t.Errorf("%s: serverTLSBootstrap %v rotateCertificates %v", name, cfg.ServerTLSBootstrap, cfg.RotateCertificates)
		}
	}
	for _, s := range tlsCipherSuites() {
		if strings.Contains(s, "CBC") || strings.Contains(s, "RC4") || !strings.HasPrefix(s, "TLS_ECDHE_") {
			t.Errorf("a weak cipher suite: %s", s)
		}
	}
}

// The kubelet's kernel settings are upstream's (the kubelet checks
// exactly these at start), in a file the kubelet's phase writes, and
// protectKernelDefaults is in its configuration when the host holds them.
func TestKubeletKernelSettings(t *testing.T) {
	f := kubeletSysctlFile()
	want := []string{"vm.overcommit_memory = 1", "vm.panic_on_oom = 0", "kernel.panic = 10", "kernel.panic_on_oops = 1",
		"kernel.keys.root_maxkeys = 1000000", "kernel.keys.root_maxbytes = 25000000"}
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(string(f.Data)), "\n") {
		if !strings.HasPrefix(l, "#") {
			got = append(got, l)
		}
	}
	if !slices.Equal(got, want) || f.Path != "/etc/sysctl.d/90-kubeforge-kubelet.conf" || f.Mode.Perm != 0o644 {
		t.Errorf("%s (%o):\n%s", f.Path, f.Mode.Perm, f.Data)
	}
	for _, s := range kubeletKernelSettings() {
		if !strings.Contains(kernelProbe(), s.key) {
			t.Errorf("the probe does not read %s", s.key)
		}
	}
	c := testCluster(t)
	p := &kubeletPhase{env: &Env{Cluster: c, StateDir: statedir.Dir(t.TempDir()), DryRun: true}}
	h := host.New(c.Host("w1"), nil)
	for _, protect := range []bool{true, false} {
		s := nodeState{facts: &host.Facts{CgroupVersion: 2}, resolvConf: "/etc/resolv.conf", protectKernel: protect}
		d, err := p.desired(h, s)
		if err != nil {
			t.Fatal(err)
		}
		var cfg kubeletv1beta1.KubeletConfiguration
		for _, file := range d.Files {
			if file.Path == KubeletConfigFile {
				if err := yaml.UnmarshalStrict(file.Data, &cfg); err != nil {
					t.Fatal(err)
				}
			}
		}
		if cfg.ProtectKernelDefaults != protect {
			t.Errorf("protectKernelDefaults %v, want %v", cfg.ProtectKernelDefaults, protect)
		}
		if !slices.ContainsFunc(d.Files, func(f File) bool { return f.Path == KubeletSysctlFile }) {
			t.Errorf("the kubelet's files lack %s", KubeletSysctlFile)
		}
		// The kernel reads the file, not the kubelet: a change restarts nothing.
		if slices.Contains(d.Services[0].Inputs, KubeletSysctlFile) {
			t.Errorf("%s restarts the kubelet", KubeletSysctlFile)
		}
	}
	if !slices.Contains(resetPaths, KubeletSysctlFile) {
		t.Errorf("reset leaves %s", KubeletSysctlFile)
	}
}

// protectKernelDefaults only where the kernel holds the kubelet's
// settings now (or, in a dry run, can be given them) and keeps them
// after a reboot; otherwise the kubelet would refuse to start.
func TestKubeletProtectKernelDefaults(t *testing.T) {
	good := "now vm/overcommit_memory rw 1\nnow vm/panic_on_oom rw 0\nnow kernel/panic rw 10\nnow kernel/panic_on_oops rw 1\n" +
		"now kernel/keys/root_maxkeys rw 1000000\nnow kernel/keys/root_maxbytes rw 25000000\n"
	boot := "boot # /usr/lib/sysctl.d/50-pid-max.conf\nboot # /etc/sysctl.d/90-kubeforge-kubelet.conf\n" +
		"boot kernel.panic = 10\nboot # /etc/sysctl.d/99-sysctl.conf\n"
	for _, tc := range []struct {
		name    string
		out     string
		applied bool
		want    bool
		why     string
	}{
		{"set", good + boot, true, true, ""},
		{"no systemd-analyze", good, true, true, ""},
		{"read-only after apply", strings.Replace(good, "kernel/panic rw 10", "kernel/panic ro 0", 1) +
			"apply sysctl: setting key \"kernel.panic\": Read-only file system\n", true, false,
			`kernel.panic is 0, not 10, and could not be set; sysctl -p: sysctl: setting key "kernel.panic": Read-only file system`},
		{"dry run, writable", strings.Replace(good, "kernel/panic rw 10", "kernel/panic rw 0", 1), false, true, ""},
		{"dry run, read-only", strings.Replace(good, "kernel/panic rw 10", "kernel/panic ro 0", 1), false, false,
			"kernel.panic is 0, not 10, and /proc/sys/kernel/panic is read-only"},
		{"missing", strings.Replace(good, "now kernel/keys/root_maxkeys rw 1000000\n", "", 1), true, false,
			"the kernel has no kernel.keys.root_maxkeys"},
		{"a later file undoes it at boot", good + boot + "boot vm.overcommit_memory = 2\n", true, false,
			"/etc/sysctl.d/99-sysctl.conf sets vm.overcommit_memory = 2 at boot, after " + KubeletSysctlFile},
		{"slashes and a dash", good + boot + "boot -kernel/panic=0\n", true, false, "sets kernel.panic = 0 at boot"},
		{"an earlier file does not count", good + "boot # /etc/sysctl.d/10-mine.conf\nboot kernel.panic = 0\n" + boot, true, true, ""},
		{"a later one puts it back", good + boot + "boot kernel.panic = 0\nboot # /etc/sysctl.d/zz.conf\nboot kernel.panic = 10\n", true, true, ""},
		{"another setting", good + boot + "boot kernel.panic_print = 3\n", true, true, ""},
		{"a comment is no file", good + "boot # /etc/sysctl.d/10-mine.conf\nboot # /etc/zz.conf - notes\nboot kernel.panic = 0\n" + boot, true, true, ""},
	} {
		on, why := parseKernelState(tc.out).protect(tc.applied)
		if on != tc.want || (tc.why == "") != (why == "") || !strings.Contains(why, tc.why) {
			t.Errorf("%s: protect %v (%q), want %v (%q)", tc.name, on, why, tc.want, tc.why)
		}
	}
}

// etcd takes the API servers' TLS floor and suites, for clients and peers
// (etcd 3.6's flag names and spelling: TLS1.2, Go's suite names).
func TestEtcdHardening(t *testing.T) {
	c := testCluster(t)
	p := &etcdPhase{env: &Env{Cluster: c, StateDir: statedir.Dir(t.TempDir()), DryRun: true}}
	d, err := p.desired(host.New(c.Host("cp1"), nil))
	if err != nil {
		t.Fatal(err)
	}
	unit := string(d.Services[0].Unit)
	for _, want := range []string{"--tls-min-version=TLS1.2", "--cipher-suites=" + strings.Join(tlsCipherSuites(), ","),
		"--client-cert-auth=true", "--peer-client-cert-auth=true"} {
		if !strings.Contains(unit, want) {
			t.Errorf("etcd's unit lacks %s:\n%s", want, unit)
		}
	}
	if strings.Contains(unit, "auto-tls") {
		t.Errorf("etcd makes its own certificates:\n%s", unit)
	}
}
