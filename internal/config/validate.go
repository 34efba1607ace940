package config

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/validate/content"
)

var (
	dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	envName  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	// ifaceName is a Linux interface name (dev_valid_name: at most 15
	// bytes, no '/', ':' or white space), kept to the characters real
	// names use: it is written into keepalived.conf.
	ifaceName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$`)
	// userName is a POSIX portable user name (letters, digits, '.', '_',
	// '-', not starting with '-'), at most 32 characters.
	userName = regexp.MustCompile(`^[A-Za-z0-9._][A-Za-z0-9._-]{0,31}$`)
)

// Limits the kubelet and the PKI can live with.
const (
	// MinValidity is the shortest certificate lifetime accepted: shorter
	// ones expire while a cluster is still coming up.
	MinValidity = time.Minute
	// MaxPodsLimit: each node's pod subnet is a /24 (253 addresses for pods).
	MaxPodsLimit = 250
	// NodeSubnetBits is the size of each node's pod subnet.
	NodeSubnetBits = 24
)

// reservedPorts are the other components' ports on a control plane: the
// API server cannot share them.
var reservedPorts = map[int]string{
	2379:  "etcd's client port",
	2380:  "etcd's peer port",
	2381:  "etcd's metrics port",
	10249: "kube-proxy's metrics port",
	10250: "the kubelet's port",
	10256: "kube-proxy's health port",
	10257: "kube-controller-manager's port",
	10259: "kube-scheduler's port",
}

// explicitZeros finds the zeros a user wrote where the defaults would
// otherwise hide them (ssh.port: 0 is a mistake, not "use 22"). It runs on
// the cluster as decoded, before SetDefaults.
func explicitZeros(c *Cluster, present func(string) bool) []FieldError {
	var errs []FieldError
	zero := func(path string, isZero bool, what string) {
		if isZero && present(path) {
			errs = append(errs, FieldError{Path: path, Msg: "0 " + what})
		}
	}
	s := &c.Spec
	zero("spec.ssh.port", s.SSH.Port == 0, "is not a TCP port (leave it out for 22)")
	for i, h := range s.Hosts {
		zero(fmt.Sprintf("spec.hosts[%d].ssh.port", i), h.SSH.Port == 0, "is not a TCP port (leave it out to use spec.ssh.port)")
	}
	zero("spec.controlPlane.port", s.ControlPlane.Port == 0, fmt.Sprintf("is not a TCP port (leave it out for %d)", DefaultAPIServerPort))
	zero("spec.controlPlane.virtualRouterID", s.ControlPlane.VirtualRouterID == 0, "is outside 1-255")
	zero("spec.certificates.validity", s.Certificates.Validity.Duration == 0, "is no lifetime: give one such as 8760h or 365d (leave it out for the default)")
	zero("spec.certificates.kubeletValidity", s.Certificates.KubeletValidity.Duration == 0, "is no lifetime: give one such as 8760h or 365d (leave it out for the default)")
	zero("spec.certificates.caValidity", s.Certificates.CAValidity.Duration == 0, "is no lifetime: give one such as 87600h or 3650d (leave it out for the default)")
	zero("spec.security.audit.maxSize", s.Security.Audit.MaxSize == 0, fmt.Sprintf("MB: give 1-100000 (leave it out for %d)", DefaultAuditMaxSize))
	zero("spec.kubelet.maxPods", s.Kubelet.MaxPods == 0, fmt.Sprintf("pods fit on no node: give 1-%d (leave it out for %d)", MaxPodsLimit, DefaultMaxPods))
	return errs
}

// validator gathers the problems of one cluster.
type validator struct {
	errs     []FieldError
	warnings []string
	// present reports whether the user wrote the field: a host's SSH
	// setting written in the host is the host's, even when it equals
	// spec.ssh's.
	present func(path string) bool
}

func (v *validator) add(path, format string, args ...any) {
	v.errs = append(v.errs, FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// validate checks a defaulted cluster. It returns warnings and every error.
// present tells which fields the file sets; nil: none known.
func validate(c *Cluster, present func(string) bool) (warnings []string, errs []FieldError) {
	if present == nil {
		present = func(string) bool { return false }
	}
	v := &validator{present: present}
	if c.APIVersion != APIVersion {
		v.add("apiVersion", "is %q, want %q", c.APIVersion, APIVersion)
	}
	if c.Kind != Kind {
		v.add("kind", "is %q, want %q", c.Kind, Kind)
	}
	if !dnsLabel.MatchString(c.Metadata.Name) || len(c.Metadata.Name) > 63 {
		v.add("metadata.name", "%q is not a lowercase DNS label (a-z, 0-9, '-')", c.Metadata.Name)
	}
	s := &c.Spec
	pod, podOK := v.podCIDR(s.Networking.PodCIDR)
	svc, svcOK := v.serviceCIDR(s.Networking.ServiceCIDR)
	addrs := v.hosts(c, pod, podOK, svc, svcOK)
	v.controlPlane(c, addrs, pod, podOK, svc, svcOK)
	v.networking(c, pod, podOK, svc, svcOK)
	v.certificates(&s.Certificates)
	if s.Kubelet.MaxPods < 1 || s.Kubelet.MaxPods > MaxPodsLimit {
		v.add("spec.kubelet.maxPods", "%d is outside 1-%d (each node's pods share a /%d)", s.Kubelet.MaxPods, MaxPodsLimit, NodeSubnetBits)
	}
	v.podSecurity(&s.Security.PodSecurity)
	if m := s.Security.Audit.MaxSize; m < 1 || m > 100000 {
		v.add("spec.security.audit.maxSize", "%d MB is outside 1-100000", m)
	}
	return v.warnings, v.errs
}

// hosts checks every host and returns the cluster addresses in use.
func (v *validator) hosts(c *Cluster, pod netip.Prefix, podOK bool, svc netip.Prefix, svcOK bool) map[netip.Addr]string {
	s := &c.Spec
	if len(s.Hosts) == 0 {
		v.add("spec.hosts", "lists no hosts; add at least one with role control-plane")
	}
	v.ssh("spec.ssh", s.SSH, SSH{}, nil)
	names := map[string]string{}
	addrs := map[netip.Addr]string{}
	controlPlanes, etcds, local := 0, 0, ""
	for i := range s.Hosts {
		h := &s.Hosts[i]
		p := fmt.Sprintf("spec.hosts[%d]", i)
		if h.Name == "" && h.Address == "" && h.InternalAddress == "" && len(h.Roles) == 0 && !h.Local {
			v.add(p, "is an empty entry (a '-' with nothing after it): fill it in or remove it")
			continue
		}
		switch {
		case h.Name == "":
			v.add(p+".name", "is required")
		case !dnsLabel.MatchString(h.Name) || len(h.Name) > 63:
			v.add(p+".name", "%q is not a lowercase DNS label (a-z, 0-9, '-'): it becomes the node name", h.Name)
		case names[h.Name] != "":
			v.add(p+".name", "%q is already used by %s", h.Name, names[h.Name])
		default:
			names[h.Name] = p
		}
		if h.Local {
			if local != "" {
				v.add(p+".local", "%s is local too: only one host can be the machine kubeforge runs on", local)
			}
			local = p
		}
		var addr netip.Addr
		switch {
		case h.Address == "" && !h.Local:
			v.add(p+".address", "is required (or set local: true for the machine kubeforge runs on)")
		case h.Address != "":
			a, isIP := v.address(p+".address", h.Address, true)
			if isIP {
				addr = a
			} else if _, err := netip.ParseAddr(h.Address); err != nil && h.InternalAddress == "" && isDNSName(h.Address) {
				v.add(p+".internalAddress", "is required when address %q is a name, not an IP", h.Address)
			}
		}
		if h.InternalAddress != "" {
			if a, isIP := v.address(p+".internalAddress", h.InternalAddress, false); isIP {
				addr = a
			}
		}
		if addr.IsValid() {
			where := p + ".address"
			if h.InternalAddress != "" {
				where = p + ".internalAddress"
			}
			switch {
			case addrs[addr] != "":
				v.add(where, "%s is already the address of %s", addr, addrs[addr])
			case !addr.Is4():
				v.add(where, "%s is IPv6, but the cluster's networks (podCIDR, serviceCIDR) are IPv4 only", addr)
			default:
				addrs[addr] = p
				if podOK && pod.Contains(addr) {
					v.add("spec.networking.podCIDR", "%s contains host address %s (%s): pick a range the hosts do not use", pod, addr, p)
				}
				if svcOK && svc.Contains(addr) {
					v.add("spec.networking.serviceCIDR", "%s contains host address %s (%s): pick a range the hosts do not use", svc, addr, p)
				}
			}
		}
		if len(h.Roles) == 0 {
			v.add(p+".roles", "is empty: give control-plane, etcd and/or worker")
		}
		seen := map[Role]bool{}
		for j, r := range h.Roles {
			if !slices.Contains(Roles, r) {
				v.add(fmt.Sprintf("%s.roles[%d]", p, j), "unknown role %q (known: control-plane, etcd, worker)", r)
			} else if seen[r] {
				v.add(fmt.Sprintf("%s.roles[%d]", p, j), "role %q is listed twice", r)
			}
			seen[r] = true
		}
		if h.Has(RoleControlPlane) {
			controlPlanes++
		}
		if h.Has(RoleEtcd) {
			etcds++
		}
		v.labels(p+".labels", h.Labels)
		v.ssh(p+".ssh", h.SSH, s.SSH, v.present)
	}
	if len(s.Hosts) > 0 && controlPlanes == 0 {
		v.add("spec.hosts", "no host has the control-plane role")
	}
	if etcds > 0 && etcds%2 == 0 {
		v.warnings = append(v.warnings, fmt.Sprintf("spec.hosts: %d etcd members: an even count tolerates no more failures than %d; use an odd number", etcds, etcds-1))
	}
	// A bastion must be a machine outside the cluster; one inherited
	// from spec.ssh is reported there, once.
	reported := map[string]bool{}
	for i, h := range s.Hosts {
		p := fmt.Sprintf("spec.hosts[%d].ssh.bastion", i)
		if h.SSH.Bastion == s.SSH.Bastion {
			p = "spec.ssh.bastion"
		}
		if host, _, err := splitBastion(h.SSH.Bastion); err == nil && !reported[p] {
			if a, err := netip.ParseAddr(host); err == nil && addrs[a.Unmap()] != "" {
				v.add(p, "%s is the address of %s: a bastion is a machine outside the cluster", a, addrs[a.Unmap()])
				reported[p] = true
			}
		}
	}
	if podOK && len(s.Hosts) > 0 {
		if fit := 1 << max(NodeSubnetBits-pod.Bits(), 0); fit < len(s.Hosts) {
			v.add("spec.networking.podCIDR", "%s holds %d node subnets of /%d, but the file has %d hosts: use a larger range (a /16 holds 256)", pod, fit, NodeSubnetBits, len(s.Hosts))
		}
	}
	return addrs
}

// address checks a host address: an IP a host can be reached at (or, if
// nameOK, a DNS name). It returns the IP, unmapped, and whether it is one.
func (v *validator) address(path, s string, nameOK bool) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		v.add(path, "%q has a port: give the address alone (the SSH port is ssh.port)", s)
		return ap.Addr(), false
	}
	if h, _, err := net.SplitHostPort(s); err == nil && h != "" && isDNSName(h) {
		v.add(path, "%q has a port: give the address alone (the SSH port is ssh.port)", s)
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		if nameOK && isDNSName(s) {
			return netip.Addr{}, false
		}
		v.add(path, "%q is not an IP address%s", s, map[bool]string{true: " or a DNS name", false: ""}[nameOK])
		return netip.Addr{}, false
	}
	switch {
	case a.Zone() != "":
		v.add(path, "%s is zone-scoped: give an address every host can reach, without %%%s", s, a.Zone())
	case a.IsUnspecified():
		v.add(path, "%s is the unspecified address: give the host's own address", s)
	case a.Unmap().IsLoopback():
		v.add(path, "%s is a loopback address: the other hosts cannot reach it; give the host's network address", s)
	default:
		return a.Unmap(), true
	}
	return netip.Addr{}, false
}

// ssh checks a host's SSH settings. Fields a host inherits from spec.ssh
// (the same value) are reported at spec.ssh only, where the user wrote them.
func (v *validator) ssh(p string, s, inherited SSH, present func(string) bool) {
	own := func(field string, same bool) bool {
		return p == "spec.ssh" || !same || (present != nil && present(p+"."+field))
	}
	if own("port", s.Port == inherited.Port) && (s.Port < 0 || s.Port > 65535) {
		v.add(p+".port", "%d is not a TCP port (1-65535)", s.Port)
	}
	if own("user", s.User == inherited.User) {
		if s.User == "" && p != "spec.ssh" {
			v.add(p+".user", "is required")
		} else if s.User != "" && !userName.MatchString(s.User) {
			v.add(p+".user", "%q is not a user name (letters, digits, '.', '_' and '-', not starting with '-')", s.User)
		}
	}
	if own("connectTimeout", s.ConnectTimeout == inherited.ConnectTimeout) && s.ConnectTimeout.Duration < 0 {
		v.add(p+".connectTimeout", "must be positive")
	}
	for field, pair := range map[string][2]string{
		"passphraseEnv": {s.PassphraseEnv, inherited.PassphraseEnv}, "passwordEnv": {s.PasswordEnv, inherited.PasswordEnv},
		"sudoPasswordEnv": {s.SudoPasswordEnv, inherited.SudoPasswordEnv},
	} {
		if own(field, pair[0] == pair[1]) && pair[0] != "" && !envName.MatchString(pair[0]) {
			v.add(p+"."+field, "%q is not an environment variable name (the secret itself never goes in the file)", pair[0])
		}
	}
	if own("bastion", s.Bastion == inherited.Bastion) && s.Bastion != "" {
		host, port, err := splitBastion(s.Bastion)
		switch {
		case err != nil:
			v.add(p+".bastion", "%q: %v", s.Bastion, err)
		case port < 1 || port > 65535:
			v.add(p+".bastion", "%q: port %d is not a TCP port", s.Bastion, port)
		default:
			if _, err := netip.ParseAddr(host); err != nil && !isDNSName(host) {
				v.add(p+".bastion", "%q: %q is neither an IP address nor a DNS name", s.Bastion, host)
			}
		}
	}
}

// splitBastion reads "[user@]host[:port]"; the port defaults to 22.
func splitBastion(s string) (host string, port int, err error) {
	if s == "" {
		return "", 0, fmt.Errorf("empty")
	}
	if u, rest, ok := strings.Cut(s, "@"); ok {
		if !userName.MatchString(u) {
			return "", 0, fmt.Errorf("%q is not a user name", u)
		}
		s = rest
	}
	host, port = s, 22
	if h, p, err := net.SplitHostPort(s); err == nil {
		n, err := strconv.Atoi(p)
		if err != nil {
			return "", 0, fmt.Errorf("port %q is not a number", p)
		}
		host, port = h, n
	}
	if host == "" {
		return "", 0, fmt.Errorf("no host")
	}
	return host, port, nil
}

// labels checks node labels by Kubernetes' own rules: they reach the API
// as data, and nothing else may get through.
func (v *validator) labels(p string, labels map[string]string) {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if msgs := content.IsLabelKey(k); len(msgs) > 0 {
			v.add(p, "key %q is not a label key: %s", k, strings.Join(msgs, "; "))
		}
		if msgs := content.IsLabelValue(labels[k]); len(msgs) > 0 {
			v.add(p+"."+k, "%q is not a label value: %s", labels[k], strings.Join(msgs, "; "))
		}
	}
}

func (v *validator) controlPlane(c *Cluster, addrs map[netip.Addr]string, pod netip.Prefix, podOK bool, svc netip.Prefix, svcOK bool) {
	cp := &c.Spec.ControlPlane
	switch {
	case cp.Port < 1 || cp.Port > 65535:
		v.add("spec.controlPlane.port", "%d is not a TCP port (1-65535)", cp.Port)
	case reservedPorts[cp.Port] != "":
		v.add("spec.controlPlane.port", "%d is %s on every control plane: pick another (the default is %d)", cp.Port, reservedPorts[cp.Port], DefaultAPIServerPort)
	default:
		for _, h := range c.HostsWith(RoleControlPlane) {
			if h.SSH.Port == cp.Port {
				v.add("spec.controlPlane.port", "%d is %s's SSH port: pick another (the default is %d)", cp.Port, h.Name, DefaultAPIServerPort)
				break
			}
		}
	}
	if cp.Endpoint == "" {
		v.add("spec.controlPlane.endpoint", "is required when no control plane has an IP address")
	} else if host, port, err := net.SplitHostPort(cp.Endpoint); err != nil || host == "" {
		v.add("spec.controlPlane.endpoint", "%q is not host:port", cp.Endpoint)
	} else {
		if a, err := netip.ParseAddr(host); err != nil && !isDNSName(host) {
			v.add("spec.controlPlane.endpoint", "%q: %q is neither an IP address nor a DNS name", cp.Endpoint, host)
		} else if err == nil && (a.Zone() != "" || a.IsUnspecified() || a.IsLoopback()) {
			v.add("spec.controlPlane.endpoint", "%q: %s is not an address clients on other hosts can reach", cp.Endpoint, a)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			v.add("spec.controlPlane.endpoint", "%q: port %q is not a TCP port", cp.Endpoint, port)
		}
	}
	if cp.VIP != "" {
		vip, err := netip.ParseAddr(cp.VIP)
		switch {
		case err != nil:
			v.add("spec.controlPlane.vip", "%q is not an IP address", cp.VIP)
		case vip.Zone() != "" || vip.IsUnspecified() || vip.IsLoopback() || vip.IsMulticast():
			v.add("spec.controlPlane.vip", "%s cannot be a VIP: give a free address on the control planes' network", vip)
		case !vip.Is4():
			v.add("spec.controlPlane.vip", "%s is IPv6, but the hosts and the cluster are IPv4", vip)
		case addrs[vip] != "":
			v.add("spec.controlPlane.vip", "%s is the address of %s: the VIP must be a free address on the control planes' network", vip, addrs[vip])
		case podOK && pod.Contains(vip):
			v.add("spec.controlPlane.vip", "%s is inside podCIDR %s: give an address on the control planes' network", vip, pod)
		case svcOK && svc.Contains(vip):
			v.add("spec.controlPlane.vip", "%s is inside serviceCIDR %s: give an address on the control planes' network", vip, svc)
		}
		if cp.VirtualRouterID < 1 || cp.VirtualRouterID > 255 {
			v.add("spec.controlPlane.virtualRouterID", "%d is outside 1-255", cp.VirtualRouterID)
		}
	}
	if cp.VIPInterface != "" && (!ifaceName.MatchString(cp.VIPInterface) || cp.VIPInterface == "." || cp.VIPInterface == "..") {
		v.add("spec.controlPlane.vipInterface", "%q is not a network interface name (1-15 letters, digits, '.', '-' or '_')", cp.VIPInterface)
	}
	for i, san := range cp.CertSANs {
		if _, err := netip.ParseAddr(san); err != nil && !isDNSName(san) {
			v.add(fmt.Sprintf("spec.controlPlane.certSANs[%d]", i), "%q is neither an IP address nor a DNS name", san)
		}
	}
}

func (v *validator) podCIDR(s string) (netip.Prefix, bool) {
	pod, err := netip.ParsePrefix(s)
	switch {
	case err != nil || pod.Masked() != pod:
		v.add("spec.networking.podCIDR", "%q is not a network in CIDR notation (e.g. %s)", s, DefaultPodCIDR)
	case !pod.Addr().Is4() || pod.Bits() > NodeSubnetBits:
		v.add("spec.networking.podCIDR", "%s: use an IPv4 network of /%d or larger (each node gets a /%d)", pod, NodeSubnetBits, NodeSubnetBits)
	default:
		return pod, true
	}
	return pod, false
}

func (v *validator) serviceCIDR(s string) (netip.Prefix, bool) {
	svc, err := netip.ParsePrefix(s)
	switch {
	case err != nil || svc.Masked() != svc:
		v.add("spec.networking.serviceCIDR", "%q is not a network in CIDR notation (e.g. %s)", s, DefaultServiceCIDR)
	case !svc.Addr().Is4() || svc.Bits() > 28 || svc.Bits() < 12:
		v.add("spec.networking.serviceCIDR", "%s: use an IPv4 network between /12 and /28", svc)
	default:
		return svc, true
	}
	return svc, false
}

func (v *validator) networking(c *Cluster, pod netip.Prefix, podOK bool, svc netip.Prefix, svcOK bool) {
	n := &c.Spec.Networking
	if podOK && svcOK && pod.Overlaps(svc) {
		v.add("spec.networking.serviceCIDR", "%s overlaps podCIDR %s", svc, pod)
	}
	if !isDNSName(n.DNSDomain) {
		v.add("spec.networking.dnsDomain", "%q is not a DNS domain", n.DNSDomain)
	}
	if n.Backend != BackendVXLAN && n.Backend != BackendHostGW {
		v.add("spec.networking.backend", "%q: use vxlan or host-gw", n.Backend)
	}
	var clusterDNS netip.Addr
	if svcOK {
		clusterDNS = svc.Addr()
		for range 10 {
			clusterDNS = clusterDNS.Next()
		}
	}
	for i, u := range n.UpstreamDNS {
		a, err := netip.ParseAddr(u)
		switch {
		case err != nil || a.IsLoopback() || a.IsUnspecified() || a.Zone() != "":
			v.add(fmt.Sprintf("spec.networking.upstreamDNS[%d]", i), "%q is not a reachable IP address (loopback and unspecified ones are not)", u)
		case a == clusterDNS:
			v.add(fmt.Sprintf("spec.networking.upstreamDNS[%d]", i), "%s is the cluster's own DNS (CoreDNS): give the servers it forwards other names to", a)
		}
	}
	if n.ProxyMode != ProxyIPTables && n.ProxyMode != ProxyIPVS {
		v.add("spec.networking.proxyMode", "%q: use iptables or ipvs", n.ProxyMode)
	}
}

func (v *validator) certificates(pki *Certificates) {
	switch pki.KeyAlgorithm {
	case KeyECDSAP256, KeyRSA2048, KeyRSA4096:
	default:
		v.add("spec.certificates.keyAlgorithm", "%q: use ecdsa-p256, rsa-2048 or rsa-4096", pki.KeyAlgorithm)
	}
	ok := true
	for field, d := range map[string]time.Duration{"validity": pki.Validity.Duration, "caValidity": pki.CAValidity.Duration, "kubeletValidity": pki.KubeletValidity.Duration} {
		p := "spec.certificates." + field
		if d < MinValidity {
			v.add(p, "%s is too short: at least %s", d, MinValidity)
			ok = false
		}
	}
	if ok && pki.Validity.Duration > pki.CAValidity.Duration {
		v.add("spec.certificates.validity", "%s is longer than caValidity %s", pki.Validity.Duration, pki.CAValidity.Duration)
	}
	if ok && pki.KubeletValidity.Duration > pki.CAValidity.Duration {
		v.add("spec.certificates.kubeletValidity", "%s is longer than caValidity %s", pki.KubeletValidity.Duration, pki.CAValidity.Duration)
	}
}

func isDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if !dnsLabel.MatchString(strings.ToLower(label)) && !(strings.HasPrefix(label, "*") && label == "*") {
			return false
		}
	}
	return true
}

func (v *validator) podSecurity(ps *PodSecurity) {
	for field, level := range map[string]string{"enforce": ps.Enforce, "warn": ps.Warn, "audit": ps.Audit} {
		if !slices.Contains(PodSecurityLevels, level) {
			v.add("spec.security.podSecurity."+field, "%q is not a Pod Security level: use privileged, baseline or restricted", level)
		}
	}
	for i, ns := range ps.ExemptNamespaces {
		if !dnsLabel.MatchString(ns) || len(ns) > 63 {
			v.add(fmt.Sprintf("spec.security.podSecurity.exemptNamespaces[%d]", i), "%q is not a namespace name (a lowercase DNS label)", ns)
		}
	}
	if !slices.Contains(ps.ExemptNamespaces, "kube-system") {
		v.warnings = append(v.warnings, "spec.security.podSecurity.exemptNamespaces: kube-system is not exempt: add-ons that need more than "+ps.Enforce+" will not start there")
	}
}
