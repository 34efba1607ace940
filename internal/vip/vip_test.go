package vip

import (
	"testing"

	"github.com/kubeforge/kubeforge/internal/config"
)

// The hand-over's rule matches only new connections to the VIP's API port,
// with the iptables program of the VIP's family.
func TestHandoffCommand(t *testing.T) {
	for vip, want := range map[string]string{
		"192.0.2.100":   "iptables -w -I INPUT -d 192.0.2.100/32 -p tcp --dport 6443 --syn -m comment --comment kubeforge-vip-handoff -j DROP",
		"2001:db8::100": "ip6tables -w -I INPUT -d 2001:db8::100/128 -p tcp --dport 6443 --syn -m comment --comment kubeforge-vip-handoff -j DROP",
	} {
		c := &config.Cluster{}
		c.Spec.ControlPlane.VIP, c.Spec.ControlPlane.Port = vip, 6443
		if got := handoffCommand(c, "-I"); got != want {
			t.Errorf("%s:\n got %s\nwant %s", vip, got, want)
		}
	}
}
