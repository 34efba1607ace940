// Command coredns is CoreDNS with only the plugins the cluster's Corefile
// uses (templates/addons), built from the upstream module. Dropping the
// cloud and storage backends cuts a third of the binary.
//
// It lives in its own Go module so that CoreDNS builds against the
// dependency versions it was released and tested with, not the ones
// Kubernetes pins.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	// The plugins, registered by their init functions.
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metrics" // the "prometheus" directive
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

// directives is the order in which the plugins handle a query. It is not the
// order of the Corefile: it keeps upstream's relative order
// (core/dnsserver/zdirectives.go), so cache sits before kubernetes and
// forward, and log sees every answer.
var directives = []string{
	"reload",
	"ready",
	"health",
	"prometheus",
	"errors",
	"log",
	"loadbalance",
	"cache",
	"kubernetes",
	"loop",
	"forward",
}

func main() {
	dnsserver.Directives = directives
	coremain.Run()
}
