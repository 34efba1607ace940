package main

import (
	"bufio"
	"net"
	"os"
	"strings"

	"github.com/flannel-io/flannel/pkg/ip"
)

// previousLease is what an earlier run wrote to the subnet file. The
// masquerade rules of the old lease are replaced when it changed.
type previousLease struct {
	network ip.IP4Net
	subnet  ip.IP4Net
}

// readSubnetFile reads FLANNEL_NETWORK and FLANNEL_SUBNET from an earlier
// run; a missing or unreadable file yields empty values (a first start).
func readSubnetFile(path string) previousLease {
	var prev previousLease
	f, err := os.Open(path)
	if err != nil {
		return prev
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, value, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok {
			continue
		}
		_, cidr, err := net.ParseCIDR(value)
		if err != nil {
			continue
		}
		switch key {
		case "FLANNEL_NETWORK":
			prev.network = ip.FromIPNet(cidr)
		case "FLANNEL_SUBNET":
			prev.subnet = ip.FromIPNet(cidr)
		}
	}
	return prev
}
