package config

import (
	"net/netip"
	"time"
)

// Defaults, named for the documentation and `kubeforge config example`.
const (
	DefaultClusterName     = "kubernetes"
	DefaultSSHUser         = "root"
	DefaultSSHPort         = 22
	DefaultConnectTimeout  = 10 * time.Second
	DefaultAPIServerPort   = 6443
	DefaultVirtualRouterID = 51
	DefaultPodCIDR         = "10.244.0.0/16"
	DefaultServiceCIDR     = "10.96.0.0/12"
	DefaultDNSDomain       = "cluster.local"
	DefaultBackend         = BackendVXLAN
	DefaultProxyMode       = ProxyIPTables
	DefaultKeyAlgorithm    = KeyECDSAP256
	DefaultCAValidity      = 10 * 365 * 24 * time.Hour
	DefaultValidity        = 365 * 24 * time.Hour
	DefaultMaxPods         = 110
	DefaultPodSecurity     = PodSecurityBaseline
	DefaultPodSecurityWarn = PodSecurityRestricted
	DefaultAuditMaxSize    = 100
)

// Pod Security Standards' levels.
const (
	PodSecurityPrivileged = "privileged"
	PodSecurityBaseline   = "baseline"
	PodSecurityRestricted = "restricted"
)

// PodSecurityLevels lists them, loosest first.
var PodSecurityLevels = []string{PodSecurityPrivileged, PodSecurityBaseline, PodSecurityRestricted}

// DefaultExemptNamespaces run the cluster's own pods (CoreDNS).
var DefaultExemptNamespaces = []string{"kube-system"}

// Networking and PKI choices.
const (
	BackendVXLAN  = "vxlan"
	BackendHostGW = "host-gw"

	ProxyIPTables = "iptables"
	ProxyIPVS     = "ipvs"

	KeyECDSAP256 = "ecdsa-p256"
	KeyRSA2048   = "rsa-2048"
	KeyRSA4096   = "rsa-4096"
)

// SetDefaults fills what the user left out. It is idempotent.
func SetDefaults(c *Cluster) {
	if c.Metadata.Name == "" {
		c.Metadata.Name = DefaultClusterName
	}
	s := &c.Spec
	if s.SSH.User == "" {
		s.SSH.User = DefaultSSHUser
	}
	if s.SSH.Port == 0 {
		s.SSH.Port = DefaultSSHPort
	}
	if s.SSH.ConnectTimeout.Duration == 0 {
		s.SSH.ConnectTimeout.Duration = DefaultConnectTimeout
	}
	// Stacked etcd: without any etcd host, the control planes run it.
	anyEtcd := false
	for _, h := range s.Hosts {
		anyEtcd = anyEtcd || h.Has(RoleEtcd)
	}
	for i := range s.Hosts {
		h := &s.Hosts[i]
		h.SSH = mergeSSH(h.SSH, s.SSH)
		if !anyEtcd && h.Has(RoleControlPlane) {
			h.Roles = append(h.Roles, RoleEtcd)
		}
	}

	cp := &s.ControlPlane
	if cp.Port == 0 {
		cp.Port = DefaultAPIServerPort
	}
	if cp.VIP != "" && cp.VirtualRouterID == 0 {
		cp.VirtualRouterID = DefaultVirtualRouterID
	}
	if cp.Endpoint == "" {
		switch {
		case cp.VIP != "":
			cp.Endpoint = netip.AddrPortFrom(mustAddr(cp.VIP), uint16(cp.Port)).String()
		default:
			if first := c.FirstControlPlane(); first != nil && first.ClusterAddress().IsValid() {
				cp.Endpoint = netip.AddrPortFrom(first.ClusterAddress(), uint16(cp.Port)).String()
			}
		}
	}

	n := &s.Networking
	setString(&n.PodCIDR, DefaultPodCIDR)
	setString(&n.ServiceCIDR, DefaultServiceCIDR)
	setString(&n.DNSDomain, DefaultDNSDomain)
	setString(&n.Backend, DefaultBackend)
	setString(&n.ProxyMode, DefaultProxyMode)

	pki := &s.Certificates
	setString(&pki.KeyAlgorithm, DefaultKeyAlgorithm)
	if pki.CAValidity.Duration == 0 {
		pki.CAValidity.Duration = DefaultCAValidity
	}
	if pki.Validity.Duration == 0 {
		pki.Validity.Duration = DefaultValidity
	}
	if pki.KubeletValidity.Duration == 0 {
		pki.KubeletValidity.Duration = DefaultValidity
	}
	if s.Kubelet.MaxPods == 0 {
		s.Kubelet.MaxPods = DefaultMaxPods
	}
	if s.Security.Audit.MaxSize == 0 {
		s.Security.Audit.MaxSize = DefaultAuditMaxSize
	}
	ps := &s.Security.PodSecurity
	setString(&ps.Enforce, DefaultPodSecurity)
	setString(&ps.Warn, DefaultPodSecurityWarn)
	setString(&ps.Audit, DefaultPodSecurityWarn)
	if ps.ExemptNamespaces == nil {
		ps.ExemptNamespaces = append([]string(nil), DefaultExemptNamespaces...)
	}
}

// mergeSSH fills a host's unset SSH fields from the cluster's.
func mergeSSH(h, d SSH) SSH {
	setString(&h.User, d.User)
	if h.Port == 0 {
		h.Port = d.Port
	}
	setString(&h.KeyPath, d.KeyPath)
	setString(&h.PassphraseEnv, d.PassphraseEnv)
	setString(&h.PasswordEnv, d.PasswordEnv)
	setString(&h.SudoPasswordEnv, d.SudoPasswordEnv)
	setString(&h.Bastion, d.Bastion)
	setString(&h.BastionKeyPath, d.BastionKeyPath)
	if h.ConnectTimeout.Duration == 0 {
		h.ConnectTimeout = d.ConnectTimeout
	}
	return h
}

func setString(p *string, def string) {
	if *p == "" {
		*p = def
	}
}

func mustAddr(s string) netip.Addr {
	a, _ := netip.ParseAddr(s)
	return a
}

// FirstControlPlane is the host init starts on: the first control plane
// in file order.
func (c *Cluster) FirstControlPlane() *Host {
	for i := range c.Spec.Hosts {
		if c.Spec.Hosts[i].Has(RoleControlPlane) {
			return &c.Spec.Hosts[i]
		}
	}
	return nil
}

// HostsWith returns the hosts that have role r, in file order.
func (c *Cluster) HostsWith(r Role) []*Host {
	var out []*Host
	for i := range c.Spec.Hosts {
		if c.Spec.Hosts[i].Has(r) {
			out = append(out, &c.Spec.Hosts[i])
		}
	}
	return out
}

// Host returns the named host.
func (c *Cluster) Host(name string) *Host {
	for i := range c.Spec.Hosts {
		if c.Spec.Hosts[i].Name == name {
			return &c.Spec.Hosts[i]
		}
	}
	return nil
}

// Without is the cluster without the named host: what stays when it goes.
// The copy shares everything but the host list.
func (c *Cluster) Without(name string) *Cluster {
	out := *c
	out.Spec.Hosts = nil
	for _, h := range c.Spec.Hosts {
		if h.Name != name {
			out.Spec.Hosts = append(out.Spec.Hosts, h)
		}
	}
	return &out
}

// APIServerURL is the control-plane endpoint as an https URL.
func (c *Cluster) APIServerURL() string { return "https://" + c.Spec.ControlPlane.Endpoint }

// LocalAPIServerURL is the API server on host h itself.
func (c *Cluster) LocalAPIServerURL(h *Host) string {
	return "https://" + netip.AddrPortFrom(h.ClusterAddress(), uint16(c.Spec.ControlPlane.Port)).String()
}
