package phases

import (
	"strings"
	"testing"

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
		"--admission-control-config-file=" + AdmissionConfigFile, "--authentication-config=" + AuthenticationConfigFile,
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
