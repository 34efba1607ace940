package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
)

func testSpec() Spec {
	cp1 := Node{Name: "cp1", IP: netip.MustParseAddr("172.30.0.11")}
	cp2 := Node{Name: "cp2", IP: netip.MustParseAddr("172.30.0.12")}
	cp3 := Node{Name: "cp3", IP: netip.MustParseAddr("172.30.0.13")}
	return Spec{
		ClusterName:   "lab",
		Endpoint:      "172.30.0.100:6443",
		APIServerPort: 6443,
		ServiceCIDR:   netip.MustParsePrefix("10.96.0.0/12"),
		DNSDomain:     "cluster.local",
		CertSANs:      []string{"api.example.com", "172.30.0.100"},
		ControlPlanes: []Node{cp1, cp2, cp3},
		EtcdMembers:   []Node{cp1, cp2, cp3},
		KubeletNodes:  []Node{cp1, cp2, cp3},
		Key:           ECDSAP256,
		CAValidity:    10 * 365 * 24 * time.Hour,
		Validity:      365 * 24 * time.Hour,
	}
}

func generate(t *testing.T, s Spec) Dir {
	t.Helper()
	dir := Dir(t.TempDir())
	if _, err := Generate(s, dir, Options{}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func readAll(t *testing.T, dir Dir) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(string(dir), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		rel, _ := filepath.Rel(string(dir), p)
		out[rel] = data
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestGenerateVerifiesWithCryptoX509 checks every chain, SAN, usage and
// key of a generated PKI with the standard library.
func TestGenerateVerifiesWithCryptoX509(t *testing.T) {
	s := testSpec()
	dir := generate(t, s)

	roots := map[string]*x509.CertPool{}
	for _, a := range Authorities() {
		ca, err := dir.loadAuthority(a, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ca.cert.IsCA || ca.cert.KeyUsage&x509.KeyUsageCertSign == 0 {
			t.Errorf("%s: IsCA %v, key usage %v", a.Name, ca.cert.IsCA, ca.cert.KeyUsage)
		}
		if ca.cert.Subject.CommonName != a.CommonName {
			t.Errorf("%s: CN %q", a.Name, ca.cert.Subject.CommonName)
		}
		if got := ca.cert.NotAfter.Sub(ca.cert.NotBefore); got < s.CAValidity {
			t.Errorf("%s: lifetime %v, want at least %v", a.Name, got, s.CAValidity)
		}
		pool := x509.NewCertPool()
		pool.AddCert(ca.cert)
		roots[a.Name] = pool
	}

	for _, c := range Certs(s) {
		cert, err := dir.readCert(c.CertPath())
		if err != nil {
			t.Fatal(err)
		}
		key, err := dir.readKey(c.KeyPath())
		if err != nil {
			t.Fatal(err)
		}
		if !keyMatches(cert, key) {
			t.Errorf("%s: key does not match", c.DisplayName())
		}
		if _, ok := key.(*ecdsa.PrivateKey); !ok {
			t.Errorf("%s: key %T, want ECDSA", c.DisplayName(), key)
		}
		opts := x509.VerifyOptions{Roots: roots[c.CA.Name], KeyUsages: c.Usages}
		if len(c.AltNames.DNSNames) > 0 {
			opts.DNSName = c.AltNames.DNSNames[0]
		}
		if _, err := cert.Verify(opts); err != nil {
			t.Errorf("%s: does not verify against %s: %v", c.DisplayName(), c.CA.Name, err)
		}
		for _, other := range Authorities() {
			if other.Name != c.CA.Name {
				if _, err := cert.Verify(x509.VerifyOptions{Roots: roots[other.Name], KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err == nil {
					t.Errorf("%s: also verifies against %s", c.DisplayName(), other.Name)
				}
			}
		}
		if cert.Subject.CommonName != c.CommonName || !slices.Equal(cert.Subject.Organization, c.Groups) {
			t.Errorf("%s: subject %s", c.DisplayName(), cert.Subject)
		}
		if cert.IsCA || cert.KeyUsage&x509.KeyUsageDigitalSignature == 0 || cert.KeyUsage&x509.KeyUsageCertSign != 0 {
			t.Errorf("%s: IsCA %v key usage %v", c.DisplayName(), cert.IsCA, cert.KeyUsage)
		}
		if !sameUsages(cert.ExtKeyUsage, c.Usages) {
			t.Errorf("%s: ext key usage %v, want %v", c.DisplayName(), cert.ExtKeyUsage, c.Usages)
		}
		if got := cert.NotAfter.Sub(time.Now()); got > s.Validity || got < s.Validity-time.Hour {
			t.Errorf("%s: expires in %v, want about %v", c.DisplayName(), got, s.Validity)
		}
		if fi, _ := os.Stat(dir.path(c.KeyPath())); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: key mode %v", c.KeyPath(), fi.Mode().Perm())
		}
	}

	// Each control plane's API server certificate names that control
	// plane, and no other: one joining or leaving changes no other's.
	api, _ := dir.readCert(NodesDir + "/cp2/pki/apiserver.crt")
	for _, n := range []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local",
		"localhost", "cp2", "api.example.com"} {
		if !slices.Contains(api.DNSNames, n) {
			t.Errorf("apiserver lacks DNS SAN %s: %v", n, api.DNSNames)
		}
	}
	for _, ip := range []string{"10.96.0.1", "127.0.0.1", "172.30.0.100", "172.30.0.12"} {
		if !containsIP(api.IPAddresses, netip.MustParseAddr(ip).AsSlice()) {
			t.Errorf("apiserver lacks IP SAN %s: %v", ip, api.IPAddresses)
		}
	}
	if slices.Contains(api.DNSNames, "cp1") || containsIP(api.IPAddresses, netip.MustParseAddr("172.30.0.11").AsSlice()) {
		t.Errorf("cp2's API server certificate names cp1: %v %v", api.DNSNames, api.IPAddresses)
	}
	etcd2, _ := dir.readCert(NodesDir + "/cp2/pki/etcd/server.crt")
	if etcd2.Subject.CommonName != "cp2" || !slices.Contains(etcd2.DNSNames, "cp2") || !slices.Contains(etcd2.DNSNames, "localhost") ||
		!containsIP(etcd2.IPAddresses, netip.MustParseAddr("172.30.0.12").AsSlice()) || containsIP(etcd2.IPAddresses, netip.MustParseAddr("172.30.0.11").AsSlice()) {
		t.Errorf("etcd server cp2: CN %s DNS %v IP %v", etcd2.Subject.CommonName, etcd2.DNSNames, etcd2.IPAddresses)
	}

	// Kubeconfigs: typed, embedded, the right identities and servers.
	for _, k := range Kubeconfigs(s) {
		kf, err := readKubeconfig(dir.path(k.Path()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kf.cert.Verify(x509.VerifyOptions{Roots: roots[CAName], KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("%s: %v", k.DisplayName(), err)
		}
		if kf.cert.Subject.CommonName != k.CommonName || !slices.Equal(kf.cert.Subject.Organization, k.Groups) {
			t.Errorf("%s: subject %s", k.DisplayName(), kf.cert.Subject)
		}
		if kf.cluster.Server != k.Server {
			t.Errorf("%s: server %s", k.DisplayName(), kf.cluster.Server)
		}
		if fi, _ := os.Stat(dir.path(k.Path())); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v", k.Path(), fi.Mode().Perm())
		}
		// client-go itself accepts it.
		if _, err := clientcmd.BuildConfigFromFlags("", dir.path(k.Path())); err != nil {
			t.Errorf("%s: client-go: %v", k.DisplayName(), err)
		}
	}
	want := map[string]string{
		AdminConf:                  "CN=kubernetes-admin,O=kubeadm:cluster-admins",
		SuperAdminConf:             "CN=kubernetes-super-admin,O=system:masters",
		"nodes/cp1/" + KubeletConf: "CN=system:node:cp1,O=system:nodes",
		ControllerManagerConf:      "CN=system:kube-controller-manager",
		SchedulerConf:              "CN=system:kube-scheduler",
	}
	for file, subject := range want {
		kf, err := readKubeconfig(dir.path(file))
		if err != nil {
			t.Fatal(err)
		}
		if kf.cert.Subject.String() != subject {
			t.Errorf("%s: subject %s, want %s", file, kf.cert.Subject, subject)
		}
	}

	// sa.pub is sa.key's public half.
	saKey, err := dir.readKey(SAPrivateKeyPath())
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := publicKeyPEM(saKey.Public())
	if data, _ := os.ReadFile(dir.path(SAPublicKeyPath())); !bytes.Equal(data, pub) {
		t.Error("sa.pub is not sa.key's public key")
	}
	for _, d := range []string{PKIDir, PKIDir + "/etcd", NodesDir + "/cp1"} {
		if fi, _ := os.Stat(dir.path(d)); fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v, want 0700", d, fi.Mode().Perm())
		}
	}
}

func TestRSAKeys(t *testing.T) {
	s := testSpec()
	s.Key = RSA2048
	s.ControlPlanes, s.EtcdMembers, s.KubeletNodes = s.ControlPlanes[:1], s.EtcdMembers[:1], nil
	dir := generate(t, s)
	key, err := dir.readKey(NodesDir + "/cp1/pki/apiserver.key")
	if err != nil {
		t.Fatal(err)
	}
	if k, ok := key.(*rsa.PrivateKey); !ok || k.N.BitLen() != 2048 {
		t.Fatalf("key %T", key)
	}
	cert, _ := dir.readCert(NodesDir + "/cp1/pki/apiserver.crt")
	if cert.KeyUsage&x509.KeyUsageKeyEncipherment == 0 {
		t.Error("RSA leaf lacks keyEncipherment")
	}
}

func TestGenerateIsIdempotent(t *testing.T) {
	s := testSpec()
	dir := generate(t, s)
	before := readAll(t, dir)
	results, err := Generate(s, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if r.Action != Kept {
			t.Errorf("second run: %s %s (%s)", r.Name, r.Action, r.Reason)
		}
	}
	after := readAll(t, dir)
	if len(after) != len(before) {
		t.Fatalf("files %d -> %d", len(before), len(after))
	}
	for p, data := range before {
		if !bytes.Equal(after[p], data) {
			t.Errorf("%s changed on a re-run", p)
		}
	}
}

func TestGenerateReissuesWhatNoLongerFits(t *testing.T) {
	s := testSpec()
	dir := generate(t, s)
	before := readAll(t, dir)

	s.CertSANs = append(s.CertSANs, "new.example.com")      // apiserver SANs change
	s.Endpoint = "172.30.0.101:6443"                        // kubeconfig servers change
	s.EtcdMembers = append(s.EtcdMembers, Node{Name: "e4"}) // a new member
	results, err := Generate(s, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Result{}
	for _, r := range results {
		got[r.Name] = r
	}
	for _, cp := range []string{"cp1", "cp2", "cp3"} {
		if r := got["apiserver ("+cp+")"]; r.Action != Reissued || !strings.Contains(r.Reason, "new.example.com") || !strings.Contains(r.Reason, "172.30.0.101") {
			t.Errorf("apiserver %s: %+v", cp, r)
		}
	}
	if r := got["etcd-server (e4)"]; r.Action != Created {
		t.Errorf("new member: %+v", r)
	}
	if r := got["admin.conf"]; r.Action != Updated {
		t.Errorf("admin.conf: %+v", r)
	}
	if r := got["apiserver-etcd-client"]; r.Action != Kept {
		t.Errorf("unrelated leaf: %+v", r)
	}
	after := readAll(t, dir)
	for _, a := range Authorities() {
		if !bytes.Equal(before[filepath.FromSlash(a.CertPath())], after[filepath.FromSlash(a.CertPath())]) {
			t.Errorf("CA %s was replaced", a.Name)
		}
	}

	// A leaf signed by another CA is re-issued by generate.
	foreign := generate(t, testSpec())
	copyPair(t, foreign, dir, PKIDir+"/front-proxy-client")
	results, err = Generate(s, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if r.Name == FrontProxyClient && (r.Action != Reissued || !strings.Contains(r.Reason, "front-proxy-ca")) {
			t.Errorf("foreign front-proxy-client: %+v", r)
		}
	}
}

func copyPair(t *testing.T, from, to Dir, base string) {
	t.Helper()
	for _, ext := range []string{CertExt, KeyExt} {
		data, err := os.ReadFile(from.path(base + ext))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to.path(base+ext), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBadInputs: each is a clear error naming the file, and nothing is
// overwritten.
func TestBadInputs(t *testing.T) {
	for name, tc := range map[string]struct {
		damage func(t *testing.T, dir Dir)
		file   string
		want   string
		renew  bool
	}{
		"truncated key": {
			damage: func(t *testing.T, dir Dir) {
				data, _ := os.ReadFile(dir.path("nodes/cp1/pki/apiserver.key"))
				os.WriteFile(dir.path("nodes/cp1/pki/apiserver.key"), data[:len(data)/2], 0o600)
			},
			file: "nodes/cp1/pki/apiserver.key", want: "not a PEM private key",
		},
		"CA certificate where a leaf is expected": {
			damage: func(t *testing.T, dir Dir) {
				copyPair(t, dir, dir, "pki/ca")
				data, _ := os.ReadFile(dir.path("pki/ca.crt"))
				os.WriteFile(dir.path("pki/apiserver-kubelet-client.crt"), data, 0o644)
				key, _ := os.ReadFile(dir.path("pki/ca.key"))
				os.WriteFile(dir.path("pki/apiserver-kubelet-client.key"), key, 0o600)
			},
			file: "pki/apiserver-kubelet-client.crt", want: "holds a CA certificate",
		},
		"foreign CA on renew": {
			damage: func(t *testing.T, dir Dir) {
				copyPair(t, generate(t, testSpec()), dir, "pki/apiserver-etcd-client")
			},
			file: "pki/apiserver-etcd-client.crt", want: "not signed by etcd-ca", renew: true,
		},
		"truncated key on renew": {
			damage: func(t *testing.T, dir Dir) {
				os.WriteFile(dir.path("nodes/cp2/kubelet.conf"), []byte("apiVersion: v1\nkind: Config\nusers: ["), 0o600)
			},
			file: "nodes/cp2/kubelet.conf", want: "not a valid kubeconfig", renew: true,
		},
		"CA key missing": {
			damage: func(t *testing.T, dir Dir) { os.Remove(dir.path("pki/etcd/ca.key")) },
			file:   "pki/etcd/ca.key", want: "kubeforge never replaces a CA",
		},
		"key of another certificate": {
			damage: func(t *testing.T, dir Dir) {
				data, _ := os.ReadFile(dir.path("pki/front-proxy-client.key"))
				os.WriteFile(dir.path("nodes/cp1/pki/apiserver.key"), data, 0o600)
			},
			file: "nodes/cp1/pki/apiserver.key", want: "does not match",
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := generate(t, testSpec())
			tc.damage(t, dir)
			before := readAll(t, dir)
			var err error
			if tc.renew {
				_, _, err = Renew(dir, []string{"all"}, RenewOptions{})
			} else {
				_, err = Generate(testSpec(), dir, Options{})
			}
			var fe *FileError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v (%T), want a *FileError", err, err)
			}
			if !strings.Contains(err.Error(), dir.path(tc.file)) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to name %s and say %q", err, tc.file, tc.want)
			}
			after := readAll(t, dir)
			if len(after) != len(before) {
				t.Errorf("files %d -> %d", len(before), len(after))
			}
			for p, data := range before {
				if !bytes.Equal(after[p], data) {
					t.Errorf("%s was overwritten", p)
				}
			}
		})
	}
}

func TestRenewAll(t *testing.T) {
	s := testSpec()
	s.Validity = time.Hour
	dir := generate(t, s)
	before := readAll(t, dir)
	type snapshot struct {
		notAfter time.Time
		subject  string
		dns      []string
		ips      int
	}
	snap := map[string]snapshot{}
	entries, err := Check(dir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsCA {
			continue
		}
		cert := certOf(t, dir, e)
		snap[e.Path] = snapshot{cert.NotAfter, cert.Subject.String(), cert.DNSNames, len(cert.IPAddresses)}
	}

	later := time.Now().Add(30 * time.Minute)
	backup, results, err := Renew(dir, []string{"all"}, RenewOptions{Options: Options{Now: func() time.Time { return later }}})
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != len(snap) {
		t.Errorf("renewed %d, want %d (every leaf and kubeconfig)", len(results), len(snap))
	}
	for p, old := range snap {
		cert := certOf(t, dir, Expiry{Path: p, Kind: map[bool]string{true: "kubeconfig", false: "certificate"}[strings.HasSuffix(p, ".conf")]})
		if !cert.NotAfter.After(old.notAfter) {
			t.Errorf("%s: NotAfter %v not after %v", p, cert.NotAfter, old.notAfter)
		}
		if cert.Subject.String() != old.subject || !slices.Equal(cert.DNSNames, old.dns) || len(cert.IPAddresses) != old.ips {
			t.Errorf("%s: identity changed: %s %v", p, cert.Subject, cert.DNSNames)
		}
	}
	// Chains still verify, and the CAs are the same bytes.
	after := readAll(t, dir)
	for _, a := range Authorities() {
		for _, f := range []string{a.CertPath(), a.KeyPath()} {
			if !bytes.Equal(before[filepath.FromSlash(f)], after[filepath.FromSlash(f)]) {
				t.Errorf("%s changed", f)
			}
		}
	}
	entries, err = Check(dir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Error != "" || (!e.IsCA && strings.HasPrefix(e.CA, "unknown")) {
			t.Errorf("after renewal: %+v", e)
		}
	}
	// The backup holds the old files.
	for p := range snap {
		data, err := os.ReadFile(filepath.Join(backup, p))
		if err != nil || !bytes.Equal(data, before[filepath.FromSlash(p)]) {
			t.Errorf("backup of %s: %v", p, err)
		}
	}
	if !strings.HasPrefix(backup, dir.path(BackupsDir)) {
		t.Errorf("backup at %s", backup)
	}
}

func certOf(t *testing.T, dir Dir, e Expiry) *x509.Certificate {
	t.Helper()
	if e.Kind == "kubeconfig" {
		kf, err := readKubeconfig(dir.path(e.Path))
		if err != nil {
			t.Fatal(err)
		}
		return kf.cert
	}
	cert, err := dir.readCert(e.Path)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestRenewRefusesCAsAndUnknownNames(t *testing.T) {
	dir := generate(t, testSpec())
	for _, n := range []string{"ca", "etcd-ca", "front-proxy-ca", "etcd/ca", "sa"} {
		_, _, err := Renew(dir, []string{n}, RenewOptions{})
		var ce *CARenewalError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), "certificate authority") {
			t.Errorf("renew %s: %v", n, err)
		}
	}
	if _, _, err := Renew(dir, []string{"apiservr"}, RenewOptions{}); err == nil || !strings.Contains(err.Error(), "unknown certificate") {
		t.Errorf("unknown name: %v", err)
	}
	if entries, _ := os.ReadDir(dir.path(BackupsDir)); len(entries) != 0 {
		t.Errorf("refused renewals left backups: %v", entries)
	}
}

func TestRenewOneAddsConfiguredSANs(t *testing.T) {
	s := testSpec()
	dir := generate(t, s)
	s.CertSANs = append(s.CertSANs, "added.example.com")
	_, results, err := Renew(dir, []string{APIServerName}, RenewOptions{Spec: &s})
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 3 || results[0].Name != "apiserver (cp1)" {
		t.Fatalf("results %+v", results)
	}
	cert, _ := dir.readCert("nodes/cp1/pki/apiserver.crt")
	if !slices.Contains(cert.DNSNames, "added.example.com") || !slices.Contains(cert.DNSNames, "kubernetes") {
		t.Errorf("SANs %v", cert.DNSNames)
	}
}

func TestCheckReportsExpiry(t *testing.T) {
	s := testSpec()
	s.Validity = 48 * time.Hour
	dir := generate(t, s)
	os.WriteFile(dir.path("pki/broken.crt"), []byte("-----BEGIN CERTIFICATE-----\nAAAA"), 0o644)
	entries, err := Check(dir, time.Now().Add(72*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Expiry{}
	for _, e := range entries {
		byName[e.Name] = e
	}
	if e := byName["apiserver (cp1)"]; !e.Expired() || e.CA != CAName || e.IsCA {
		t.Errorf("apiserver cp1: %+v", e)
	}
	if e := byName["etcd-peer (cp3)"]; e.CA != EtcdCAName || e.Path != "nodes/cp3/pki/etcd/peer.crt" {
		t.Errorf("etcd-peer cp3: %+v", e)
	}
	if e := byName["kubelet.conf (cp2)"]; e.Kind != "kubeconfig" || !e.Expired() {
		t.Errorf("kubelet cp2: %+v", e)
	}
	if e := byName[EtcdCAName]; !e.IsCA || e.CA != "self-signed" || e.Expired() {
		t.Errorf("etcd-ca: %+v", e)
	}
	if e := byName["pki/broken"]; e.Error == "" {
		t.Errorf("broken: %+v", e)
	}
	if len(entries) != 3+5+6+6+3+1 { // CAs, shared leaves, etcd per node, kubeconfigs, kubelets, broken
		t.Errorf("%d entries", len(entries))
	}
}

func TestGenerateDryRunWritesNothing(t *testing.T) {
	dir := Dir(filepath.Join(t.TempDir(), "pki"))
	results, err := Generate(testSpec(), dir, Options{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(string(dir)); !os.IsNotExist(err) {
		t.Fatalf("dry run created %s", dir)
	}
	for _, r := range results {
		if r.Action != Created {
			t.Errorf("%s: %s", r.Name, r.Action)
		}
	}
	// On an existing PKI a dry run reports what drifted, and keeps it.
	s := testSpec()
	dir = generate(t, s)
	before := readAll(t, dir)
	s.CertSANs = append(s.CertSANs, "dry.example.com")
	results, err = Generate(s, dir, Options{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	reissued := 0
	for _, r := range results {
		if r.Action == Reissued {
			reissued++
		}
	}
	if reissued != 3 {
		t.Errorf("dry run: %d re-issues, want 3 (each control plane's apiserver)", reissued)
	}
	after := readAll(t, dir)
	for p, data := range before {
		if !bytes.Equal(after[p], data) {
			t.Errorf("dry run changed %s", p)
		}
	}
}

// TestNodeClientPEM checks the kubelet's first client certificate: the
// node's identity, client use only, the CA's chain, the asked lifetime,
// and a key that matches, in the one-file layout the kubelet reads.
func TestNodeClientPEM(t *testing.T) {
	dir := generate(t, testSpec())
	now := time.Now()
	data, err := NodeClientPEM(dir, "lab4", 30*24*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(data, data)
	if err != nil {
		t.Fatalf("the file is not a matching certificate and key: %v", err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "system:node:lab4" || len(cert.Subject.Organization) != 1 || cert.Subject.Organization[0] != "system:nodes" {
		t.Errorf("subject %s, want CN=system:node:lab4, O=system:nodes", cert.Subject)
	}
	if len(cert.ExtKeyUsage) != 1 || cert.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Errorf("extended key usages %v, want client auth only", cert.ExtKeyUsage)
	}
	if d := cert.NotAfter.Sub(now); d < 30*24*time.Hour-time.Minute || d > 30*24*time.Hour+time.Minute {
		t.Errorf("lives %s, want 720h", d)
	}
	ca, err := dir.readCert(ClusterCA().CertPath())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("does not verify with the cluster CA: %v", err)
	}
	if !HasCAKey(dir) {
		t.Error("HasCAKey: false with the CA key there")
	}
	if err := os.Remove(filepath.Join(string(dir), filepath.FromSlash(ClusterCA().KeyPath()))); err != nil {
		t.Fatal(err)
	}
	if HasCAKey(dir) {
		t.Error("HasCAKey: true without the CA key")
	}
	if _, err := NodeClientPEM(dir, "lab4", time.Hour, now); err == nil {
		t.Error("issued without the CA key")
	}
}
