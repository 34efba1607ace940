// Package config holds the cluster file: the desired state of a cluster,
// as the user writes it (apiVersion kubeforge.io/v1alpha1, kind Cluster).
// It decodes strictly, fills defaults and validates, with errors that name
// the field. What is observed on the hosts lives elsewhere (host facts).
package config

import (
	"net/netip"
	"time"
)

const (
	APIVersion = "kubeforge.io/v1alpha1"
	Kind       = "Cluster"
)

// Cluster is the cluster file.
type Cluster struct {
	APIVersion string   `yaml:"apiVersion"`
	Kind       string   `yaml:"kind"`
	Metadata   Metadata `yaml:"metadata"`
	Spec       Spec     `yaml:"spec"`
}

// Metadata names the cluster; the name picks the state directory.
type Metadata struct {
	Name string `yaml:"name"`
}

// Spec is the desired cluster.
type Spec struct {
	// SSH holds connection defaults for every host; a host's own ssh
	// settings override them field by field.
	SSH          SSH          `yaml:"ssh,omitempty"`
	Hosts        []Host       `yaml:"hosts"`
	ControlPlane ControlPlane `yaml:"controlPlane,omitempty"`
	Networking   Networking   `yaml:"networking,omitempty"`
	Certificates Certificates `yaml:"certificates,omitempty"`
	Kubelet      Kubelet      `yaml:"kubelet,omitempty"`
	Security     Security     `yaml:"security,omitempty"`
}

// Security holds the hardening choices that are the user's to make; the
// rest is always on (docs/security.md).
type Security struct {
	// PodSecurity is Pod Security Admission's cluster-wide default, for
	// namespaces without pod-security.kubernetes.io labels.
	PodSecurity PodSecurity `yaml:"podSecurity,omitempty"`
	// Audit is the API servers' audit log.
	Audit Audit `yaml:"audit,omitempty"`
}

// PodSecurity sets the levels (privileged, baseline, restricted) a pod
// is held to where its namespace says nothing.
type PodSecurity struct {
	// Enforce: pods that break it are refused (default baseline).
	Enforce string `yaml:"enforce,omitempty"`
	// Warn: the client is warned (default restricted).
	Warn string `yaml:"warn,omitempty"`
	// Audit: the audit log notes it (default restricted).
	Audit string `yaml:"audit,omitempty"`
	// ExemptNamespaces are not checked (default kube-system).
	ExemptNamespaces []string `yaml:"exemptNamespaces,omitempty"`
}

// Audit is the API servers' audit log.
type Audit struct {
	// Enabled records every request (default true).
	Enabled *bool `yaml:"enabled,omitempty"`
	// MaxSize is the size in MB at which the log is rotated (default
	// 100, as the CIS benchmark asks; 30 days and 10 files are kept).
	MaxSize int `yaml:"maxSize,omitempty"`
}

// AuditOn reports whether the API servers keep an audit log.
func (s *Security) AuditOn() bool { return s.Audit.Enabled == nil || *s.Audit.Enabled }

// Role is what a host does in the cluster.
type Role string

const (
	RoleControlPlane Role = "control-plane"
	RoleEtcd         Role = "etcd"
	RoleWorker       Role = "worker"
)

// Roles lists the valid roles.
var Roles = []Role{RoleControlPlane, RoleEtcd, RoleWorker}

// Host is one machine of the cluster.
type Host struct {
	// Name is the node name (and the etcd member name). Lowercase DNS label.
	Name string `yaml:"name"`
	// Address is where kubeforge reaches the host over SSH and, unless
	// InternalAddress is set, the address the cluster uses for it.
	Address string `yaml:"address"`
	// InternalAddress is the node's address on the cluster network.
	InternalAddress string `yaml:"internalAddress,omitempty"`
	Roles           []Role `yaml:"roles"`
	SSH             SSH    `yaml:"ssh,omitempty"`
	// Local runs this host's steps on the machine kubeforge runs on,
	// without SSH (init on the first control plane itself).
	Local bool `yaml:"local,omitempty"`
	// Labels are added to the node.
	Labels map[string]string `yaml:"labels,omitempty"`
}

// SSH is how to reach a host.
type SSH struct {
	User string `yaml:"user,omitempty"`
	Port int    `yaml:"port,omitempty"`
	// KeyPath is a private key file; with neither key nor password the
	// ssh-agent ($SSH_AUTH_SOCK) is used.
	KeyPath string `yaml:"keyPath,omitempty"`
	// PassphraseEnv names the environment variable holding the key's
	// passphrase; without it kubeforge asks on the terminal.
	PassphraseEnv string `yaml:"passphraseEnv,omitempty"`
	// PasswordEnv names the environment variable holding the login
	// password. Passwords are never written in the cluster file.
	PasswordEnv string `yaml:"passwordEnv,omitempty"`
	// SudoPasswordEnv names the environment variable holding the sudo
	// password for a non-root user without passwordless sudo.
	SudoPasswordEnv string `yaml:"sudoPasswordEnv,omitempty"`
	// Bastion is a jump host, "user@host:port".
	Bastion string `yaml:"bastion,omitempty"`
	// BastionKeyPath is the key for the bastion (default: KeyPath).
	BastionKeyPath string   `yaml:"bastionKeyPath,omitempty"`
	ConnectTimeout Duration `yaml:"connectTimeout,omitempty"`
}

// ControlPlane is how clients reach the API servers.
type ControlPlane struct {
	// Endpoint is the address clients use, "host:port". Default: the VIP
	// when set, else the first control plane's address, port 6443.
	Endpoint string `yaml:"endpoint,omitempty"`
	// VIP is a virtual IP held by keepalived on one control plane.
	VIP string `yaml:"vip,omitempty"`
	// VIPInterface is the interface carrying the VIP (default: the one
	// holding the host's internal address).
	VIPInterface string `yaml:"vipInterface,omitempty"`
	// VirtualRouterID is keepalived's VRRP id, unique on the network.
	VirtualRouterID int `yaml:"virtualRouterID,omitempty"`
	// CertSANs are extra names and addresses for the API server
	// certificate.
	CertSANs []string `yaml:"certSANs,omitempty"`
	// Port the API servers listen on.
	Port int `yaml:"port,omitempty"`
}

// Networking holds the cluster's address ranges and network plugin.
type Networking struct {
	PodCIDR     string `yaml:"podCIDR,omitempty"`
	ServiceCIDR string `yaml:"serviceCIDR,omitempty"`
	DNSDomain   string `yaml:"dnsDomain,omitempty"`
	// Backend is flannel's backend: vxlan (default) or host-gw (all
	// nodes on one L2 network).
	Backend string `yaml:"backend,omitempty"`
	// ProxyMode is kube-proxy's mode: iptables (default) or ipvs.
	ProxyMode string `yaml:"proxyMode,omitempty"`
	// UpstreamDNS are the servers CoreDNS forwards other names to.
	// Default: the first control plane's resolvers; none when it has only
	// loopback resolvers (pods then resolve cluster names only).
	UpstreamDNS []string `yaml:"upstreamDNS,omitempty"`
}

// Certificates sets the PKI's key type and lifetimes.
type Certificates struct {
	// KeyAlgorithm: ecdsa-p256 (default), rsa-2048 or rsa-4096.
	KeyAlgorithm string `yaml:"keyAlgorithm,omitempty"`
	// CAValidity is the lifetime of a new CA (default 10 years).
	CAValidity Duration `yaml:"caValidity,omitempty"`
	// Validity is the lifetime of every other certificate (default 1 year).
	Validity Duration `yaml:"validity,omitempty"`
	// KubeletValidity is the lifetime of the certificates the
	// controller-manager signs for the kubelets (default 1 year); the
	// kubelets renew theirs when about 80 % of it has passed.
	KubeletValidity Duration `yaml:"kubeletValidity,omitempty"`
}

// Kubelet holds node settings.
type Kubelet struct {
	// AllowSwap lets the kubelet run on hosts with swap on.
	AllowSwap bool `yaml:"allowSwap,omitempty"`
	// MaxPods per node.
	MaxPods int `yaml:"maxPods,omitempty"`
}

// Duration is a time.Duration that also reads days ("365d").
type Duration struct{ time.Duration }

// ClusterAddress returns the host's address on the cluster network.
func (h *Host) ClusterAddress() netip.Addr {
	a := h.InternalAddress
	if a == "" {
		a = h.Address
	}
	addr, _ := netip.ParseAddr(a)
	return addr
}

// Label names the host in messages: "lab2 (172.30.0.12)", "me (local)".
func (h *Host) Label() string {
	switch {
	case h.Local:
		return h.Name + " (local)"
	case h.Address != "":
		return h.Name + " (" + h.Address + ")"
	}
	return h.Name
}

// Has reports whether the host has role r.
func (h *Host) Has(r Role) bool {
	for _, x := range h.Roles {
		if x == r {
			return true
		}
	}
	return false
}
