// Package certs is the cluster's PKI: the table of certificate
// authorities, certificates and kubeconfigs kubeadm v1.35 uses, issued with
// cfssl behind one adapter; generation that keeps what is valid; expiry
// checks; and renewal that keeps each certificate's identity.
package certs

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/kubeforge/kubeforge/internal/config"
)

// KeyAlgorithm is the type of every new private key.
type KeyAlgorithm string

const (
	ECDSAP256 KeyAlgorithm = config.KeyECDSAP256
	RSA2048   KeyAlgorithm = config.KeyRSA2048
	RSA4096   KeyAlgorithm = config.KeyRSA4096
)

// Node is a host as the PKI sees it.
type Node struct {
	Name string
	IP   netip.Addr
}

// Spec is everything the PKI is derived from.
type Spec struct {
	ClusterName string
	// Endpoint is the control-plane endpoint, host:port.
	Endpoint string
	// APIServerPort is the port the API servers listen on locally.
	APIServerPort int
	ServiceCIDR   netip.Prefix
	DNSDomain     string
	CertSANs      []string
	ControlPlanes []Node
	EtcdMembers   []Node
	// KubeletNodes get a kubelet.conf with a client certificate issued
	// here; the other nodes join by TLS bootstrap.
	KubeletNodes []Node
	Key          KeyAlgorithm
	CAValidity   time.Duration
	Validity     time.Duration
}

// SpecFromCluster derives the PKI spec from a (defaulted, valid) cluster.
func SpecFromCluster(c *config.Cluster) (Spec, error) {
	s := c.Spec
	svc, err := netip.ParsePrefix(s.Networking.ServiceCIDR)
	if err != nil {
		return Spec{}, fmt.Errorf("spec.networking.serviceCIDR: %w", err)
	}
	nodes := func(hosts []*config.Host) []Node {
		out := make([]Node, 0, len(hosts))
		for _, h := range hosts {
			out = append(out, Node{Name: h.Name, IP: h.ClusterAddress()})
		}
		return out
	}
	sans := append([]string(nil), s.ControlPlane.CertSANs...)
	if s.ControlPlane.VIP != "" {
		sans = append(sans, s.ControlPlane.VIP)
	}
	return Spec{
		ClusterName:   c.Metadata.Name,
		Endpoint:      s.ControlPlane.Endpoint,
		APIServerPort: s.ControlPlane.Port,
		ServiceCIDR:   svc,
		DNSDomain:     s.Networking.DNSDomain,
		CertSANs:      sans,
		ControlPlanes: nodes(c.HostsWith(config.RoleControlPlane)),
		EtcdMembers:   nodes(c.HostsWith(config.RoleEtcd)),
		// Every kubelet joins by TLS bootstrap and rotates its own
		// certificate; KubeletNodes stays for nodes that cannot.
		KubeletNodes: nil,
		Key:          KeyAlgorithm(s.Certificates.KeyAlgorithm),
		CAValidity:   s.Certificates.CAValidity.Duration,
		Validity:     s.Certificates.Validity.Duration,
	}, nil
}

// ForNode is the spec with only node's own per-node certificates: what a
// control plane joining on its own issues for itself.
func (s Spec) ForNode(name string) Spec {
	only := func(nodes []Node) []Node {
		var out []Node
		for _, n := range nodes {
			if n.Name == name {
				out = append(out, n)
			}
		}
		return out
	}
	s.ControlPlanes, s.EtcdMembers, s.KubeletNodes = only(s.ControlPlanes), only(s.EtcdMembers), only(s.KubeletNodes)
	return s
}

// FirstServiceIP is the kubernetes Service's ClusterIP: the first address
// of the service range.
func FirstServiceIP(cidr netip.Prefix) netip.Addr {
	return cidr.Masked().Addr().Next()
}

// AltNames are a certificate's subject alternative names.
type AltNames struct {
	DNSNames []string
	IPs      []net.IP
}

// add appends a name or an address, skipping duplicates.
func (a *AltNames) add(names ...string) {
	for _, n := range names {
		if n == "" {
			continue
		}
		if ip := net.ParseIP(n); ip != nil {
			if !containsIP(a.IPs, ip) {
				a.IPs = append(a.IPs, ip)
			}
			continue
		}
		if !containsString(a.DNSNames, n) {
			a.DNSNames = append(a.DNSNames, n)
		}
	}
}

// covers reports whether a holds every name and address of want.
func (a AltNames) covers(want AltNames) bool {
	for _, n := range want.DNSNames {
		if !containsString(a.DNSNames, n) {
			return false
		}
	}
	for _, ip := range want.IPs {
		if !containsIP(a.IPs, ip) {
			return false
		}
	}
	return true
}

func (a AltNames) strings() []string {
	out := append([]string(nil), a.DNSNames...)
	for _, ip := range a.IPs {
		out = append(out, ip.String())
	}
	return out
}

func containsIP(ips []net.IP, ip net.IP) bool {
	for _, x := range ips {
		if x.Equal(ip) {
			return true
		}
	}
	return false
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
