package certs

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kubeforge/kubeforge/internal/atomicfile"
)

// hostLayout copies what a control plane holds (/etc/kubernetes) out of a
// state directory: its own apiserver and etcd certificates under pki/.
func hostLayout(t *testing.T, state Dir, node string) Dir {
	t.Helper()
	host := Dir(t.TempDir())
	copyFile := func(from, to string) {
		if err := atomicfile.Copy(state.path(from), host.path(to), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"pki/ca", "pki/etcd/ca", "pki/front-proxy-ca", "pki/apiserver-kubelet-client", "pki/apiserver-etcd-client", "pki/front-proxy-client", "pki/etcd/healthcheck-client"} {
		copyFile(f+".crt", f+".crt")
		copyFile(f+".key", f+".key")
	}
	for _, f := range []string{"apiserver", "etcd/server", "etcd/peer"} {
		copyFile("nodes/"+node+"/pki/"+f+".crt", "pki/"+f+".crt")
		copyFile("nodes/"+node+"/pki/"+f+".key", "pki/"+f+".key")
	}
	for _, f := range []string{AdminConf, SuperAdminConf, ControllerManagerConf, SchedulerConf} {
		copyFile(f, f)
	}
	// The kubelet's kubeconfig points at a file: not kubeforge's to renew.
	os.WriteFile(host.path("kubelet.conf"), []byte("apiVersion: v1\nkind: Config\nusers:\n- name: n\n  user:\n    client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem\n"), 0o600)
	return host
}

func TestRenewWithinOnAControlPlane(t *testing.T) {
	s := testSpec()
	s.Validity = time.Hour
	host := hostLayout(t, generate(t, s), "cp2")
	now := time.Now()

	if backup, res, err := RenewWithin(host, 30*time.Minute, 24*time.Hour, now); err != nil || backup != "" || len(res) != 0 {
		t.Fatalf("nothing due within 30m: %q %v %v", backup, res, err)
	}
	caBefore, _ := os.ReadFile(host.path("pki/etcd/ca.crt"))
	apiBefore, _ := host.readCert("pki/apiserver.crt")
	backup, res, err := RenewWithin(host, 2*time.Hour, 24*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range res {
		names = append(names, r.Path)
	}
	slices.Sort(names)
	want := []string{"admin.conf", "controller-manager.conf", "pki/apiserver-etcd-client.crt", "pki/apiserver-kubelet-client.crt", "pki/apiserver.crt",
		"pki/etcd/healthcheck-client.crt", "pki/etcd/peer.crt", "pki/etcd/server.crt", "pki/front-proxy-client.crt", "scheduler.conf", "super-admin.conf"}
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Errorf("renewed %v\nwant %v", names, want)
	}
	if caAfter, _ := os.ReadFile(host.path("pki/etcd/ca.crt")); string(caAfter) != string(caBefore) {
		t.Error("a CA changed")
	}
	api, _ := host.readCert("pki/apiserver.crt")
	if !api.NotAfter.After(apiBefore.NotAfter) || api.Subject.String() != apiBefore.Subject.String() ||
		!slices.Equal(api.DNSNames, apiBefore.DNSNames) || len(api.IPAddresses) != len(apiBefore.IPAddresses) {
		t.Errorf("apiserver: %v %v %v, was %v %v", api.NotAfter, api.Subject, api.DNSNames, apiBefore.NotAfter, apiBefore.DNSNames)
	}
	key, _ := host.readKey("pki/apiserver.key")
	if !keyMatches(api, key) {
		t.Error("the renewed apiserver certificate does not match its key")
	}
	etcdCA, _ := host.loadAuthority(EtcdCA(), false)
	peer, _ := host.readCert("pki/etcd/peer.crt")
	if err := etcdCA.verify(peer); err != nil {
		t.Errorf("etcd peer: %v", err)
	}
	if _, err := os.Stat(filepath.Join(backup, "pki", "apiserver.crt")); err != nil {
		t.Errorf("backup: %v", err)
	}
	if data, _ := os.ReadFile(host.path("kubelet.conf")); !strings.Contains(string(data), "client-certificate:") {
		t.Error("the kubelet's kubeconfig was touched")
	}
}
