package phases

import (
	"strings"
	"testing"

	"github.com/kubeforge/kubeforge/internal/host"
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
