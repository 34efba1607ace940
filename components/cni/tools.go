//go:build tools

// Package cni pins the upstream CNI plugins the bundle builds from this
// module (see the Makefile): bridge, host-local, loopback and portmap. They
// live in their own module so they build with the dependencies they were
// released with.
package cni

import (
	_ "github.com/containernetworking/plugins/plugins/ipam/host-local"
	_ "github.com/containernetworking/plugins/plugins/main/bridge"
	_ "github.com/containernetworking/plugins/plugins/main/loopback"
	_ "github.com/containernetworking/plugins/plugins/meta/portmap"
)
