package main

import (
	"slices"
	"testing"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
)

// upstream is CoreDNS's own execution order, before main replaces it.
var upstream = slices.Clone(dnsserver.Directives)

// TestDirectivesKeepUpstreamOrder: the order is the order plugins handle a
// query, so ours must be upstream's with plugins left out, never reordered.
func TestDirectivesKeepUpstreamOrder(t *testing.T) {
	last := -1
	for _, d := range directives {
		i := slices.Index(upstream, d)
		if i < 0 {
			t.Fatalf("%q is not an upstream directive", d)
		}
		if i < last {
			t.Fatalf("%q comes before %q upstream: keep upstream's order", d, upstream[last])
		}
		last = i
	}
}

// TestEveryDirectiveIsLinked: each directive needs its plugin package.
func TestEveryDirectiveIsLinked(t *testing.T) {
	registered := map[string]bool{}
	for _, names := range caddy.ListPlugins() {
		for _, n := range names {
			registered[n] = true
		}
	}
	for _, d := range directives {
		if !registered["dns."+d] {
			t.Errorf("directive %q has no plugin linked in (blank-import it)", d)
		}
	}
}
