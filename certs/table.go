package certs

import (
	"crypto/x509"
	"fmt"
	"net"
	"path"
	"strings"
)

// Authority is a certificate authority of the cluster.
type Authority struct {
	Name       string // "ca", "etcd-ca", "front-proxy-ca"
	BaseName   string // under pki/: "etcd/ca"
	CommonName string
}

// Cert is a leaf certificate with its key, as a file pair.
type Cert struct {
	Name       string // kubeadm's name: "apiserver", "etcd-server"
	Node       string // for per-node certificates, the node
	BaseName   string // "etcd/server"
	CA         *Authority
	CommonName string
	Groups     []string // subject organizations
	Usages     []x509.ExtKeyUsage
	AltNames   AltNames
}

// Kubeconfig is a kubeconfig file with an embedded client certificate.
type Kubeconfig struct {
	Name       string // "admin.conf", "kubelet.conf"
	Node       string // for per-node kubeconfigs
	CommonName string
	Groups     []string
	Server     string // the API server URL
}

// The three authorities. Constructors, not shared variables, so nobody
// mutates the table.
func ClusterCA() *Authority {
	return &Authority{Name: CAName, BaseName: CABase, CommonName: "kubernetes"}
}

func EtcdCA() *Authority {
	return &Authority{Name: EtcdCAName, BaseName: EtcdCABase, CommonName: "etcd-ca"}
}

func FrontProxyCA() *Authority {
	return &Authority{Name: FrontProxyCAName, BaseName: FrontProxyCABase, CommonName: "front-proxy-ca"}
}

// Authorities returns every CA, in issuing order.
func Authorities() []*Authority { return []*Authority{ClusterCA(), EtcdCA(), FrontProxyCA()} }

// authorityFor finds a CA by name.
func authorityFor(name string) *Authority {
	for _, a := range Authorities() {
		if a.Name == name {
			return a
		}
	}
	return nil
}

// Certs returns the leaf certificates the spec calls for.
func Certs(s Spec) []*Cert {
	ca, etcdCA, fpCA := ClusterCA(), EtcdCA(), FrontProxyCA()
	server := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	client := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	both := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}

	out := []*Cert{
		{Name: APIServerKubeletClient, BaseName: APIServerKubeletClient, CA: ca, CommonName: APIServerKubeletClientCN,
			Groups: []string{ClusterAdminsGroup}, Usages: client},
		{Name: FrontProxyClient, BaseName: FrontProxyClient, CA: fpCA, CommonName: FrontProxyClientCN, Usages: client},
		{Name: EtcdHealthcheckClientName, BaseName: EtcdHealthcheckClientBase, CA: etcdCA, CommonName: EtcdHealthcheckClientCN, Usages: client},
		{Name: APIServerEtcdClient, BaseName: APIServerEtcdClient, CA: etcdCA, CommonName: APIServerEtcdClientCN, Usages: client},
	}
	// Each API server has its own serving certificate, kubeadm's way: a
	// control plane joining or leaving changes no other's certificate, so
	// nothing else restarts.
	for _, n := range s.ControlPlanes {
		out = append(out, &Cert{Name: APIServerName, Node: n.Name, BaseName: APIServerName, CA: ca, CommonName: APIServerCN,
			Usages: server, AltNames: apiServerAltNames(s, n)})
	}
	for _, m := range s.EtcdMembers {
		alt := etcdAltNames(m)
		out = append(out,
			&Cert{Name: EtcdServerName, Node: m.Name, BaseName: EtcdServerBase, CA: etcdCA, CommonName: m.Name, Usages: both, AltNames: alt},
			&Cert{Name: EtcdPeerName, Node: m.Name, BaseName: EtcdPeerBase, CA: etcdCA, CommonName: m.Name, Usages: both, AltNames: alt},
		)
	}
	return out
}

// Kubeconfigs returns the kubeconfig files the spec calls for.
func Kubeconfigs(s Spec) []*Kubeconfig {
	endpoint := "https://" + s.Endpoint
	// The controller-manager and scheduler run on every control plane and
	// talk to the API server beside them: they keep working when the VIP
	// moves, and one file serves every control plane.
	local := fmt.Sprintf("https://127.0.0.1:%d", s.APIServerPort)
	out := []*Kubeconfig{
		{Name: AdminConf, CommonName: AdminCN, Groups: []string{ClusterAdminsGroup}, Server: endpoint},
		{Name: SuperAdminConf, CommonName: SuperAdminCN, Groups: []string{MastersGroup}, Server: endpoint},
		{Name: ControllerManagerConf, CommonName: ControllerManagerCN, Server: local},
		{Name: SchedulerConf, CommonName: SchedulerCN, Server: local},
	}
	for _, n := range s.KubeletNodes {
		out = append(out, &Kubeconfig{Name: KubeletConf, Node: n.Name, CommonName: NodeCNPrefix + n.Name,
			Groups: []string{NodesGroup}, Server: endpoint})
	}
	return out
}

// apiServerAltNames: the control plane's own name and address, the
// endpoint host, the kubernetes Service's IP and names, loopback and the
// extra SANs (the VIP among them).
func apiServerAltNames(s Spec, n Node) AltNames {
	var a AltNames
	a.add("kubernetes", "kubernetes.default", "kubernetes.default.svc")
	if s.DNSDomain != "" {
		a.add("kubernetes.default.svc." + s.DNSDomain)
	}
	a.add("localhost", "127.0.0.1")
	if s.ServiceCIDR.IsValid() {
		a.add(FirstServiceIP(s.ServiceCIDR).String())
	}
	if host, _, err := net.SplitHostPort(s.Endpoint); err == nil {
		a.add(host)
	}
	a.add(n.Name)
	if n.IP.IsValid() {
		a.add(n.IP.String())
	}
	a.add(s.CertSANs...)
	return a
}

// etcdAltNames: the member's name and address, and loopback.
func etcdAltNames(m Node) AltNames {
	var a AltNames
	a.add(m.Name, "localhost")
	if m.IP.IsValid() {
		a.add(m.IP.String())
	}
	a.add("127.0.0.1", "::1")
	return a
}

// Paths, relative to the PKI directory.

// CertPath is where a CA or leaf certificate lives.
func (a *Authority) CertPath() string { return path.Join(PKIDir, a.BaseName+CertExt) }
func (a *Authority) KeyPath() string  { return path.Join(PKIDir, a.BaseName+KeyExt) }

func (c *Cert) dir() string {
	if c.Node != "" {
		return path.Join(NodesDir, c.Node, PKIDir)
	}
	return PKIDir
}
func (c *Cert) CertPath() string { return path.Join(c.dir(), c.BaseName+CertExt) }
func (c *Cert) KeyPath() string  { return path.Join(c.dir(), c.BaseName+KeyExt) }

// DisplayName is the name with the node, as tables show it.
func (c *Cert) DisplayName() string { return withNode(c.Name, c.Node) }

func (k *Kubeconfig) Path() string {
	if k.Node != "" {
		return path.Join(NodesDir, k.Node, k.Name)
	}
	return k.Name
}
func (k *Kubeconfig) DisplayName() string { return withNode(k.Name, k.Node) }

func withNode(name, node string) string {
	if node == "" {
		return name
	}
	return name + " (" + node + ")"
}

// SAPrivateKeyPath and SAPublicKeyPath are the service-account key pair.
func SAPrivateKeyPath() string { return path.Join(PKIDir, ServiceAccountKey+KeyExt) }
func SAPublicKeyPath() string  { return path.Join(PKIDir, ServiceAccountKey+PubExt) }

// LeafNames are the names `certs renew` accepts besides "all".
func LeafNames() []string { return leafNames() }

func leafNames() []string {
	return []string{APIServerName, APIServerKubeletClient, APIServerEtcdClient, FrontProxyClient,
		EtcdServerName, EtcdPeerName, EtcdHealthcheckClientName,
		AdminConf, SuperAdminConf, ControllerManagerConf, SchedulerConf, KubeletConf}
}

// IsCAName reports whether name is a CA's (or the service-account key's):
// renewal refuses those.
func IsCAName(name string) bool { return isCAName(name) }

func isCAName(name string) bool {
	switch strings.TrimSuffix(name, CertExt) {
	case CAName, EtcdCAName, FrontProxyCAName, EtcdCABase, ServiceAccountKey:
		return true
	}
	return false
}
