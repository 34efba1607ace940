//go:build tools

// Package runc pins the OCI runtime the bundle builds from this module (see
// the Makefile): runc, with cgo for seccomp. It lives in its own module so
// it builds with the dependencies it was released with.
package runc

import (
	_ "github.com/opencontainers/runc"
)
