package config

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strings"
)

var (
	dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	envName  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// validate checks a defaulted cluster. It returns warnings and every error.
func validate(c *Cluster) (warnings []string, errs []FieldError) {
	add := func(path, format string, args ...any) {
		errs = append(errs, FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	if c.APIVersion != APIVersion {
		add("apiVersion", "is %q, want %q", c.APIVersion, APIVersion)
	}
	if c.Kind != Kind {
		add("kind", "is %q, want %q", c.Kind, Kind)
	}
	if !dnsLabel.MatchString(c.Metadata.Name) || len(c.Metadata.Name) > 63 {
		add("metadata.name", "%q is not a lowercase DNS label (a-z, 0-9, '-')", c.Metadata.Name)
	}

	s := &c.Spec
	if len(s.Hosts) == 0 {
		add("spec.hosts", "lists no hosts; add at least one with role control-plane")
	}
	names := map[string]string{}
	addrs := map[netip.Addr]string{}
	var hostAddrs []netip.Addr
	controlPlanes, etcds := 0, 0
	for i := range s.Hosts {
		h := &s.Hosts[i]
		p := fmt.Sprintf("spec.hosts[%d]", i)
		switch {
		case h.Name == "":
			add(p+".name", "is required")
		case !dnsLabel.MatchString(h.Name) || len(h.Name) > 63:
			add(p+".name", "%q is not a lowercase DNS label (a-z, 0-9, '-'): it becomes the node name", h.Name)
		case names[h.Name] != "":
			add(p+".name", "%q is already used by %s", h.Name, names[h.Name])
		default:
			names[h.Name] = p
		}
		if h.Address == "" && !h.Local {
			add(p+".address", "is required (or set local: true for the machine kubeforge runs on)")
		}
		if h.InternalAddress != "" {
			if _, err := netip.ParseAddr(h.InternalAddress); err != nil {
				add(p+".internalAddress", "%q is not an IP address", h.InternalAddress)
			}
		} else if h.Address != "" {
			if _, err := netip.ParseAddr(h.Address); err != nil {
				add(p+".internalAddress", "is required when address %q is a name, not an IP", h.Address)
			}
		}
		if a := h.ClusterAddress(); a.IsValid() {
			if other, dup := addrs[a]; dup {
				add(p+".address", "%s is already the address of %s", a, other)
			} else {
				addrs[a] = p
				hostAddrs = append(hostAddrs, a)
			}
		}
		if len(h.Roles) == 0 {
			add(p+".roles", "is empty: give control-plane, etcd and/or worker")
		}
		seen := map[Role]bool{}
		for j, r := range h.Roles {
			if !slices.Contains(Roles, r) {
				add(fmt.Sprintf("%s.roles[%d]", p, j), "unknown role %q (known: control-plane, etcd, worker)", r)
			} else if seen[r] {
				add(fmt.Sprintf("%s.roles[%d]", p, j), "role %q is listed twice", r)
			}
			seen[r] = true
		}
		if h.Has(RoleControlPlane) {
			controlPlanes++
		}
		if h.Has(RoleEtcd) {
			etcds++
		}
		validateSSH(p+".ssh", h.SSH, add)
	}
	if len(s.Hosts) > 0 && controlPlanes == 0 {
		add("spec.hosts", "no host has the control-plane role")
	}
	if etcds > 0 && etcds%2 == 0 {
		warnings = append(warnings, fmt.Sprintf("spec.hosts: %d etcd members: an even count tolerates no more failures than %d; use an odd number", etcds, etcds-1))
	}

	cp := &s.ControlPlane
	if cp.Port < 1 || cp.Port > 65535 {
		add("spec.controlPlane.port", "%d is not a TCP port", cp.Port)
	}
	if cp.Endpoint == "" {
		add("spec.controlPlane.endpoint", "is required when no control plane has an IP address")
	} else if host, port, err := net.SplitHostPort(cp.Endpoint); err != nil || host == "" || port == "" {
		add("spec.controlPlane.endpoint", "%q is not host:port", cp.Endpoint)
	}
	if cp.VIP != "" {
		vip, err := netip.ParseAddr(cp.VIP)
		switch {
		case err != nil:
			add("spec.controlPlane.vip", "%q is not an IP address", cp.VIP)
		case addrs[vip] != "":
			add("spec.controlPlane.vip", "%s is the address of %s: the VIP must be a free address on the control planes' network", vip, addrs[vip])
		}
		if cp.VirtualRouterID < 1 || cp.VirtualRouterID > 255 {
			add("spec.controlPlane.virtualRouterID", "%d is outside 1-255", cp.VirtualRouterID)
		}
	}
	for i, san := range cp.CertSANs {
		if _, err := netip.ParseAddr(san); err != nil && !isDNSName(san) {
			add(fmt.Sprintf("spec.controlPlane.certSANs[%d]", i), "%q is neither an IP address nor a DNS name", san)
		}
	}

	n := &s.Networking
	pod, podErr := netip.ParsePrefix(n.PodCIDR)
	if podErr != nil || pod.Masked() != pod {
		add("spec.networking.podCIDR", "%q is not a network in CIDR notation (e.g. %s)", n.PodCIDR, DefaultPodCIDR)
	} else if !pod.Addr().Is4() || pod.Bits() > 24 {
		add("spec.networking.podCIDR", "%s: use an IPv4 network of /24 or larger (each node gets a /24)", pod)
	}
	svc, svcErr := netip.ParsePrefix(n.ServiceCIDR)
	if svcErr != nil || svc.Masked() != svc {
		add("spec.networking.serviceCIDR", "%q is not a network in CIDR notation (e.g. %s)", n.ServiceCIDR, DefaultServiceCIDR)
	} else if !svc.Addr().Is4() || svc.Bits() > 28 || svc.Bits() < 12 {
		add("spec.networking.serviceCIDR", "%s: use an IPv4 network between /12 and /28", svc)
	}
	if podErr == nil && svcErr == nil && pod.Overlaps(svc) {
		add("spec.networking.serviceCIDR", "%s overlaps podCIDR %s", svc, pod)
	}
	for _, a := range hostAddrs {
		if podErr == nil && pod.Contains(a) {
			add("spec.networking.podCIDR", "%s contains host address %s (%s): pick a range the hosts do not use", pod, a, addrs[a])
		}
		if svcErr == nil && svc.Contains(a) {
			add("spec.networking.serviceCIDR", "%s contains host address %s (%s): pick a range the hosts do not use", svc, a, addrs[a])
		}
	}
	if !isDNSName(n.DNSDomain) {
		add("spec.networking.dnsDomain", "%q is not a DNS domain", n.DNSDomain)
	}
	if n.Backend != BackendVXLAN && n.Backend != BackendHostGW {
		add("spec.networking.backend", "%q: use vxlan or host-gw", n.Backend)
	}
	for i, u := range n.UpstreamDNS {
		if a, err := netip.ParseAddr(u); err != nil || a.IsLoopback() {
			add(fmt.Sprintf("spec.networking.upstreamDNS[%d]", i), "%q is not a non-loopback IP address", u)
		}
	}
	if n.ProxyMode != ProxyIPTables && n.ProxyMode != ProxyIPVS {
		add("spec.networking.proxyMode", "%q: use iptables or ipvs", n.ProxyMode)
	}

	pki := &s.Certificates
	switch pki.KeyAlgorithm {
	case KeyECDSAP256, KeyRSA2048, KeyRSA4096:
	default:
		add("spec.certificates.keyAlgorithm", "%q: use ecdsa-p256, rsa-2048 or rsa-4096", pki.KeyAlgorithm)
	}
	if pki.Validity.Duration < 0 || pki.CAValidity.Duration < 0 {
		add("spec.certificates", "validities must be positive")
	} else if pki.Validity.Duration > pki.CAValidity.Duration {
		add("spec.certificates.validity", "%s is longer than caValidity %s", pki.Validity.Duration, pki.CAValidity.Duration)
	}
	if s.Kubelet.MaxPods < 1 {
		add("spec.kubelet.maxPods", "must be at least 1")
	}
	return warnings, errs
}

func validateSSH(p string, s SSH, add func(path, format string, args ...any)) {
	if s.Port < 1 || s.Port > 65535 {
		add(p+".port", "%d is not a TCP port", s.Port)
	}
	if s.User == "" {
		add(p+".user", "is required")
	}
	if s.ConnectTimeout.Duration < 0 {
		add(p+".connectTimeout", "must be positive")
	}
	for field, env := range map[string]string{"passphraseEnv": s.PassphraseEnv, "passwordEnv": s.PasswordEnv, "sudoPasswordEnv": s.SudoPasswordEnv} {
		if env != "" && !envName.MatchString(env) {
			add(p+"."+field, "%q is not an environment variable name (the secret itself never goes in the file)", env)
		}
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
