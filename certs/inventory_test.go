package certs

import (
	"encoding/base64"
	"os"
	"strings"
	"testing"
	"time"
)

// A node's inventory as InventoryScript prints it: names, signers and who
// renews each come out right, and the bytes of a key never matter.
func TestParseInventory(t *testing.T) {
	s := testSpec()
	dir := generate(t, s)
	read := func(rel string) string {
		data, err := os.ReadFile(dir.path(rel))
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	kf, err := readKubeconfig(dir.path(AdminConf))
	if err != nil {
		t.Fatal(err)
	}
	out := "@@file /etc/kubernetes/pki/apiserver.crt\n" + read("nodes/cp1/pki/apiserver.crt") +
		"@@file /etc/kubernetes/pki/etcd/peer.crt\n" + read("nodes/cp1/pki/etcd/peer.crt") +
		"@@file /etc/kubernetes/pki/ca.crt\n" + read("pki/ca.crt") +
		"@@file /var/lib/kubelet/pki/kubelet-client-current.pem\n" + read("pki/apiserver-kubelet-client.crt") +
		"@@conf /etc/kubernetes/admin.conf\n" + base64.StdEncoding.EncodeToString(kf.authInfo.ClientCertificateData) + "\n" +
		"@@file /etc/kubernetes/pki/broken.crt\nnot a certificate\n"
	cas, err := ReadCAs(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := ParseInventory("cp1", out, cas, time.Now())
	want := []struct{ name, ca, rotated string }{
		{"apiserver", CAName, RotatedByKubeforge},
		{EtcdPeerName, EtcdCAName, RotatedByKubeforge},
		{CAName, "self-signed (ca)", RotatedNever},
		{"kubelet-client", CAName, RotatedByKubelet},
		{"admin.conf", CAName, RotatedByKubeforge},
		{"broken", "", ""},
	}
	if len(got) != len(want) {
		t.Fatalf("%d rows: %+v", len(got), got)
	}
	for i, w := range want {
		g := got[i]
		if g.Node != "cp1" || g.Name != w.name || g.CA != w.ca || g.RotatedBy != w.rotated {
			t.Errorf("row %d: %+v, want %+v", i, g, w)
		}
	}
	if got[5].Error == "" || got[0].Residual <= 0 || got[0].Serial == "" || !strings.HasSuffix(got[4].Path, "(client certificate)") {
		t.Errorf("rows: %+v", got)
	}
	if !strings.Contains(InventoryScript, "sed -n '/-----BEGIN CERTIFICATE-----/,/-----END CERTIFICATE-----/p'") ||
		!strings.Contains(InventoryScript, "client-certificate-data") || strings.Contains(InventoryScript, "client-key-data") {
		t.Error("the inventory script must print certificates only")
	}
}
