//go:build tools

// Package crictl pins the CRI command-line client the bundle builds from
// this module (see the Makefile). It lives in its own module so it builds
// with the dependencies it was released with.
package crictl

import (
	_ "sigs.k8s.io/cri-tools/cmd/crictl"
)
