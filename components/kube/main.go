// Command kube is the multicall binary of the kubeforge bundle: one static
// executable that is etcd, etcdctl, etcdutl and every Kubernetes component.
//
// Like busybox it picks the component from the name it was started under
// (/usr/local/bin/kubelet -> kube) or, when started as "kube", from its first
// argument ("kube kubelet --version"). Linking everything into one binary
// shares the Go runtime and the common dependencies: the bundle is a third
// of the size of separate binaries, and the pages are shared in memory.
package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
)

// multicallName is the name of the binary itself.
const multicallName = "kube"

// A component is the entry point of one bundled command. It returns the exit
// code; os.Args already looks as if the component had been started directly.
type component func() int

// components maps each command name (and symlink name) to its entry point.
var components = map[string]component{
	"etcd":                    runEtcd,
	"etcdctl":                 runEtcdctl,
	"etcdutl":                 runEtcdutl,
	"kube-apiserver":          runAPIServer,
	"kube-controller-manager": runControllerManager,
	"kube-scheduler":          runScheduler,
	"kubelet":                 runKubelet,
	"kube-proxy":              runProxy,
	"kubectl":                 runKubectl,
}

func main() {
	args, err := resolve(os.Args)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		usage(os.Stderr)
		os.Exit(2)
	}
	if args == nil {
		usage(os.Stdout)
		return
	}
	os.Args = args
	os.Exit(components[filepath.Base(args[0])]())
}

// resolve turns the process arguments into the arguments the component
// expects, with the component's name first. It returns nil args for
// "kube", "kube help" and "kube --list", which only print usage.
func resolve(argv []string) ([]string, error) {
	if len(argv) == 0 {
		return nil, fmt.Errorf("%s: no program name", multicallName)
	}
	if _, ok := components[filepath.Base(argv[0])]; ok {
		return argv, nil
	}
	if len(argv) < 2 {
		return nil, nil
	}
	switch name := argv[1]; name {
	case "help", "-h", "--help", "--list":
		return nil, nil
	default:
		if _, ok := components[name]; !ok {
			return nil, fmt.Errorf("%s: unknown component %q", multicallName, name)
		}
		return argv[1:], nil
	}
}

// names returns the component names, sorted: the symlinks to create.
func names() []string {
	out := make([]string, 0, len(components))
	for n := range components {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: %s COMPONENT [ARGS...]   or a symlink named COMPONENT -> %s\n\nComponents:\n", multicallName, multicallName)
	for _, n := range names() {
		fmt.Fprintf(w, "  %s\n", n)
	}
}
