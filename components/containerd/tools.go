//go:build tools

// Package containerd pins the container runtime the bundle builds from this
// module (see the Makefile): containerd, ctr and containerd-shim-runc-v2. It
// lives in its own module so it builds with the dependencies it was
// released with.
package containerd

import (
	_ "github.com/containerd/containerd/v2/cmd/containerd"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"
	_ "github.com/containerd/containerd/v2/cmd/ctr"
)
