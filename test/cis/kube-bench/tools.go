//go:build tools

// Package kubebench pins the CIS Kubernetes Benchmark runner that `make
// kube-bench` builds (aquasecurity/kube-bench, its main package at the
// module root) and whose cfg/ folder it copies. It is a module of its own so
// kube-bench builds with the dependencies it was released with, none of
// which the product needs; nothing here is shipped in the bundle.
package kubebench

import (
	_ "github.com/aquasecurity/kube-bench"
)
